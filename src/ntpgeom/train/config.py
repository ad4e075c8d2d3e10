"""Settings of a training run: :class:`TrainConfig`, LR schedule, checkpoint steps, device.

Defaults are the paper's (``docs/paper.md`` §2.3) except where a comment says otherwise. Steps
count optimizer updates: "step k" is the model after k updates, so a run of E epochs has steps
0 … E (full batch: one step = one epoch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ntpgeom.errors import UserError

log = logging.getLogger(__name__)

MODELS = ("ufm", "transformer", "linear")
OPTIMIZERS = ("adamw", "gd", "ngd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
LOSS_FORMS = ("distinct", "per_sample")



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
    # RMS of the entries of W and H at step 0 (None: the model's own draw, the paper's). Small
    # values put training in the saddle-to-saddle regime where S̄'s modes are learned one by one
    # (docs: semantics.md §2.3); see ntpgeom.train.model.init_model.
    init_scale: float | None = None

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
        if self.init_scale is not None and not (self.init_scale > 0
                                                and math.isfinite(self.init_scale)):
            raise bad("init_scale", "must be a finite number > 0, or null for the model's own "
                      "initialisation")
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
        if self.init_scale is None:  # the default draw: fingerprints as before the option
            out.pop("init_scale")
        return out

    def lr_at(self, step: int) -> float:
        """MultiStepLR in closed form: lr·γ^{#milestones ≤ step} for the update made at ``step``.

        Same as torch's scheduler stepped once after each optimizer step, as the paper's loop does.
        """
        return self.lr * self.gamma ** sum(step >= s for s in self.milestones)


def checkpoint_steps(epochs: int, per_decade: int = 3, *, count: int | None = None
                     ) -> list[int]:
    """The steps at which a run keeps W and H: log-spaced in [0, epochs], with 0 and epochs.

    By default 0, 1, 2, 5, 10, 20, 50, … ≤ epochs (``per_decade = 3`` gives the 1-2-5 series;
    other values round 10^(k + i/per_decade)). With ``count`` (a grid's ``checkpoints``): about
    ``count`` steps, 0 and the rounded 10^(i·log10(epochs)/(count − 2)), i = 0 … count − 2.
    """
    if count is not None:
        steps = np.round(np.logspace(0, math.log10(max(epochs, 1)), max(count - 1, 1)))
        return sorted({0, epochs, *(int(s) for s in steps)})
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


def train_device(requested: str) -> torch.device:
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
def numerics(device: torch.device, threads: int | None) -> Iterator[None]:
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

