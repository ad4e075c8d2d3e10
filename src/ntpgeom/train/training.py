"""Training the UFM and the transformer on a distinct-context table, with resumable trajectories.

The loss is the NTP cross-entropy over the m distinct contexts (``docs/paper.md`` §1.1):

    CE(W, θ) = −Σ_j π_j Σ_{z∈S_j} P_zj log softmax(W h_θ(x̄_j))_z,

the same function (value and gradient) as the paper code's mean over all n samples, at m/n of the
cost, optionally plus the explicit ridge λ(‖W‖_F² + ‖H‖_F²) of the regularization path (§1.2).
Optimizers: AdamW (the paper's, §2.3) and plain GD; the LR follows MultiStepLR (milestones,
gamma), computed from the step number so that it needs no state and works inside a CUDA graph.

Steps count optimizer updates: "step k" is the model after k updates, its loss is CE at those
parameters, so a run of E epochs has steps 0 … E (full batch: one step = one epoch). The result
(:class:`Trajectory`) holds the dense per-step series (every ``trace_every`` steps) and W, H at
log-spaced checkpoint steps 0, 1, 2, 5, 10, 20, 50, … and E.

Resume: with a checkpoint path, the full training state (model, optimizer, RNG, trajectory so far,
step, and a fingerprint of the config and table) is saved atomically at every checkpoint step and
every ``save_every_s`` seconds; a rerun continues from it and ends with the same trajectory, bit
for bit on CPU, as an uninterrupted run. A checkpoint from another config is refused.

On CUDA the full-batch step (forward, backward, fused AdamW) is captured once in a CUDA graph and
replayed: small full-batch steps are bound by kernel launches, not arithmetic (``baselines.md``:
17.7 ms eager vs 2.1 ms replayed for the paper's transformer on an H100). Matmuls use TF32 there.

The numerical core imports torch and numpy only; :func:`to_dataset` and :func:`train` import
xarray lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.train.model import build_model

log = logging.getLogger(__name__)

MODELS = ("ufm", "transformer", "linear")
OPTIMIZERS = ("adamw", "gd", "ngd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
LOSS_FORMS = ("distinct", "per_sample")
CHECKPOINT_FORMAT = 1


# -----------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the paper's (§2.3) except where a comment says otherwise."""

    model: str = "ufm"  # "ufm", "transformer", or "linear" (fixed H̄, W only: NeurIPS §1.9)
    d: int = 128  # embedding width; the paper's d = 128
    epochs: int = 30_000  # full-batch steps; the paper's 30k
    optimizer: str = "adamw"  # the paper's AdamW; "gd" = plain gradient descent (theory, §1.9);
    # "ngd" = normalized GD, W ← W − η ∇/‖∇‖; "adam" = Adam (coupled L2): NeurIPS App. A
    lr: float = 1e-4  # the paper's AdamW learning rate
    weight_decay: float = 1e-6  # AdamW's decoupled decay (the paper's small "lammy"); GD: coupled
    betas: tuple[float, float] = (0.9, 0.999)  # torch's defaults, left unchanged by the paper
    eps: float = 1e-8  # torch's AdamW default
    ridge: float = 0.0  # λ of the explicit penalty λ(‖W‖² + ‖H‖²) added to CE (reg. path, §1.2)
    milestones: tuple[int, ...] = (5000, 10000, 15000, 20000, 25000)  # the paper's MultiStepLR
    gamma: float = 0.4  # the paper's MultiStepLR factor
    seed: int = 0  # seeds the initialisation (the only randomness of full-batch training)
    loss: str = "distinct"  # "distinct" (m rows) or "per_sample" (n rows, the paper's code)
    n_layers: int = 4  # transformer only: the paper's 4 layers
    n_heads: int = 6  # transformer only: the paper's 6 heads
    ffn_hidden: int | None = None  # transformer only: SwiGLU width, None = 4·d (the paper: 512)
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda" or "cuda:N"
    graph: str = "auto"  # CUDA-graph replay of the step: "auto" (on CUDA), "on", "off"
    trace_every: int = 1  # keep the dense series every k steps (raise it for very long runs)
    checkpoints_per_decade: int = 3  # W, H snapshots per decade of steps: 3 = 1, 2, 5, 10, …
    save_every_s: float = 60.0  # resume state at least this often (and at every checkpoint step)
    threads: int | None = None  # torch CPU threads (None = leave torch's setting)
    dtype: str = "float32"  # the paper's; "float64" where CE − H falls below float32's ~1e-7

    # Settings that do not change the trajectory: left out of the checkpoint fingerprint.
    RUNTIME_ONLY = ("save_every_s", "threads")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "train") -> TrainConfig:
        """Build from a config mapping, refusing unknown keys (typos) with the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(sorted(names))}")
        values = dict(values)
        if "betas" in values:
            values["betas"] = tuple(float(b) for b in values["betas"])
        if "milestones" in values:
            values["milestones"] = tuple(int(s) for s in values["milestones"])
        if isinstance(values.get("graph"), bool):
            values["graph"] = "on" if values["graph"] else "off"
        config = cls(**values)
        config.validate(where)
        return config

    def validate(self, where: str = "train") -> None:
        """Raise a one-line :class:`UserError` for a setting no run can use."""
        def bad(key: str, why: str) -> UserError:
            return UserError(f"{where}.{key}: {why}; got {getattr(self, key)!r}")

        if self.model not in MODELS:
            raise bad("model", f"must be one of {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.dtype not in DTYPES:
            raise bad("dtype", f"must be one of {', '.join(DTYPES)}")
        if self.loss not in LOSS_FORMS:
            raise bad("loss", f"must be one of {', '.join(LOSS_FORMS)}")
        if not isinstance(self.d, int) or self.d < 1:
            raise bad("d", "the embedding width must be an integer ≥ 1")
        if self.epochs < 0:
            raise bad("epochs", "must be ≥ 0")
        for key in ("lr", "weight_decay", "ridge", "eps"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise bad(key, "must be a finite number ≥ 0")
        if not (self.gamma > 0 and math.isfinite(self.gamma)):
            raise bad("gamma", "must be > 0")
        if any(not 0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise bad("betas", "must be two numbers in [0, 1)")
        if any(s < 1 for s in self.milestones):
            raise bad("milestones", "must be steps ≥ 1")
        if self.trace_every < 1:
            raise bad("trace_every", "must be ≥ 1")
        if self.checkpoints_per_decade < 1:
            raise bad("checkpoints_per_decade", "must be ≥ 1")
        if self.graph not in ("auto", "on", "off"):
            raise bad("graph", "must be auto, on or off")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", "must be auto, cpu, cuda or cuda:N")
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "must be ≥ 1")
        if self.model == "transformer":
            if self.n_layers < 1 or self.n_heads < 1:
                raise bad("n_layers" if self.n_layers < 1 else "n_heads", "must be ≥ 1")
            if (self.d // self.n_heads // 2) * 2 < 2:
                raise bad("d", f"is too narrow for {self.n_heads} heads (head_dim = "
                          f"(d // n_heads // 2)·2 must be ≥ 2): use d ≥ {4 * self.n_heads} or "
                          "fewer heads")
            if self.ffn_hidden is not None and self.ffn_hidden < 1:
                raise bad("ffn_hidden", "must be ≥ 1 or null (= 4·d)")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"], out["milestones"] = list(self.betas), list(self.milestones)
        return out

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that determine the trajectory (everything but runtime knobs)."""
        out = self.to_dict()
        for key in self.RUNTIME_ONLY:
            out.pop(key)
        if self.model != "transformer":  # transformer knobs mean nothing for the UFM
            for key in ("n_layers", "n_heads", "ffn_hidden"):
                out.pop(key)
        return out

    def lr_at(self, step: int) -> float:
        """MultiStepLR in closed form: lr·γ^{#milestones ≤ step} for the update made at ``step``.

        Same as torch's scheduler stepped once after each optimizer step, as the paper's loop does.
        """
        return self.lr * self.gamma ** sum(step >= s for s in self.milestones)


def checkpoint_steps(epochs: int, per_decade: int = 3) -> list[int]:
    """Log-spaced steps 0, 1, 2, 5, 10, 20, 50, … ≤ epochs, plus epochs itself.

    ``per_decade = 3`` gives the 1-2-5 series; other values round 10^(k + i/per_decade).
    """
    steps = {0, epochs}
    decade = 1
    while decade <= epochs:
        if per_decade == 3:
            mantissas = [1.0, 2.0, 5.0]
        else:
            mantissas = [10 ** (i / per_decade) for i in range(per_decade)]
        steps.update(s for s in (int(round(decade * c)) for c in mantissas) if s <= epochs)
        decade *= 10
    return sorted(steps)


# -----------------------------------------------------------------------------------------------
# Device


def resolve_device(requested: str) -> torch.device:
    """``auto``: CUDA when present, else CPU (with a log line); ``cuda`` without CUDA: UserError."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("train.device auto: no CUDA device, training on CPU (float32)")
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"train.device: {requested!r} requested but torch "
                            f"{torch.__version__} sees no CUDA device; use device: auto or cpu")
        index = torch.device(requested).index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"train.device: {requested!r} requested but only "
                            f"{torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(requested)


@contextlib.contextmanager
def _numerics(device: torch.device, threads: int | None) -> Iterator[None]:
    """TF32 matmuls on CUDA (the issue's choice: ~free accuracy loss at this size) and the CPU
    thread count, restored on exit so that callers (tests, notebooks) see no global change."""
    old_precision = torch.get_float32_matmul_precision()
    old_threads = torch.get_num_threads()
    old_cudnn = torch.backends.cudnn.allow_tf32
    try:
        if device.type == "cuda":
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
        if threads is not None:
            torch.set_num_threads(threads)
        yield
    finally:
        torch.set_float32_matmul_precision(old_precision)
        torch.backends.cudnn.allow_tf32 = old_cudnn
        torch.set_num_threads(old_threads)


# -----------------------------------------------------------------------------------------------
# Losses


def distinct_targets(table: Table) -> np.ndarray:
    """Q = diag(π) Pᵀ, (m, V): the weight of −log softmax(W h_j)_z in the distinct-context CE.

    Σ Q = 1, so CE = −Σ_{j,z} Q_jz log softmax(l_j)_z is a weighted mean like the paper's.
    """
    Q = np.zeros((table.m, table.V))
    Q[table.column, table.indices] = table.pi[table.column] * table.prob
    return Q


def per_sample_rows(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """The n training samples of the paper's code: context index and next token of each, (n,) each.

    Pair (j, z) with count c appears c times; rows are in context-major order.
    """
    return (np.repeat(table.column, table.pair_count), np.repeat(table.indices, table.pair_count))


def distinct_ce(logits: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """CE = −Σ_j π_j Σ_z P_zj log softmax(l_j)_z from logits (m, V) and Q = diag(π) Pᵀ (m, V)."""
    return -(Q * F.log_softmax(logits, dim=-1)).sum()


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper code's loss: mean cross-entropy over the n samples, logits (n, V), targets (n,).

    The code back-propagates the sum and reports sum / n; AdamW is invariant to that scale (up to
    eps), GD is not, so the mean is the form that equals the distinct-context CE.
    """
    return F.cross_entropy(logits, targets)


class Objective(torch.nn.Module):
    """CE (distinct or per-sample form) + λ(‖W‖² + ‖H‖²), and the metrics logged at each step.

    ``forward()`` returns (objective, metrics) with metrics = [CE, ‖W‖_F, ‖H‖_F] (3,), all computed
    at the current parameters, before the update, as one tensor so that a CUDA graph can leave it
    in a static buffer.
    """

    def __init__(self, model: torch.nn.Module, table: Table, form: str, ridge: float, *,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model, self.form, self.ridge = model, form, ridge
        if form == "distinct":
            self.register_buffer("Q", torch.tensor(distinct_targets(table), dtype=dtype))
        else:
            rows, tokens = per_sample_rows(table)
            self.register_buffer("rows", torch.from_numpy(rows))
            self.register_buffer("tokens", torch.from_numpy(tokens))
            # First sample of each context: the distinct embeddings, for ‖H‖ and the ridge.
            first = np.concatenate([[0], np.cumsum(table.count)[:-1]])
            self.register_buffer("first", torch.from_numpy(first.astype(np.int64)))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.form == "distinct":
            logits, h = self.model()  # (m, V), (m, d)
            ce = distinct_ce(logits, self.Q)
        else:
            logits, h = self.model(self.rows)  # (n, V), (n, d)
            ce = per_sample_ce(logits, self.tokens)
            h = h[self.first]  # (m, d)
        W = self.model.W  # (V, d)
        norm_W2, norm_H2 = W.pow(2).sum(), h.pow(2).sum()
        objective = ce + self.ridge * (norm_W2 + norm_H2) if self.ridge else ce
        metrics = torch.stack([ce, norm_W2.sqrt(), norm_H2.sqrt()]).detach()
        return objective, metrics


# -----------------------------------------------------------------------------------------------
# Optimizers


class GD(torch.optim.Optimizer):
    """Plain gradient descent, p ← p − η(∇p + wd·p) (wd: coupled L2, as torch's SGD).

    ``normalize=True``: normalized GD, p ← p − η g/‖g‖ with g = ∇p + wd·p and ‖g‖ over all
    parameters (the NeurIPS paper's NGD, App. A).

    ``lr`` may be a 0-dim tensor, so that a captured CUDA graph follows the LR schedule.
    """

    def __init__(self, params, lr: float | torch.Tensor, weight_decay: float = 0.0,
                 normalize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.normalize = normalize

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        assert closure is None, "full-batch GD takes no closure"
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            grads = [p.grad.add(p, alpha=wd) if wd else p.grad
                     for p in group["params"] if p.grad is not None]
            # Normalized GD (NeurIPS App. A): a step of length η along −∇, the gradient's norm
            # taken over all parameters together; clamped so that a zero gradient stays zero.
            scale = (torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in grads]))
                     .clamp_min(torch.finfo(grads[0].dtype).tiny)
                     if self.normalize and grads else None)
            for p, g in zip([p for p in group["params"] if p.grad is not None], grads,
                            strict=True):
                if scale is not None:
                    g = g / scale
                if isinstance(lr, torch.Tensor):
                    p.sub_(g * lr)
                else:
                    p.add_(g, alpha=-lr)


def make_optimizer(config: TrainConfig, params, device: torch.device,
                   lr_tensor: torch.Tensor | None = None) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA: one kernel for all parameters) or GD.

    With ``lr_tensor`` (graph mode) the LR lives on the device and is changed in place.
    """
    lr: float | torch.Tensor = lr_tensor if lr_tensor is not None else config.lr_at(0)
    if config.optimizer in ("gd", "ngd"):
        return GD(params, lr=lr, weight_decay=config.weight_decay,
                  normalize=config.optimizer == "ngd")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay,
                                fused=True if device.type == "cuda" else None)
    return torch.optim.AdamW(params, lr=lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay,
                             fused=True if device.type == "cuda" else None)


# -----------------------------------------------------------------------------------------------
# The trainer: one full-batch step, eager or replayed from a CUDA graph


def table_digest(table: Table) -> str:
    """SHA-256 of what training reads from a table (supports, counts, context ids, sizes)."""
    h = hashlib.sha256()
    for array in (table.indptr, table.indices, table.pair_count, table.context_ids):
        a = np.ascontiguousarray(array, dtype=np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps([len(table.tokens), len(table.input_tokens)]).encode())
    return h.hexdigest()[:16]


def check_features(table: Table, config: TrainConfig, features: np.ndarray | None) -> None:
    """The fixed embeddings H̄ (d, m) of the linear model: present exactly when it is trained,
    and the shape of the table and of ``d``."""
    if config.model != "linear":
        assert features is None, "fixed features are for model linear only"
        return
    if features is None:
        raise UserError("train.model linear: the fixed context embeddings H̄ are missing")
    shape = tuple(np.shape(features))
    if shape != (config.d, table.m):
        raise UserError(f"train.model linear: the embeddings are {shape[0]} × {shape[1]} but d = "
                        f"{config.d} and the table has m = {table.m} contexts; they must be "
                        "d × m: set d to the embeddings' width or use embeddings of this table")
    if not np.isfinite(features).all():
        raise UserError("train.model linear: the embeddings contain NaN or inf")


def features_digest(features: np.ndarray | None) -> str | None:
    """SHA-256 (16 hex digits) of the linear model's fixed H̄, for the checkpoint fingerprint."""
    if features is None:
        return None
    a = np.ascontiguousarray(features, dtype=np.float64)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def check_table(table: Table) -> None:
    if table.m == 0:
        raise UserError("train: the table has no contexts (m = 0); nothing to train on: rebuild "
                        "it with looser selection settings")
    if table.V == 0:
        raise UserError("train: the table has no next tokens (V = 0)")


class Trainer:
    """Holds model, objective and optimizer for one run, and advances it one step at a time.

    Parameters
    ----------
    table : Table
        The distinct-context table.
    config : TrainConfig
        Hyperparameters and runtime settings (validated).
    device : torch.device
        Where to train (see :func:`resolve_device`).
    """

    def __init__(self, table: Table, config: TrainConfig, device: torch.device,
                 features: np.ndarray | None = None) -> None:
        check_table(table)
        config.validate()
        check_features(table, config, features)
        dtype = DTYPES[config.dtype]
        self.table, self.config, self.device = table, config, device
        self.use_graph = device.type == "cuda" and config.graph != "off"
        if config.graph == "on" and device.type != "cuda":
            raise UserError("train.graph: on needs a CUDA device; use graph: auto or off on CPU")
        # The initialisation is the only randomness: seed it without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            extra = {}
            if config.model == "transformer":
                extra = {"n_layers": config.n_layers, "n_heads": config.n_heads,
                         "ffn_hidden": config.ffn_hidden}
            fixed = (torch.as_tensor(features, dtype=dtype) if features is not None else None)
            self.model = build_model(config.model, m=table.m, V=table.V, d=config.d,
                                     context_ids=torch.from_numpy(table.context_ids),
                                     vocab_in=max(len(table.input_tokens), 1), features=fixed,
                                     **extra)
        self.model.to(device=device, dtype=dtype)
        self.objective = Objective(self.model, table, config.loss, config.ridge,
                                   dtype=dtype).to(device)
        self.lr_tensor = (torch.tensor(config.lr_at(0), dtype=torch.float32, device=device)
                          if self.use_graph else None)
        self.optimizer = make_optimizer(config, self.model.parameters(), device, self.lr_tensor)
        self.step = 0  # number of updates made so far
        self._lr: float | None = None  # the LR the optimizer holds now
        self._warmup = 3 if self.use_graph else 0  # eager steps before capture (see _capture)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_metrics: torch.Tensor | None = None

    # -- LR ----------------------------------------------------------------------------------
    def _set_lr(self, value: float) -> None:
        # The LR only changes at milestones; setting it every step would cost, on CUDA, a
        # host→device copy per step.
        if value == self._lr:
            return
        self._lr = value
        for group in self.optimizer.param_groups:
            if self.lr_tensor is not None:
                group["lr"] = self.lr_tensor  # the tensor the graph reads (survives a reload)
            else:
                group["lr"] = value
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(value)

    # -- one step ----------------------------------------------------------------------------
    def _eager_step(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        objective, metrics = self.objective()
        objective.backward()
        self.optimizer.step()
        return metrics

    def _capture(self) -> None:
        """Record forward + backward + optimizer step as one CUDA graph.

        Follows the whole-network recipe of the torch CUDA-graph docs: a few eager steps on a
        side stream first (they allocate the optimizer state and the gradient buffers, and warm
        cuBLAS up); these are real training steps and are recorded as such by :meth:`advance`.
        """
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            objective, metrics = self.objective()
            objective.backward()
            self.optimizer.step()
        self._graph, self._static_metrics = graph, metrics

    def advance(self) -> torch.Tensor:
        """Make the update of step ``self.step``; return [CE, ‖W‖, ‖H‖] at the parameters before
        it (i.e. at step ``self.step``), then increment ``self.step``."""
        self._set_lr(self.config.lr_at(self.step))
        if not self.use_graph:
            metrics = self._eager_step()
        elif self._graph is None and self._warmup > 0:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                metrics = self._eager_step()
            torch.cuda.current_stream().wait_stream(side)
            self._warmup -= 1
        else:
            if self._graph is None:
                self._capture()
            assert self._graph is not None and self._static_metrics is not None
            self._graph.replay()
            metrics = self._static_metrics.clone()  # the static buffer is overwritten next replay
        self.step += 1
        return metrics

    @torch.no_grad()
    def evaluate(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray | None]:
        """Metrics [CE, ‖W‖, ‖H‖] and :meth:`snapshot` at the current parameters, eagerly."""
        _, metrics = self.objective()
        return (metrics, *self.snapshot())

    @torch.no_grad()
    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """W (V, d), H (d, m) and the transformer's per-layer states (layers, d, m) (None for the
        other models) at the current parameters (H by a forward pass for the TF)."""
        W = self.model.W.detach().float().cpu().numpy().copy()
        H = self.model.H().detach().float().cpu().numpy().copy()
        return W, H, layer_snapshot(self.model)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "step": self.step,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self._graph is None, "load state before the first step"
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step = int(state["step"])
        self._lr = None  # the loaded param_groups hold the saved LR: set ours again
        self._set_lr(self.config.lr_at(self.step))


def layer_snapshot(model: torch.nn.Module) -> np.ndarray | None:
    """The last position's representation after the embedding, each block and the final norm,
    (layers, d, m) in the paper's orientation (:meth:`Transformer.layer_states`); None for a
    model without layers. Taken at checkpoints only: the training step keeps no extra state."""
    if not hasattr(model, "layer_states"):
        return None
    with torch.no_grad():
        return model.layer_states().transpose(1, 2).float().cpu().numpy().copy()


# -----------------------------------------------------------------------------------------------
# The run: trajectory, checkpoints, resume


@dataclass
class Trajectory:
    """What a run produces, as NumPy arrays (see ``docs/artifacts.md`` for the store)."""

    step: list[int] = field(default_factory=list)  # checkpoint steps
    metrics: list[np.ndarray] = field(default_factory=list)  # [CE, ‖W‖, ‖H‖] per checkpoint
    W: list[np.ndarray] = field(default_factory=list)  # (V, d) per checkpoint
    H: list[np.ndarray] = field(default_factory=list)  # (d, m) per checkpoint
    trace_step: list[int] = field(default_factory=list)
    trace: list[np.ndarray] = field(default_factory=list)  # [CE, ‖W‖, ‖H‖] per trace step
    wall_seconds: float = 0.0  # training time, summed over resumed attempts
    device: str = "cpu"
    graph: bool = False
    #: Transformer only: (layers, d, m) per checkpoint, :func:`layer_snapshot`; empty otherwise.
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


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Resume state of the store ``out``: ``{run}.ckpt.pt`` beside ``{run}.zarr``.

    Outside the store on purpose: Snakemake deletes a ``directory()`` output before rerunning a
    job, and the checkpoint must survive that.
    """
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zarr") + ".ckpt.pt")


def fingerprint(table: Table, config: TrainConfig, device: torch.device,
                use_graph: bool, features: np.ndarray | None = None) -> dict[str, Any]:
    """Everything that determines the trajectory; a checkpoint resumes only if it matches."""
    out = {"format": CHECKPOINT_FORMAT, **config.hyperparameters(), "table": table_digest(table),
           "device_type": device.type, "graph": use_graph, "torch_version": torch.__version__}
    if features is not None:
        out["features"] = features_digest(features)
    return out


def _save_checkpoint(path: Path, trainer: Trainer, traj: Trajectory, fp: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename): a kill mid-save keeps the previous one."""
    state = {"fingerprint": json.dumps(fp, sort_keys=True), "trainer": trainer.state_dict(),
             "trajectory": traj.to_state()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, fp: dict[str, Any], device: torch.device) -> dict[str, Any]:
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


class _Progress:
    """tqdm bar (epoch, loss, CE − H) on a terminal; a log line every ~10% otherwise."""

    def __init__(self, total: int, initial: int, entropy: float, enabled: bool | None) -> None:
        self.total, self.entropy, self.bar = total, entropy, None
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.every = max(1, total // 10)
        self.next_log = (initial // self.every + 1) * self.every
        if tty:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the core runs without tqdm; fall back to log lines
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, unit="epoch", dynamic_ncols=True,
                                mininterval=0.5, file=sys.stderr)

    def update(self, step: int, n: int, metrics: torch.Tensor | None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if metrics is not None:
                ce = float(metrics[0])
                self.bar.set_postfix(epoch=step, loss=f"{ce:.5f}",
                                     ce_minus_H=f"{ce - self.entropy:.3e}", refresh=False)
        elif step >= self.next_log and metrics is not None:
            ce = float(metrics[0])
            log.info("epoch %d/%d  loss %.6f  CE − H %.3e", step, self.total, ce,
                     ce - self.entropy)
            self.next_log += self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit(table: Table, config: TrainConfig, *, checkpoint: str | os.PathLike | None = None,
        progress: bool | None = None, features: np.ndarray | None = None) -> Trajectory:
    """Train one run and return its trajectory; resume from ``checkpoint`` when it exists.

    Parameters
    ----------
    table : Table
        The distinct-context table (m ≥ 1).
    config : TrainConfig
        The run's settings.
    checkpoint : path, optional
        Resume state file (see :func:`checkpoint_path`). Read if present, written at every
        checkpoint step and every ``config.save_every_s`` seconds, left in place at the end (the
        caller removes it once the result is safely stored).
    progress : bool, optional
        Progress bar; default: when stderr is a terminal (else log lines).
    features : ndarray (d, m), optional
        The fixed context embeddings H̄ of ``model: linear`` (required for it, refused otherwise).

    Raises
    ------
    UserError
        Bad settings, an empty table, CUDA requested without CUDA, or a checkpoint made with
        another config or table.
    """
    config.validate()
    check_table(table)
    device = resolve_device(config.device)
    with _numerics(device, config.threads):
        trainer = Trainer(table, config, device, features)
        fp = fingerprint(table, config, device, trainer.use_graph, features)
        traj = Trajectory(device=str(device), graph=trainer.use_graph,
                          layers=list(getattr(trainer.model, "layer_names", [])))
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and path.exists():
            state = _load_checkpoint(path, fp, device)
            trainer.load_state_dict(state["trainer"])
            traj = Trajectory.from_state(state["trajectory"], str(device), trainer.use_graph)
            log.info("resuming %s from step %d of %d", path, trainer.step, config.epochs)
        _run(trainer, traj, config, table.entropy, path, fp, progress)
    return traj


@contextlib.contextmanager
def _deferred_signals(caught: list[int]) -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while training: record them in ``caught``; the loop stops at the
    next step boundary, saves a checkpoint there, and the signal is delivered on exit.

    An interrupt raised mid-step (e.g. between the optimizer's update and the step counter) would
    leave a state that resumes to another trajectory. Only signals whose handler raises (a Python
    function, e.g. the CLI's) are deferred; others keep their default action.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)
            if callable(signal.getsignal(sig))}
    for sig in held:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])  # the caller's handler raises (KeyboardInterrupt, …)


def _check_finite(steps: list[int], values: np.ndarray, config: TrainConfig,
                  path: Path | None) -> None:
    """Stop a diverged run: metrics rows [CE, ‖W‖, ‖H‖] at ``steps`` must be finite.

    Called where the loop already copies metrics to the host (flushes, checkpoints), so the CUDA
    path gains no sync. The checkpoint is removed: a rerun with a smaller LR has another config.
    """
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        if path is not None:
            path.unlink(missing_ok=True)
        raise UserError(f"training diverged: the loss or the parameters are not finite at step "
                        f"{steps[int(np.argmax(bad))]} (optimizer {config.optimizer}, lr "
                        f"{config.lr:g}); nothing written: use a smaller learning rate "
                        "(train.lr, --lr)")


def _run(trainer: Trainer, traj: Trajectory, config: TrainConfig, entropy: float,
         path: Path | None, fp: dict[str, Any], progress: bool | None) -> None:
    E = config.epochs
    ckpt = set(checkpoint_steps(E, config.checkpoints_per_decade))
    bar = _Progress(E, trainer.step, entropy, progress)
    start = time.perf_counter()
    elapsed_before = traj.wall_seconds
    last_save = start
    # Trace values stay on the device until a flush: no host sync per step on CUDA.
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if pending:
            values = torch.stack([m for _, m in pending]).double().cpu().numpy()
            _check_finite([s for s, _ in pending], values, config, path)
            traj.trace_step.extend(s for s, _ in pending)
            traj.trace.extend(values)
            pending.clear()

    def save() -> None:
        nonlocal last_save
        flush()
        traj.wall_seconds = elapsed_before + time.perf_counter() - start
        if path is not None:
            _save_checkpoint(path, trainer, traj, fp)
        last_save = time.perf_counter()

    caught: list[int] = []  # SIGINT/SIGTERM received during the loop (see _deferred_signals)
    with _deferred_signals(caught), contextlib.closing(bar):
        while trainer.step < E:
            if caught:  # a step boundary: keep a checkpoint here, then deliver the signal
                save()
                break
            s = trainer.step
            snap = trainer.snapshot() if s in ckpt else None
            metrics = trainer.advance()
            if s % config.trace_every == 0:
                pending.append((s, metrics))
            if snap is not None:
                traj.step.append(s)
                traj.metrics.append(metrics.double().cpu().numpy())
                _check_finite([s], traj.metrics[-1][None], config, path)
                traj.W.append(snap[0])
                traj.H.append(snap[1])
                if snap[2] is not None:
                    traj.H_layer.append(snap[2])
            if len(pending) >= 4096:
                flush()
            bar.update(s + 1, 1, metrics if (s + 1) % max(1, E // 1000) == 0 else None)
            if (s + 1) in ckpt or time.perf_counter() - last_save >= config.save_every_s:
                save()
        flush()
        if trainer.step == E and (not traj.step or traj.step[-1] != E):
            # The last step has no update after it: evaluate once more for its metrics.
            metrics, W, H, H_layer = trainer.evaluate()
            traj.step.append(E)
            traj.metrics.append(metrics.double().cpu().numpy())
            _check_finite([E], traj.metrics[-1][None], config, path)
            traj.W.append(W)
            traj.H.append(H)
            if H_layer is not None:
                traj.H_layer.append(H_layer)
            if not traj.trace_step or traj.trace_step[-1] != E:
                traj.trace_step.append(E)
                traj.trace.append(metrics.double().cpu().numpy())
            save()
    traj.wall_seconds = elapsed_before + time.perf_counter() - start


# -----------------------------------------------------------------------------------------------
# The store


def to_dataset(traj: Trajectory, table: Table, config: TrainConfig,
               extra_config: dict[str, Any] | None = None):
    """The trajectory as the ``train/{model}/{run}.zarr`` dataset of ``docs/artifacts.md``."""
    import xarray as xr

    from ntpgeom.store import provenance

    metrics = np.stack(traj.metrics).astype(np.float64)  # (steps, 3): CE, ‖W‖, ‖H‖
    trace = np.stack(traj.trace).astype(np.float64)
    W = np.stack(traj.W)  # (steps, V, d)
    H = np.stack(traj.H)  # (steps, d, m)
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
        data["H_layer"] = (("step", "layer", "dim", "context"), np.stack(traj.H_layer),
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
    ds.attrs = provenance({**config.to_dict(), **(extra_config or {})},
                          wall_seconds=traj.wall_seconds, model=config.model, **hyper,
                          device=traj.device, cuda_graph=traj.graph,
                          torch_version=torch.__version__, entropy=H_ent, entropy_units="nats",
                          m=table.m, V=table.V, n=table.n, table_digest=table_digest(table),
                          table_source=table.source)
    return ds


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
    from ntpgeom.store import write_store

    ckpt = checkpoint_path(out)
    traj = fit(table, config, checkpoint=ckpt, progress=progress, features=features)
    ds = to_dataset(traj, table, config, extra_config)
    if extend is not None:
        ds = extend(ds)
    write_store(ds, out)
    ckpt.unlink(missing_ok=True)
    last = traj.metrics[-1]
    log.info("%s d=%d: %d epochs, CE %.6f, CE − H %.3e, ‖W‖ %.3g, ‖H‖ %.3g, %.1f s on %s%s",
             config.model, config.d, config.epochs, last[0], last[0] - table.entropy, last[1],
             last[2], traj.wall_seconds, traj.device, " (CUDA graph)" if traj.graph else "")
    return ds


def train_files(table: str | os.PathLike, out: str | os.PathLike, settings: dict[str, Any],
                *, progress: bool | None = None) -> None:
    """Read ``table.zarr``, train with ``settings`` (a ``train`` config mapping), write ``out``."""
    from ntpgeom.data.table import load

    config = TrainConfig.from_dict(settings)
    train(load(table), config, out=out, progress=progress)


# -----------------------------------------------------------------------------------------------
# CLI: ntpgeom train TABLE --model ufm --out X.zarr ...


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the UFM or the transformer on a table",
                              description="Train one run on a table.zarr and write its "
                              "trajectory store (resumes from OUT's .ckpt.pt if present).")
    p.add_argument("table", help="a table.zarr store")
    p.add_argument("--out", required=True, help="trajectory store to write (…/{run}.zarr)")
    defaults = TrainConfig()
    p.add_argument("--model", choices=MODELS, default=defaults.model)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    p.add_argument("--loss", choices=LOSS_FORMS, default=defaults.loss)
    for name, kind in (("d", int), ("epochs", int), ("lr", float), ("weight_decay", float),
                       ("ridge", float), ("gamma", float), ("seed", int), ("n_layers", int),
                       ("n_heads", int), ("trace_every", int), ("save_every_s", float)):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                       default=getattr(defaults, name), help=f"default {getattr(defaults, name)}")
    p.add_argument("--milestones", type=int, nargs="*", default=list(defaults.milestones),
                   help="MultiStepLR milestones (default: the paper's 5k … 25k)")
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--graph", choices=("auto", "on", "off"), default=defaults.graph)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a bar")
    p.set_defaults(func=_cli)


def _cli(args) -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in names}
    train_files(args.table, args.out, settings, progress=False if args.no_progress else None)
