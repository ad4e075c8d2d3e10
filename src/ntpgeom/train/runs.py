"""The runs of a dataset's ``train`` section: the product of its run axes, each with its name.

No torch here: the workflow calls :func:`expand_runs` when it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The keys of a ``train`` section whose values are lists, one run per combination.
RUN_AXES = ("models", "d", "ridge", "init_scale", "seeds")


def run_name(d: int, ridge: float, seed: int, init_scale: float | None = None) -> str:
    """``d32-seed0``; ``d32-ridge0.001-seed0`` with an explicit ridge, ``d32-init0.001-seed0``
    with an init_scale (the ``{run}`` of ``results/{dataset}/train/{model}/{run}.zarr``)."""
    return (f"d{d}" + (f"-ridge{ridge:g}" if ridge else "")
            + (f"-init{init_scale:g}" if init_scale is not None else "") + f"-seed{seed}")


def expand_runs(section: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, run name) → the settings of :class:`ntpgeom.train.config.TrainConfig`, for every
    combination of the run axes of a validated ``train`` section (``schemas/train.schema.yaml``)."""
    shared = {k: v for k, v in section.items() if k not in RUN_AXES}
    runs = {}
    for model in section["models"]:
        for d in section["d"]:
            for ridge in section["ridge"]:
                for init in section["init_scale"]:
                    for seed in section["seeds"]:
                        runs[(model, run_name(d, ridge, seed, init))] = dict(
                            shared, model=model, d=d, ridge=float(ridge), seed=seed,
                            init_scale=None if init is None else float(init))
    return runs
