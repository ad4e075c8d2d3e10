"""The training engine: one loop over B ≥ 1 equal-shape runs, two backends, one CUDA-graph capture.

Every run of the package trains here: the training stage (UFM, transformer), grid points and the
linear study. :func:`fit` trains one run, :func:`fit_runs` B runs of equal shape together
(models, d, table, epochs and recorded steps equal; seed, LR, λ and optimizer free).

Backends (:func:`make_trainer` picks one):

- :class:`ModuleRuns`: one ``nn.Module`` run, autograd ``backward()`` (the transformer).
- :class:`VmapRuns`: the parameters of B runs stacked along a leading axis and one
  ``torch.func.vmap``-ed gradient of the same :class:`~ntpgeom.train.objective.Objective`
  (``functional_call``). The UFM and the linear model always train here, one run as a batch of
  one: a batched matmul reduces in another order than a plain one for small shapes (on CPU,
  ``bmm`` below 400 multiply-adds per slice is a naive loop, ``mm`` is MKL), so only a single
  formulation makes a run equal, bit for bit on CPU, whether it trains alone or in a batch; the
  batch size does not change a slice's bits. At the shapes of the shipped configs the two
  formulations agree bit for bit as well.

Both keep one optimizer per run (:func:`~ntpgeom.train.optim.make_optimizer`: torch's AdamW,
fused on CUDA, Adam, or :class:`~ntpgeom.train.optim.GD`), over per-run parameters that alias
the stacked storage, so a run's update is the same code whatever the batch.

On CUDA the full-batch step (forward, backward, update of all B runs) is captured once in a CUDA
graph and replayed (:meth:`Runs.advance`): small steps are bound by kernel launches, not
arithmetic (``baselines.md``: 17.7 ms eager vs 2.1 ms replayed for the paper's transformer on an
H100). Matmuls use TF32 there.

Guards (issue 12): the loop checks that every loss and parameter is finite where it syncs anyway
(trace flush, checkpoint), and stops with a one-line :class:`UserError` naming the step (no store,
no checkpoint). SIGINT/SIGTERM are held back to the next step boundary, where a checkpoint is
saved before the signal is delivered; any other exception between two steps saves one too, so
that the run resumes bit for bit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.train.config import DTYPES, TrainConfig, checkpoint_steps, numerics, train_device
from ntpgeom.train.model import check_features, check_train_table, init_model, layer_snapshot
from ntpgeom.train.objective import Objective
from ntpgeom.train.optim import make_optimizer
from ntpgeom.train.progress import Progress
from ntpgeom.train.trajectory import (
    Trajectory,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)

#: Settings that may differ between the runs of one batch (everything else fixes its shapes).
PER_RUN = ("seed", "init_scale", "lr", "optimizer", "weight_decay", "betas", "eps", "ridge",
           "milestones", "gamma")


class Runs:
    """B runs on one table, advanced together one full-batch step at a time (base of the two
    backends: they provide :meth:`_forward_backward`).

    Parameters
    ----------
    table : Table
        The distinct-context table.
    configs : sequence of TrainConfig
        One per run, validated, equal but in :data:`PER_RUN`.
    device : torch.device
        Where to train (see :func:`~ntpgeom.train.config.train_device`).
    features : ndarray (d, m), optional
        The fixed H̄ of ``model: linear``, shared by the runs.
    """

    def __init__(self, table: Table, configs: Sequence[TrainConfig], device: torch.device,
                 features: np.ndarray | None = None) -> None:
        check_train_table(table)
        configs = list(configs)
        assert configs, "no runs"
        for config in configs:
            config.validate()
            check_features(table, config, features)
        shape = [{k: v for k, v in c.to_dict().items() if k not in PER_RUN} for c in configs]
        if any(s != shape[0] for s in shape):
            raise ValueError("runs of one batch must be equal but in " + ", ".join(PER_RUN))
        config = configs[0]
        self.table, self.configs, self.device = table, configs, device
        self.use_graph = device.type == "cuda" and config.graph != "off"
        if config.graph == "on" and device.type != "cuda":
            raise UserError("train.graph: on needs a CUDA device; use graph: auto or off on CPU")
        self.models = [init_model(table, c, device, features) for c in configs]
        self.objective = Objective(self.models[0], table, config.loss, config.ridge,
                                   dtype=DTYPES[config.dtype]).to(device)
        self.step = 0  # number of updates made so far
        # True while an update is half made: a checkpoint then would not be a state of the run.
        self.dirty = False
        self._warmup = 3 if self.use_graph else 0  # eager steps before capture (see _capture)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_metrics: torch.Tensor | None = None
        self._lr: list[float | None] = [None] * len(configs)  # the LR each optimizer holds now
        self.lr_tensors: list[torch.Tensor] | None = None
        self.optimizers: list[torch.optim.Optimizer] = []

    def _make_optimizers(self) -> None:
        # After the subclass has put each run's parameters in place (they alias batch storage).
        if self.use_graph:  # the LR lives on the device and is changed in place (graph mode)
            self.lr_tensors = [torch.tensor(c.lr_at(0), dtype=torch.float32, device=self.device)
                               for c in self.configs]
        self.optimizers = [
            make_optimizer(c, m.parameters(), self.device,
                           self.lr_tensors[b] if self.lr_tensors is not None else None)
            for b, (c, m) in enumerate(zip(self.configs, self.models, strict=True))]

    @property
    def model(self) -> nn.Module:
        """The model of a single run."""
        assert len(self.models) == 1, "a batch has one model per run: use .models"
        return self.models[0]

    # -- LR ----------------------------------------------------------------------------------
    def _set_lr(self) -> None:
        # The LR only changes at milestones; setting it every step would cost, on CUDA, a
        # host→device copy per step.
        for b, (config, opt) in enumerate(zip(self.configs, self.optimizers, strict=True)):
            value = config.lr_at(self.step)
            if value == self._lr[b]:
                continue
            self._lr[b] = value
            for group in opt.param_groups:
                # graph mode: the tensor the graph reads (survives a reload)
                group["lr"] = self.lr_tensors[b] if self.lr_tensors is not None else value
            if self.lr_tensors is not None:
                self.lr_tensors[b].fill_(value)

    # -- one step ----------------------------------------------------------------------------
    def _forward_backward(self) -> torch.Tensor:
        """Set every parameter's ``.grad``; return [CE, ‖W‖, ‖H‖] per run (B, 3)."""
        raise NotImplementedError

    def _update(self) -> None:
        self.dirty = True
        for opt in self.optimizers:
            opt.step()

    def _compute_step(self) -> torch.Tensor:
        metrics = self._forward_backward()
        self._update()
        return metrics

    def _zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def _capture(self) -> None:
        """Record forward + backward + optimizer steps as one CUDA graph.

        Follows the whole-network recipe of the torch CUDA-graph docs: a few eager steps on a
        side stream first (they allocate the optimizer state and the gradient buffers, and warm
        cuBLAS up); these are real training steps and are recorded as such by :meth:`advance`.
        """
        graph = torch.cuda.CUDAGraph()
        self._zero_grad()
        with torch.cuda.graph(graph):
            metrics = self._compute_step()
        self._graph, self._static_metrics = graph, metrics

    def advance(self) -> torch.Tensor:
        """Make the update of step ``self.step``; return [CE, ‖W‖, ‖H‖] per run (B, 3) at the
        parameters before it (i.e. at step ``self.step``), then increment ``self.step``."""
        self._set_lr()
        if not self.use_graph:
            self._zero_grad()
            metrics = self._compute_step()
        elif self._graph is None and self._warmup > 0:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._zero_grad()
                metrics = self._compute_step()
            torch.cuda.current_stream().wait_stream(side)
            self._warmup -= 1
        else:
            if self._graph is None:
                self._capture()
            assert self._graph is not None and self._static_metrics is not None
            self.dirty = True
            self._graph.replay()
            metrics = self._static_metrics.clone()  # the static buffer is overwritten next replay
        self.step += 1
        self.dirty = False
        return metrics

    def evaluate(self) -> torch.Tensor:
        """[CE, ‖W‖, ‖H‖] per run (B, 3) at the current parameters, eagerly."""
        raise NotImplementedError

    @torch.no_grad()
    def snapshot(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """W (V, d), H (d, m) and the transformer's per-layer states (layers, d, m; None for the
        other models) of each run at the current parameters, in the run's dtype (H by a forward
        pass for the transformer)."""
        return [(m.W.detach().cpu().numpy().copy(), m.H().detach().cpu().numpy().copy(),
                 layer_snapshot(m)) for m in self.models]

    @torch.no_grad()
    def finite(self) -> bool:
        """Whether every parameter of every run is finite (one host sync)."""
        flags = [torch.isfinite(p).all() for m in self.models for p in m.parameters()]
        return bool(torch.stack(flags).all())

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "models": [m.state_dict() for m in self.models],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "rng": torch.get_rng_state(),
            "step": self.step,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self._graph is None, "load state before the first step"
        for m, s in zip(self.models, state["models"], strict=True):
            m.load_state_dict(s)  # copies in place: batch storage stays shared
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step = int(state["step"])
        self._lr = [None] * len(self.configs)  # the loaded param_groups hold the saved LR
        self._set_lr()


class ModuleRuns(Runs):
    """One run as an ``nn.Module`` with autograd ``backward()`` (the transformer's backend)."""

    def __init__(self, table: Table, configs: Sequence[TrainConfig], device: torch.device,
                 features: np.ndarray | None = None) -> None:
        super().__init__(table, configs, device, features)
        assert len(self.models) == 1, "ModuleRuns trains one run; batches train in VmapRuns"
        self._make_optimizers()

    def _forward_backward(self) -> torch.Tensor:
        objective, metrics = self.objective()
        objective.backward()
        return metrics[None]  # (1, 3)

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        return self.objective()[1][None]


class VmapRuns(Runs):
    """B runs with stacked parameters and one ``vmap``-ed gradient (the UFM's and the linear
    model's backend, B ≥ 1; any model works)."""

    def __init__(self, table: Table, configs: Sequence[TrainConfig], device: torch.device,
                 features: np.ndarray | None = None) -> None:
        super().__init__(table, configs, device, features)
        names = [n for n, _ in self.models[0].named_parameters()]
        # (B, …) storage per parameter; each run's parameters become views of its slice, so the
        # per-run optimizers update the storage that the batched gradient reads.
        self.params = {f"model.{n}": torch.stack([dict(m.named_parameters())[n].detach()
                                                  for m in self.models]) for n in names}
        for b, m in enumerate(self.models):
            for n in names:
                owner, _, leaf = n.rpartition(".")
                setattr(m.get_submodule(owner), leaf, nn.Parameter(self.params[f"model.{n}"][b]))
        ridges = [c.ridge for c in self.configs]
        # One λ for all: the Objective's own (its `if ridge` branch, as a single run); else a
        # per-run λ, batched like the parameters.
        self._ridge = (None if len(set(ridges)) == 1 else
                       torch.tensor(ridges, dtype=DTYPES[configs[0].dtype], device=device))

        def loss(params: dict[str, torch.Tensor], ridge: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
            return functional_call(self.objective, params, (), {"ridge": ridge})

        self._grad = vmap(grad_and_value(loss, has_aux=True),
                          in_dims=(0, None if self._ridge is None else 0))
        self._make_optimizers()

    def _forward_backward(self) -> torch.Tensor:
        grads, (_, metrics) = self._grad(self.params, self._ridge)
        for b, m in enumerate(self.models):
            for n, p in m.named_parameters():
                p.grad = grads[f"model.{n}"][b]
        return metrics  # (B, 3)

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        return vmap(lambda p, r: functional_call(self.objective, p, (), {"ridge": r})[1],
                    in_dims=(0, None if self._ridge is None else 0))(self.params, self._ridge)


def make_trainer(table: Table, configs: Sequence[TrainConfig], device: torch.device,
                 features: np.ndarray | None = None, *, batched: bool | None = None) -> Runs:
    """The backend for ``configs``: :class:`VmapRuns` for the UFM and the linear model (also for
    one run) and for a batch of transformers, :class:`ModuleRuns` for one transformer run.

    ``batched`` forces the choice (``False`` needs one run).
    """
    if batched is None:
        batched = len(configs) > 1 or configs[0].model != "transformer"
    return (VmapRuns if batched else ModuleRuns)(table, configs, device, features)


# -----------------------------------------------------------------------------------------------
# The loop


class Diverged(UserError):
    """A run's loss or parameters became non-finite: the run cannot continue as configured."""


def _diverged(trainer: Runs, step: int, run: int) -> Diverged:
    config = trainer.configs[run]
    which = f"run {run} of {len(trainer.configs)}, " if len(trainer.configs) > 1 else ""
    return Diverged(f"training diverged: the loss or the parameters are not finite at step {step} "
                    f"({which}optimizer {config.optimizer}, lr {config.lr:g}); nothing written: "
                    "use a smaller learning rate (train.lr, --lr)")


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


def fit_runs(table: Table, configs: Sequence[TrainConfig], *,
             checkpoint: str | os.PathLike | None = None, progress: bool | None = None,
             features: np.ndarray | None = None, steps: Sequence[int] | None = None,
             batched: bool | None = None) -> list[Trajectory]:
    """Train B equal-shape runs together; return their trajectories; resume from ``checkpoint``.

    Parameters
    ----------
    table : Table
        The distinct-context table (m ≥ 1).
    configs : sequence of TrainConfig
        The runs' settings, equal but in :data:`PER_RUN` (device and threads: the first's).
    checkpoint : path, optional
        Resume state file (see :func:`~ntpgeom.train.trajectory.checkpoint_path`). Read if
        present, written at every checkpoint step, every ``save_every_s`` seconds and when the
        loop is interrupted, left in place at the end (the caller removes it once the result is
        safely stored).
    progress : bool, optional
        Progress bar; default: when stderr is a terminal (else log lines).
    features : ndarray (d, m), optional
        The fixed context embeddings H̄ of ``model: linear`` (required for it, refused otherwise).
    steps : sequence of int, optional
        The steps at which W, H are kept; default ``checkpoint_steps(epochs,
        checkpoints_per_decade)``.
    batched : bool, optional
        The backend (:func:`make_trainer`).

    Raises
    ------
    UserError
        Bad settings, an empty table, CUDA requested without CUDA, a checkpoint made with another
        config or table, or a run whose loss or parameters became non-finite.
    """
    configs = list(configs)
    for config in configs:
        config.validate()
    check_train_table(table)
    device = train_device(configs[0].device)
    with numerics(device, configs[0].threads):
        trainer = make_trainer(table, configs, device, features, batched=batched)
        fp = fingerprint(table, configs, device, trainer.use_graph, features, steps)
        trajs = [Trajectory(device=str(device), graph=trainer.use_graph,
                            layers=list(getattr(m, "layer_names", []))) for m in trainer.models]
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and path.exists():
            state = load_checkpoint(path, fp, device)
            trainer.load_state_dict(state["trainer"])
            trajs = [Trajectory.from_state(s, str(device), trainer.use_graph)
                     for s in state["trajectories"]]
            log.info("resuming %s from step %d of %d", path, trainer.step, configs[0].epochs)
        _run(trainer, trajs, table.entropy, path, fp, progress, steps)
    return trajs


def fit(table: Table, config: TrainConfig, *, checkpoint: str | os.PathLike | None = None,
        progress: bool | None = None, features: np.ndarray | None = None,
        steps: Sequence[int] | None = None) -> Trajectory:
    """Train one run and return its trajectory (:func:`fit_runs` with one config)."""
    (traj,) = fit_runs(table, [config], checkpoint=checkpoint, progress=progress,
                       features=features, steps=steps)
    return traj


def _run(trainer: Runs, trajs: list[Trajectory], entropy: float, path: Path | None,
         fp: dict[str, Any], progress: bool | None, steps: Sequence[int] | None) -> None:
    config = trainer.configs[0]
    E = config.epochs
    ckpt = set(checkpoint_steps(E, config.checkpoints_per_decade) if steps is None else steps)
    bar = Progress(E, trainer.step, entropy, progress)
    start = time.perf_counter()
    elapsed_before = trajs[0].wall_seconds
    last_save = start
    # Trace values stay on the device until a flush: no host sync per step on CUDA.
    pending: list[tuple[int, torch.Tensor]] = []

    def keep(s: int, metrics: torch.Tensor,
             snaps: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
        values = metrics.double().cpu().numpy()  # (B, 3)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            flush()  # names an earlier traced step if the run diverged before this one
            raise _diverged(trainer, s, int(np.argmax(bad)))
        for traj, value, (W, H, H_layer) in zip(trajs, values, snaps, strict=True):
            traj.step.append(s)
            traj.metrics.append(value)
            traj.W.append(W)
            traj.H.append(H)
            if H_layer is not None:
                traj.H_layer.append(H_layer)

    def flush() -> None:
        if pending:
            values = torch.stack([m for _, m in pending]).double().cpu().numpy()  # (k, B, 3)
            bad = ~np.isfinite(values).all(axis=2)
            if bad.any():
                k, b = np.argwhere(bad)[0]
                raise _diverged(trainer, pending[k][0], int(b))
            for b, traj in enumerate(trajs):
                traj.trace_step.extend(s for s, _ in pending)
                traj.trace.extend(values[:, b])
            pending.clear()

    def save() -> None:
        nonlocal last_save
        flush()
        if not trainer.finite():
            raise _diverged(trainer, trainer.step, 0 if len(trajs) == 1 else next(
                b for b, m in enumerate(trainer.models)
                if not all(torch.isfinite(p).all() for p in m.parameters())))
        for traj in trajs:
            traj.wall_seconds = elapsed_before + time.perf_counter() - start
        if path is not None:
            save_checkpoint(path, trainer.state_dict(), trajs, fp)
        last_save = time.perf_counter()

    caught: list[int] = []  # SIGINT/SIGTERM received during the loop (see _deferred_signals)
    with _deferred_signals(caught):
        try:
            while trainer.step < E:
                if caught:  # a step boundary: keep a checkpoint here, then deliver the signal
                    save()
                    break
                s = trainer.step
                snaps = trainer.snapshot() if s in ckpt else None
                metrics = trainer.advance()
                if s % config.trace_every == 0:
                    pending.append((s, metrics))
                if snaps is not None:
                    keep(s, metrics, snaps)
                if len(pending) >= 4096:
                    flush()
                bar.update(s + 1, 1, metrics if (s + 1) % max(1, E // 1000) == 0 else None)
                if (s + 1) in ckpt or time.perf_counter() - last_save >= config.save_every_s:
                    save()
            flush()
            if trainer.step == E and (not trajs[0].step or trajs[0].step[-1] != E):
                # The last step has no update after it: evaluate once more for its metrics.
                metrics = trainer.evaluate()
                keep(E, metrics, trainer.snapshot())
                if not trajs[0].trace_step or trajs[0].trace_step[-1] != E:
                    pending.append((E, metrics))
                save()
        except Diverged:
            # Nothing worth resuming from: the rerun with a smaller step must start afresh (its
            # fingerprint differs, so the old checkpoint would only be refused).
            if path is not None:
                path.unlink(missing_ok=True)
            raise
        except BaseException:
            # Any other exception (or an interrupt not deferred above): keep the progress made,
            # if the run is between two steps (mid-update, the last saved state stands).
            if path is not None and not trainer.dirty:
                try:
                    save()
                    log.warning("stopped at step %d: saved %s; rerun to resume", trainer.step,
                                path)
                except Exception as err:  # the original error matters more
                    log.warning("stopped at step %d; could not save %s (%s)", trainer.step,
                                path, err)
            raise
        finally:
            bar.close()
    for traj in trajs:
        traj.wall_seconds = elapsed_before + time.perf_counter() - start
