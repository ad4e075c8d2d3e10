"""What a run produces (:class:`Trajectory`), its resumable checkpoints, and its store.

The result of a run holds the dense per-step series (every ``trace_every`` steps) and W, H at the
checkpoint steps (:func:`ntpgeom.train.config.checkpoint_steps`). With a checkpoint path, the
full training state (models, optimizers, RNG, trajectories so far, step, and a fingerprint of the
configs and table) is saved atomically; a rerun continues from it and ends with the same
trajectory, bit for bit on CPU, as an uninterrupted run. A checkpoint from another config is
refused.

xarray is imported inside :func:`trajectory_dataset` only: the engine runs on the GPU machine,
which has no zarr (``CONTRIBUTING.md``, the numerical core).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.store import provenance
from ntpgeom.train.config import TrainConfig
from ntpgeom.train.runs import run_name

#: Version of the checkpoint layout; 2: one state per run (``models``/``optimizers`` lists).
CHECKPOINT_FORMAT = 2


@dataclass
class Trajectory:
    """What a run produces, as NumPy arrays (see ``docs/artifacts.md`` for the store).

    W and H are kept in the run's dtype (the store holds them as float32,
    :func:`trajectory_dataset`; a grid's metrics read the float64 of a float64 run).
    """

    step: list[int] = field(default_factory=list)  # checkpoint steps
    metrics: list[np.ndarray] = field(default_factory=list)  # [CE, ‖W‖, ‖H‖] per checkpoint
    W: list[np.ndarray] = field(default_factory=list)  # (V, d) per checkpoint
    H: list[np.ndarray] = field(default_factory=list)  # (d, m) per checkpoint
    trace_step: list[int] = field(default_factory=list)
    trace: list[np.ndarray] = field(default_factory=list)  # [CE, ‖W‖, ‖H‖] per trace step
    wall_seconds: float = 0.0  # training time, summed over resumed attempts
    device: str = "cpu"
    graph: bool = False
    #: Transformer only: the last position's representation after the embedding, each block and
    #: the final norm, (layers, d, m) per checkpoint (:func:`ntpgeom.train.model.layer_snapshot`);
    #: empty for the other models.
    H_layer: list[np.ndarray] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # names of H_layer's first axis

    def to_state(self) -> dict[str, Any]:
        """Tensors and plain types only, so the checkpoint loads with ``weights_only=True``."""
        def stack(items: list[np.ndarray], shape: tuple[int, ...]) -> torch.Tensor:
            return torch.from_numpy(np.stack(items) if items else np.zeros((0, *shape),
                                                                          np.float32))
        V, d = self.W[0].shape if self.W else (0, 0)
        m = self.H[0].shape[1] if self.H else 0
        state = {"step": list(self.step), "metrics": stack(self.metrics, (3,)),
                 "W": stack(self.W, (V, d)), "H": stack(self.H, (d, m)),
                 "trace_step": list(self.trace_step), "trace": stack(self.trace, (3,)),
                 "wall_seconds": float(self.wall_seconds)}
        if self.H_layer:
            state["H_layer"] = stack(self.H_layer, (len(self.layers), d, m))
            state["layers"] = list(self.layers)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str, graph: bool) -> Trajectory:
        return cls(step=list(state["step"]), metrics=list(state["metrics"].numpy()),
                   W=list(state["W"].numpy()), H=list(state["H"].numpy()),
                   trace_step=list(state["trace_step"]), trace=list(state["trace"].numpy()),
                   wall_seconds=float(state["wall_seconds"]), device=device, graph=graph,
                   H_layer=list(state["H_layer"].numpy()) if "H_layer" in state else [],
                   layers=list(state.get("layers", [])))


# -- checkpoints ---------------------------------------------------------------------------------
def checkpoint_path(out: str | os.PathLike) -> Path:
    """Resume state of the store ``out``: ``{run}.ckpt.pt`` beside ``{run}.zarr``.

    Outside the store on purpose: Snakemake deletes a ``directory()`` output before rerunning a
    job, and the checkpoint must survive that.
    """
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zarr") + ".ckpt.pt")


def table_digest(table: Table) -> str:
    """SHA-256 of what training reads from a table (supports, counts, context ids, sizes)."""
    h = hashlib.sha256()
    for array in (table.indptr, table.indices, table.pair_count, table.context_ids):
        a = np.ascontiguousarray(array, dtype=np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps([len(table.tokens), len(table.input_tokens)]).encode())
    return h.hexdigest()[:16]


def features_digest(features: np.ndarray | None) -> str | None:
    """SHA-256 (16 hex digits) of the linear model's fixed H̄, for the checkpoint fingerprint."""
    if features is None:
        return None
    a = np.ascontiguousarray(features, dtype=np.float64)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def fingerprint(table: Table, configs: Sequence[TrainConfig], device: torch.device,
                use_graph: bool, features: np.ndarray | None = None,
                steps: Sequence[int] | None = None) -> dict[str, Any]:
    """Everything that determines the trajectories; a checkpoint resumes only if it matches.

    One run: its hyperparameters as keys (so a refusal names the setting); a batch: the same,
    prefixed ``run{b}.``.
    """
    out: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "table": table_digest(table),
                           "device_type": device.type, "graph": use_graph,
                           "torch_version": torch.__version__}
    if len(configs) == 1:
        out.update(configs[0].hyperparameters())
    else:
        for b, config in enumerate(configs):
            out.update({f"run{b}.{k}": v for k, v in config.hyperparameters().items()})
    if features is not None:
        out["features"] = features_digest(features)
    if steps is not None:
        out["record_steps"] = [int(s) for s in steps]
    return out


def save_checkpoint(path: Path, trainer_state: dict[str, Any], trajs: Sequence[Trajectory],
                    fp: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename): a kill mid-save keeps the previous one."""
    state = {"fingerprint": json.dumps(fp, sort_keys=True), "trainer": trainer_state,
             "trajectories": [t.to_state() for t in trajs]}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fp: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The saved state, if its fingerprint is ``fp``; else a one-line :class:`UserError`."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        saved = json.loads(state["fingerprint"])
    except Exception as err:  # a truncated or foreign file: say which, and what to do
        raise UserError(f"{path}: not a readable training checkpoint ({type(err).__name__}); "
                        "delete it to start the run over") from None
    if saved != fp:
        diffs = [f"{k}: {saved.get(k)!r} there, {fp.get(k)!r} now"
                 for k in sorted(set(saved) | set(fp)) if saved.get(k) != fp.get(k)]
        raise UserError(f"{path} was made with a different config ({'; '.join(diffs[:4])}); "
                        "refusing to resume: delete it to start over, or restore the config")
    return state


# -- the store -----------------------------------------------------------------------------------
def trajectory_dataset(traj: Trajectory, table: Table, config: TrainConfig,
                       extra_config: dict[str, Any] | None = None):
    """The trajectory as the ``train/{model}/{run}.zarr`` dataset of ``docs/artifacts.md``."""
    import xarray as xr  # not on the GPU machine (module docstring)

    metrics = np.stack(traj.metrics).astype(np.float64)  # (steps, 3): CE, ‖W‖, ‖H‖
    trace = np.stack(traj.trace).astype(np.float64)
    W = np.stack(traj.W).astype(np.float32)  # (steps, V, d); the store's precision
    H = np.stack(traj.H).astype(np.float32)  # (steps, d, m)
    logits = np.matmul(W.astype(np.float64), H.astype(np.float64))  # (V, d) @ (d, m) -> (V, m)
    H_ent = table.entropy
    obj = np.dtype(object)
    series = {
        "loss": ("CE, the distinct-context cross-entropy", "nats"),
        "ce_minus_entropy": ("CE − H, the excess over the entropy lower bound", "nats"),
        "norm_W": ("‖W‖_F", "1"),
        "norm_H": ("‖H‖_F (distinct contexts)", "1"),
    }

    def columns(values: np.ndarray) -> list[np.ndarray]:
        return [values[:, 0], values[:, 0] - H_ent, values[:, 1], values[:, 2]]

    data: dict[str, Any] = {}
    for (name, (long_name, units)), col in zip(series.items(), columns(metrics), strict=True):
        data[name] = ("step", col, {"long_name": long_name, "units": units})
    for (name, (long_name, units)), col in zip(series.items(), columns(trace), strict=True):
        data[f"trace_{name}"] = ("trace_step", col, {"long_name": long_name, "units": units})
    data["W"] = (("step", "token", "dim"), W, {"long_name": "word embeddings (decoder rows)"})
    data["H"] = (("step", "dim", "context"), H,
                 {"long_name": "context embeddings h(x̄_j)" + (
                     " (final RMSNorm output at the last position)"
                     if config.model == "transformer" else "")})
    data["logits"] = (("step", "token", "context"), logits.astype(np.float32),
                      {"long_name": "L = W H"})
    if traj.H_layer:
        data["H_layer"] = (("step", "layer", "dim", "context"),
                           np.stack(traj.H_layer).astype(np.float32),
                           {"long_name": "last position's representation after the embedding, "
                            "each block and the final norm (= H)"})
    coords = {
        "step": ("step", np.array(traj.step, dtype=np.int64), {"long_name": "optimizer updates"}),
        "trace_step": ("trace_step", np.array(traj.trace_step, dtype=np.int64)),
        "token": ("token", np.array(table.tokens, dtype=obj)),
        "context": ("context", np.array(table.contexts, dtype=obj)),
        "dim": ("dim", np.arange(config.d, dtype=np.int64)),
    }
    if traj.H_layer:
        coords["layer"] = ("layer", np.array(traj.layers, dtype=obj))
    if config.model == "linear":
        # H̄ is fixed: stored once with the run's linear reference, not per step (artifacts.md).
        for name in ("H", "norm_H", "trace_norm_H"):
            data.pop(name)
    ds = xr.Dataset(data, coords=coords)
    hyper = config.hyperparameters()
    hyper.pop("model")
    hyper["device_requested"] = hyper.pop("device")  # `device` is where it actually ran
    # The run's identity (dataset, model, run), which figures and geometry stores go by; a
    # linear-study run is named by its optimizer instead (studies/linear.py).
    identity = {"dataset": str(table.attrs.get("dataset", "")), "model": config.model}
    if config.model != "linear":
        identity["run"] = run_name(config.d, config.ridge, config.seed, config.init_scale)
    ds.attrs = provenance({**config.to_dict(), **(extra_config or {})},
                          wall_seconds=traj.wall_seconds, **identity, **hyper,
                          device=traj.device, cuda_graph=traj.graph,
                          torch_version=torch.__version__, entropy=H_ent, entropy_units="nats",
                          m=table.m, V=table.V, n=table.n, table_digest=table_digest(table),
                          table_source=table.source)
    return ds
