"""The training stage: one run → its trajectory store (``scripts/train.py``, the CLI), and the CLI.

``ntpgeom train TABLE --model ufm --out X.zarr ...`` trains one run through the engine
(:func:`ntpgeom.train.engine.fit`) and writes ``train/{model}/{run}.zarr`` (``docs/artifacts.md``),
resuming from ``{run}.ckpt.pt`` when a previous attempt was killed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Any

import numpy as np

from ntpgeom.data.table import Table, load
from ntpgeom.store import write_store
from ntpgeom.train.config import DTYPES, LOSS_FORMS, MODELS, OPTIMIZERS, TrainConfig
from ntpgeom.train.engine import fit
from ntpgeom.train.trajectory import checkpoint_path, trajectory_dataset

log = logging.getLogger(__name__)


def train(table: Table, config: TrainConfig, *, out: str | os.PathLike,
          progress: bool | None = None, extra_config: dict[str, Any] | None = None,
          features: np.ndarray | None = None, extend: Any = None):
    """Train one run and write its trajectory store ``out``, resuming from ``{run}.ckpt.pt``.

    The checkpoint is removed once the store is written (a kill between the two leaves a
    checkpoint at the last step, from which a rerun only rewrites the store).

    ``features``: the fixed H̄ (d, m) of ``model: linear``. ``extend``: a function of the dataset
    returning it with more variables or attrs (per-step metrics), applied before writing.

    Returns
    -------
    xarray.Dataset
        The store's content.
    """
    ckpt = checkpoint_path(out)
    traj = fit(table, config, checkpoint=ckpt, progress=progress, features=features)
    ds = trajectory_dataset(traj, table, config, extra_config)
    if extend is not None:
        ds = extend(ds)
    write_store(ds, out)
    ckpt.unlink(missing_ok=True)
    last = traj.metrics[-1]
    log.info("%s d=%d: %d epochs, CE %.6f, CE − H %.3e, ‖W‖ %.3g, ‖H‖ %.3g, %.1f s on %s%s",
             config.model, config.d, config.epochs, last[0], last[0] - table.entropy, last[1],
             last[2], traj.wall_seconds, traj.device, " (CUDA graph)" if traj.graph else "")
    return ds


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the UFM or the transformer on a table",
                              description="Train one run on a table.zarr and write its "
                              "trajectory store (resumes from OUT's .ckpt.pt if present).",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("table", help="a table.zarr store")
    p.add_argument("--out", required=True, help="trajectory store to write (…/{run}.zarr)")
    # Every default is TrainConfig's (the `train` section's), shown by --help.
    defaults = TrainConfig()
    p.add_argument("--model", choices=MODELS, default=defaults.model, help="the model trained")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                   help="the update rule")
    p.add_argument("--loss", choices=LOSS_FORMS, default=defaults.loss,
                   help="CE over the m distinct contexts, or over the n rows")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=defaults.dtype,
                   help="float64 where CE − H falls below float32's ~1e-7")
    for name, kind, what in (
            ("d", int, "embedding width"), ("epochs", int, "full-batch steps"),
            ("lr", float, "learning rate"), ("weight_decay", float, "AdamW's decoupled decay "
                                             "(gd: coupled L2)"),
            ("eps", float, "AdamW's epsilon"), ("ridge", float, "λ of λ(‖W‖² + ‖H‖²)"),
            ("gamma", float, "LR factor at each milestone"), ("seed", int, "initialisation seed"),
            ("n_layers", int, "transformer layers"), ("n_heads", int, "transformer heads"),
            ("ffn_hidden", int, "SwiGLU hidden width (None: 4·d)"),
            ("trace_every", int, "keep the dense series every k steps"),
            ("checkpoints_per_decade", int, "W, H snapshots per decade of steps"),
            ("save_every_s", float, "resume state at least this often (seconds)"),
            ("threads", int, "torch CPU threads (None: torch's choice)"),
            ("init_scale", float, "RMS of W's and H's entries at step 0 (None: the model's "
                                  "own initialisation)")):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                       default=getattr(defaults, name), help=what)
    p.add_argument("--betas", type=float, nargs=2, default=list(defaults.betas),
                   help="AdamW's (β1, β2)")
    p.add_argument("--milestones", type=int, nargs="*", default=list(defaults.milestones),
                   help="MultiStepLR milestones in steps")
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--graph", choices=("auto", "on", "off"), default=defaults.graph,
                   help="capture the step in a CUDA graph (auto: on CUDA)")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a bar")
    p.set_defaults(func=_cli)


def _cli(args) -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in names}
    train(load(args.table), TrainConfig.from_dict(settings), out=args.out,
          progress=False if args.no_progress else None)
