"""Training on a distinct-context table (``docs/paper.md`` §1.1–1.3, §2.2), by module:

- :mod:`.config`: :class:`~.config.TrainConfig`, the LR schedule, the checkpoint steps, the device;
- :mod:`.model`: the UFM, the transformer and the linear model;
- :mod:`.objective`: the cross-entropy over distinct contexts (or per sample) + ridge;
- :mod:`.optim`: AdamW, Adam, GD and normalized GD;
- :mod:`.engine`: the one training loop, its two backends (one module run; B runs by ``vmap``)
  and the CUDA-graph capture;
- :mod:`.trajectory`: what a run produces, its checkpoints and its store;
- :mod:`.progress`: the progress bar or log lines of a run;
- :mod:`.stage`: the training stage (one run → its store) and the ``ntpgeom train`` CLI.
"""
