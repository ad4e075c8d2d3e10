"""The linear-model study (``docs/paper.md`` §1.9): fixed embeddings H̄, W trained alone.

Thrampoulidis, "Implicit Optimization Bias of Next-Token Prediction in Linear Models" (NeurIPS
2024). This module is the study's orchestration: where H̄ comes from (random, a training run's H,
an svm store's H^mm) and its checks, the ``linear/{embedding}/reference.zarr`` dataset, W-only
training runs and the NeurIPS 2-D toy. Its settings are the ``linear`` section,
:class:`LinearConfig`. It takes and returns in-memory objects: the rules' scripts
(``scripts/linear_*.py``) build the section's dataclass from their params, read the table and
stores and write the reference; a run's store is written by the training stage
(:func:`ntpgeom.train.stage.train`), with its resume checkpoint.
The solutions (W*, separability, W^mm) are :mod:`ntpgeom.theory.linear`; the per-step metrics of
a run are :func:`ntpgeom.metrics.trajectory.linear_metrics`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ntpgeom.config import from_section, to_section
from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.metrics.trajectory import linear_metrics
from ntpgeom.metrics.vocabulary import describe
from ntpgeom.store import provenance
from ntpgeom.theory.linear import (
    W_SOLVERS,
    SvmSolution,
    in_support_solution,
    max_margin,
    overparameterized,
    smoothness,
    solve_wmm,
)
from ntpgeom.theory.reference import RANK_RTOL
from ntpgeom.train.config import TrainConfig
from ntpgeom.train.stage import train

log = logging.getLogger(__name__)

#: Where the fixed embeddings come from (``linear.embeddings.<name>.source``).
EMBEDDING_SOURCES = ("random", "train", "svm")
#: The per-step metrics a linear run adds to its training store.
RUN_METRICS = ("corr_W", "corr_W_offset", "in_support_error_W", "dist_W")


# -- the `linear` section -------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingConfig:
    """One ``linear.embeddings`` entry: where the fixed embeddings H̄ come from."""

    source: str | None = None  # random, train or svm (EMBEDDING_SOURCES); the schema requires it
    d: int | None = None  # the width: random needs it, train and svm check it against the store
    seed: int = 0  # random: seed of H̄
    model: str = "ufm"  # train: the model of the run
    run: str = ""  # train: the run's name (the store's stem)
    step: int = -1  # train: the checkpoint step (-1 = the last)
    solver: str = "admm"  # svm: whose H^mm

    @classmethod
    def from_dict(cls, values: Mapping[str, Any],
                  where: str = "linear.embeddings") -> EmbeddingConfig:
        """From one entry (missing keys take the defaults; unknown keys are refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)


def _paper_optimizers() -> dict[str, dict[str, Any]]:
    """``linear.optimizers``' default: the NeurIPS paper's four runs (App. A)."""
    return {"gd": {"optimizer": "gd", "lr": "auto"},
            "ngd": {"optimizer": "ngd", "lr": 0.01},
            "adam": {"optimizer": "adam", "lr": 0.01, "betas": [0.9, 0.99]},
            "adamw": {"optimizer": "adamw", "lr": 0.01, "betas": [0.9, 0.99],
                      "weight_decay": 1.0e-4}}


@dataclass(frozen=True)
class LinearConfig:
    """The ``linear`` section: the fixed embeddings, the solvers of W^mm and the W-only runs.

    The defaults stated here are the section's (``schemas/linear.schema.yaml`` documents the same
    values; ``tests/test_config_sections.py`` proves they agree) and :func:`linear_reference`'s.
    The ``optimizers`` entries stay the mappings the config gives (a run records its entry as
    given, and an entry without ``betas`` takes :class:`~ntpgeom.train.config.TrainConfig`'s).
    """

    embeddings: dict[str, EmbeddingConfig] = field(default_factory=dict)  # name → H̄; {} = no study
    solvers: tuple[str, ...] = ("clarabel", "fista")  # the first gives W_mm, all cross-check it
    eps: float = 1e-9  # tolerance of the cvxpy solvers
    fista_tol: float = 1e-10  # fista's relative duality gap and violation
    rank_rtol: float = RANK_RTOL  # singular values ≤ rank_rtol × σ_1 are zero in rank(H̄)
    fista_max_iter: int = 200_000
    epochs: int = 10_000  # the paper's 1e4 full-batch steps
    seed: int = 0  # seed of W's initialisation
    dtype: str = "float64"  # resolves CE − H below float32's ~1e-7
    checkpoints_per_decade: int = 10
    device: str = "cpu"  # V·d is tiny: a CPU core is fastest
    optimizers: dict[str, dict[str, Any]] = field(default_factory=_paper_optimizers)
    toy: bool = False  # draw the NeurIPS 2-D toy (read from the top-level section only)
    toy_seed: int = 0  # seed of the toy's probabilities

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "linear") -> LinearConfig:
        """From a ``linear`` section (missing keys take the defaults; unknown keys are refused,
        in the embeddings' entries too)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)

    def options(self) -> dict[str, Any]:
        """The section without its ``embeddings`` and ``optimizers`` tables: what a run's store
        records as its ``linear`` config, beside its own ``optimizers`` entry."""
        return {k: v for k, v in self.to_dict().items() if k not in ("embeddings", "optimizers")}


# -- embeddings ---------------------------------------------------------------------------------
def random_embeddings(d: int, m: int, seed: int = 0) -> np.ndarray:
    """H̄ with i.i.d. N(0, 1) entries, (d, m): the paper's "random embeddings" (App. A)."""
    if d < 1:
        raise UserError(f"linear.embeddings: d must be ≥ 1; got {d}")
    return np.random.default_rng(seed).standard_normal((d, m))


def embeddings_from_train(ds, step: int = -1) -> tuple[np.ndarray, list[str], int]:
    """H (d, m) of a UFM/transformer training store at checkpoint ``step`` (−1: the last).

    Returns H̄, the store's context labels and the step used.

    Raises
    ------
    UserError
        The store has no ``H`` or no checkpoint ``step``.
    """
    if "H" not in ds:
        raise UserError("linear.embeddings: the training store has no H (a linear run?); use a "
                        "UFM or transformer run")
    steps = [int(s) for s in ds["step"].values]
    if step == -1:
        step = steps[-1]
    if step not in steps:
        raise UserError(f"linear.embeddings.step: {step} is not a checkpoint of the training "
                        f"store; choose one of {', '.join(map(str, steps))} or -1 (the last)")
    H = ds["H"].sel(step=step).transpose("dim", "context").values.astype(float)
    return H, [str(c) for c in ds["context"].values], step


def embeddings_from_svm(ds) -> tuple[np.ndarray, list[str]]:
    """H^mm = √Σ Vᵀ (rank, m) of an ``svm/{solver}.zarr`` store, and its context labels."""
    H = ds["H_mm"].transpose("rank", "context").values.astype(float)
    return H, [str(c) for c in ds["context"].values]


def check_embeddings(H_bar: np.ndarray, table: Table, *, d: int | None = None,
                     contexts: list[str] | None = None, where: str = "linear.embeddings") -> None:
    """Refuse embeddings that do not fit the table, with one line that says how to fix it.

    Raises
    ------
    UserError
        Not a finite d × m matrix with m = the table's contexts; ``d`` given and different; the
        embeddings' context labels differ from the table's (another dataset's run).
    """
    H_bar = np.asarray(H_bar)
    if H_bar.ndim != 2 or not np.isfinite(H_bar).all():
        raise UserError(f"{where}: the embeddings must be a finite d × m matrix")
    if H_bar.shape[1] != table.m:
        raise UserError(f"{where}: the embeddings have {H_bar.shape[1]} contexts but the table "
                        f"has m = {table.m}; use embeddings of this dataset")
    if d is not None and H_bar.shape[0] != d:
        raise UserError(f"{where}.d: {d} does not match the embeddings' width "
                        f"{H_bar.shape[0]}; drop d or set it to {H_bar.shape[0]}")
    if contexts is not None and list(contexts) != list(table.contexts):
        bad = next(i for i, (a, b) in enumerate(zip(contexts, table.contexts, strict=True))
                   if a != b)
        raise UserError(f"{where}: the embeddings' contexts differ from the table's (context "
                        f"{bad}: {contexts[bad]!r} vs {table.contexts[bad]!r}); use a store made "
                        "from this table")



def linear_reference(table: Table, H_bar: np.ndarray, *,
                     solvers: tuple[str, ...] | list[str] = LinearConfig.solvers,
                     eps: float = LinearConfig.eps, fista_tol: float = LinearConfig.fista_tol,
                     fista_max_iter: int = LinearConfig.fista_max_iter,
                     rank_rtol: float = LinearConfig.rank_rtol,
                     embedding: dict[str, Any] | None = None,
                     config: dict[str, Any] | None = None):
    """The ``linear/{embedding}/reference.zarr`` dataset: H̄, W*, W^mm and the three checks.

    Parameters
    ----------
    table : Table
    H_bar : ndarray (d, m)
        The fixed context embeddings (checked with :func:`check_embeddings` first).
    solvers : sequence of :data:`W_SOLVERS`
        NTP-SVM solvers; the first gives ``W_mm``, all are kept in ``W_mm_by_solver`` and their
        largest pairwise ‖W_a − W_b‖/‖W_b‖ is attr ``solver_agreement``.
    eps, fista_tol, fista_max_iter
        cvxpy solver tolerance; the first-order solver's stopping tolerance and iteration cap.
    rank_rtol : float
        Relative cut of rank(H̄) (Lemma 1), as ``geometry.rank_rtol``.
    embedding : dict, optional
        How H̄ was made (source, seed, store, step), recorded in attrs.

    Returns
    -------
    xarray.Dataset
        ``H_bar`` (dim, context), ``W_star`` (token, dim), ``W_mm`` (token, dim; NaN when not
        separable), ``W_mm_by_solver`` (solver, token, dim). Attrs: ``compatible``,
        ``compatibility_residual``, ``separable``, ``margin`` (γ*), ``stuck_constraints``,
        ``solver``, ``status``, ``overparameterized``, ``rank_H_bar``, ``L_smooth``, ...
    """
    start = time.perf_counter()
    check_embeddings(H_bar, table)
    for s in solvers:
        if s not in W_SOLVERS:
            raise UserError(f"linear.solvers: unknown solver {s!r}; choose from "
                            f"{', '.join(W_SOLVERS)}")
    table.check_for_theory("linear")
    S, P = table.S(), table.P()
    d, m = H_bar.shape
    V = table.V
    over, rank = overparameterized(H_bar, rank_rtol)
    ins = in_support_solution(S, P, H_bar)
    cvx_first = next((s for s in solvers if s != "fista"), "auto")
    mar = max_margin(S, H_bar, solver=cvx_first, eps=eps)
    log.info("linear: d=%d, m=%d, V=%d, rank(H̄)=%d (d > m and full rank: %s); compatible: %s "
             "(residual %.1e nats); separable: %s (γ* = %.6g)", d, m, V, rank, over,
             ins.compatible, ins.residual, mar.separable, mar.gamma)
    sols: list[SvmSolution] = []
    if mar.separable:
        for s in solvers:
            sols.append(solve_wmm(S, H_bar, s, eps=eps, tol=fista_tol, max_iter=fista_max_iter))
            log.info("linear: W^mm by %s: %s in %.2f s, ‖W^mm‖ = %.10g, violation %.1e",
                     sols[-1].solver, sols[-1].status, sols[-1].seconds,
                     np.linalg.norm(sols[-1].W), sols[-1].max_violation)
    else:
        log.warning("linear: the embeddings are NOT NTP-separable: best normalized margin "
                    "γ* = %.3g; %d of %d margin constraints cannot be made positive", mar.gamma,
                    mar.stuck, mar.constraints)
    nan = np.full((V, d), np.nan)
    W_mm = sols[0].W if sols else nan
    agreement = max((np.linalg.norm(a.W - b.W) / np.linalg.norm(b.W)
                     for a in sols for b in sols if a is not b), default=0.0)
    tok = np.array(table.tokens, dtype=object)
    coords = {"token": ("token", tok), "context": ("context", np.array(table.contexts,
                                                                        dtype=object)),
              "dim": ("dim", np.arange(d)), "solver": ("solver", np.array(solvers, dtype=object))}
    by_solver = np.stack([s.W for s in sols]) if sols else np.full((len(solvers), V, d), np.nan)
    ds = xr.Dataset(
        {
            "H_bar": (("dim", "context"), H_bar, {"long_name": "H̄, the fixed context embeddings"}),
            "W_star": (("token", "dim"), ins.W_star,
                       {"long_name": "W* ∈ F, the in-support (compatibility) solution"}),
            "W_mm": (("token", "dim"), W_mm,
                     {"long_name": f"W^mm, the NTP-SVM solution ({solvers[0]})"}),
            "W_mm_by_solver": (("solver", "token", "dim"), by_solver,
                               {"long_name": "W^mm of each solver"}),
        },
        coords=coords,
    )
    ds.attrs = provenance(
        config, wall_seconds=time.perf_counter() - start, embedding=embedding or {},
        d=d, m=m, V=V, n=table.n, entropy=table.entropy, rank_H_bar=rank,
        rank_rtol=float(rank_rtol),
        overparameterized=over, compatible=ins.compatible, compatibility_residual=ins.residual,
        dim_F=ins.rank, separable=mar.separable, margin=mar.gamma,
        stuck_constraints=mar.stuck, margin_constraints=mar.constraints,
        margin_solver=mar.solver, margin_status=mar.status,
        solver=sols[0].solver if sols else solvers[0],
        status=sols[0].status if sols else "not_separable",
        solvers=[s.solver for s in sols], statuses=[s.status for s in sols],
        solve_seconds=[s.seconds for s in sols], iterations=[s.iterations for s in sols],
        max_violation=[s.max_violation for s in sols], solver_agreement=float(agreement),
        norm_W_mm=float(np.linalg.norm(W_mm)) if sols else float("nan"),
        norm_W_star=float(np.linalg.norm(ins.W_star)),
        L_smooth=smoothness(H_bar, table.pi), eps=eps, fista_tol=fista_tol)
    return ds


def require_separable(reference, where: str = "linear") -> None:
    """Refuse to train against a reference whose embeddings are not NTP-separable (one line)."""
    a = reference.attrs
    if not a.get("separable", False):
        raise UserError(
            f"{where}: the embeddings are not NTP-separable (best normalized margin γ* = "
            f"{a.get('margin', float('nan')):.3g}; {a.get('stuck_constraints')} of "
            f"{a.get('margin_constraints')} margin constraints cannot be made positive), so "
            "CE cannot approach H and W^mm does not exist: use d > m (Lemma 1) or other "
            "embeddings")




def run_metrics(W_steps: np.ndarray, reference, S: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`ntpgeom.metrics.trajectory.linear_metrics` of W_steps (k, V, d) against a
    ``linear/{embedding}/reference.zarr`` (its H̄, W*, W^mm; F's basis from the support S)."""
    H_bar = reference["H_bar"].transpose("dim", "context").values
    P = np.zeros_like(S, dtype=float)  # only the basis is needed: any P with this support
    P[S] = 1.0
    basis = in_support_solution(S, P / P.sum(axis=0, keepdims=True), H_bar).basis
    return linear_metrics(W_steps, W_star=reference["W_star"].transpose("token", "dim").values,
                          W_mm=reference["W_mm"].transpose("token", "dim").values, basis=basis)


def toy_problem(seed: int = 0) -> tuple[Table, np.ndarray]:
    """The NeurIPS paper's 2-D toy (Figs. 1–2): d = 2, m = 3, V = 5, supports {1,2,5}, {1,4,5},
    {2,3,4} (1-based), random probabilities (counts randint(1, 5)) and embeddings h̄_j at
    angles 90°, 210°, 330° (unit norm, so that every support pattern is reachable in 2-D).

    Words 1 and 5 have the same support pattern, so w1 = w5 in W^mm, which depends on the
    supports only; W* depends on the probabilities, so w1 ≠ w5 there.
    """
    supports = [(0, 1, 4), (0, 3, 4), (1, 2, 3)]
    rng = np.random.default_rng(seed)
    ctx = np.repeat(np.arange(3), 3)
    nxt = np.array(supports).reshape(-1)
    counts = rng.integers(1, 5, size=9)
    names = [f"w{i + 1}" for i in range(5)]
    table = Table.from_pairs([(f"x{j + 1}",) for j in range(3)], ctx_index=ctx,
                             next_tokens=names, next_index=nxt, counts=counts,
                             source=f"linear:toy(seed={seed})")
    angles = np.deg2rad([90.0, 210.0, 330.0])
    return table, np.vstack([np.cos(angles), np.sin(angles)])


# -- the pipeline's entry points (called by scripts/linear_*.py) ---------------------------------
def make_embeddings(table: Table, spec: EmbeddingConfig | Mapping[str, Any],
                    store=None) -> tuple[np.ndarray, dict[str, Any]]:
    """H̄ (d, m) from one ``linear.embeddings`` entry, checked against the table.

    ``store`` is the opened training or svm store for sources ``train`` and ``svm``.
    """
    spec = EmbeddingConfig.from_dict(spec)
    source, d = spec.source, spec.d
    info: dict[str, Any] = {"source": source}
    if source == "random":
        if d is None:
            raise UserError("linear.embeddings: source random needs d (the embedding width)")
        H, contexts = random_embeddings(int(d), table.m, spec.seed), None
        info.update(d=int(d), seed=spec.seed)
    elif source == "train":
        H, contexts, step = embeddings_from_train(store, spec.step)
        info.update(model=spec.model, run=spec.run, step=step)
    elif source == "svm":
        H, contexts = embeddings_from_svm(store)
        info.update(solver=spec.solver)
    elif source is None:
        raise UserError("linear.embeddings: missing key `source`; allowed: "
                        f"{', '.join(EMBEDDING_SOURCES)}")
    else:
        raise UserError(f"linear.embeddings.source: unknown source {source!r}; choose from "
                        f"{', '.join(EMBEDDING_SOURCES)}")
    check_embeddings(H, table, d=d, contexts=contexts)
    return H, info


def linear_reference_for(table: Table, *, embedding: EmbeddingConfig | Mapping[str, Any],
                         linear: LinearConfig | Mapping[str, Any],
                         store: xr.Dataset | None = None,
                         config: dict[str, Any] | None = None) -> xr.Dataset:
    """The ``linear/{embedding}/reference.zarr`` dataset of one ``linear.embeddings`` entry.

    H̄ from :func:`make_embeddings` (``store``: the opened training or svm store of sources
    ``train`` and ``svm``), then :func:`linear_reference` with the section's ``solvers``,
    ``eps``, ``fista_tol``, ``fista_max_iter`` and ``rank_rtol`` (``linear``: the section, or a
    mapping of some of its keys); ``config`` goes into the attrs' provenance.
    """
    linear = LinearConfig.from_dict(linear)
    H, info = make_embeddings(table, embedding, store)
    return linear_reference(table, H, solvers=linear.solvers, eps=linear.eps,
                            fista_tol=linear.fista_tol, fista_max_iter=linear.fista_max_iter,
                            rank_rtol=linear.rank_rtol, embedding=info, config=config)


def train_config(spec: Mapping[str, Any], *, d: int, L_smooth: float,  # noqa: N803
                 linear: LinearConfig | Mapping[str, Any]):
    """The :class:`ntpgeom.train.config.TrainConfig` of one ``linear.optimizers`` entry, with the
    section's ``epochs``, ``seed``, ``dtype``, ``checkpoints_per_decade`` and ``device``.

    ``lr: auto`` (gd only) is 1/(2 L_smooth), the largest step of Lemma 2; a larger gd step is
    allowed but logged, since the theorem no longer covers it. No LR schedule (milestones
    empty): the paper's runs use constant steps.
    """
    linear = LinearConfig.from_dict(linear)
    opt, lr = spec["optimizer"], spec["lr"]
    bound = 1.0 / (2.0 * L_smooth)
    if lr == "auto":
        if opt != "gd":
            raise UserError(f"linear.optimizers: lr auto is for gd only (1/(2L)); give {opt} a "
                            "number")
        lr = bound
    elif opt == "gd" and lr > bound:
        log.warning("linear: gd step %.3g exceeds 1/(2 L_smooth) = %.3g (Lemma 2)", lr, bound)
    values: dict[str, Any] = {"model": "linear", "d": d, "epochs": linear.epochs,
                              "optimizer": opt, "lr": float(lr), "milestones": [],
                              "weight_decay": spec.get("weight_decay", 0.0),
                              "seed": linear.seed, "dtype": linear.dtype,
                              "checkpoints_per_decade": linear.checkpoints_per_decade,
                              "device": linear.device}
    if "betas" in spec:
        values["betas"] = spec["betas"]
    return TrainConfig.from_dict(values, where="linear.optimizers")


def train_linear(table: Table, reference: xr.Dataset, *, out: str | os.PathLike,
                 spec: Mapping[str, Any], linear: LinearConfig | Mapping[str, Any],
                 run: str | None = None, progress: bool | None = False,
                 where: str = "linear reference") -> None:
    """Train W on the reference's fixed H̄ with one optimizer; write its trajectory store ``out``
    (``linear/{embedding}/train/{name}.zarr``).

    The store is the training stage's (:func:`ntpgeom.train.stage.train`, which writes it and
    then removes its resume checkpoint) plus the per-checkpoint metrics of :func:`run_metrics`
    and attrs ``final_*``, ``lr_bound``, ``L_smooth``, ``optimizer_name`` (the update rule) and
    ``run`` (the run's name, which figures and the report label it by).

    Parameters
    ----------
    table : Table
    reference : xarray.Dataset
        The opened ``linear/{embedding}/reference.zarr`` of this table.
    out : path-like
        The trajectory store to write (its name also labels the log and error lines).
    spec : mapping
        One ``linear.optimizers`` entry.
    linear : LinearConfig or mapping
        The section (:func:`train_config` reads its run settings; the store records
        :meth:`LinearConfig.options`).
    run : str, optional
        The entry's name (two entries may share an update rule); default: its optimizer.
    where : str
        What to call the reference in error messages (the script passes its path).

    Raises
    ------
    UserError
        The reference says the embeddings are not NTP-separable (:func:`require_separable`), or
        its H̄ does not fit the table (:func:`check_embeddings`).
    """
    require_separable(reference, f"linear {out}")
    H = reference["H_bar"].transpose("dim", "context").values
    check_embeddings(H, table, contexts=[str(c) for c in reference["context"].values], where=where)
    L_smooth = float(reference.attrs["L_smooth"])
    linear = LinearConfig.from_dict(linear)
    config = train_config(spec, d=H.shape[0], L_smooth=L_smooth, linear=linear)
    S = table.S()

    def extend(ds):
        metrics = run_metrics(ds["W"].transpose("step", "token", "dim").values, reference, S)
        for name, values in metrics.items():
            ds[name] = ("step", values)
        describe(ds, RUN_METRICS)
        last = ds.isel(step=-1)
        ds.attrs.update(
            final_ce_minus_entropy=float(ds["trace_ce_minus_entropy"].values[-1]),
            final_norm_W=float(last["norm_W"]), final_corr_W=float(last["corr_W"]),
            final_corr_W_offset=float(last["corr_W_offset"]),
            final_in_support_error_W=float(last["in_support_error_W"]),
            L_smooth=L_smooth, lr_bound=1.0 / (2.0 * L_smooth), optimizer_name=spec["optimizer"],
            run=run or spec["optimizer"])
        log.info("linear %s: CE − H %.3e, ⟨Ŵ, Ŵ^mm⟩ %.6f, ⟨(W − W*)^, Ŵ^mm⟩ %.6f, "
                 "‖P_F(W) − W*‖ %.3e", out, ds.attrs["final_ce_minus_entropy"],
                 ds.attrs["final_corr_W"], ds.attrs["final_corr_W_offset"],
                 ds.attrs["final_in_support_error_W"])
        return ds

    train(table, config, out=out, progress=progress, features=H, extend=extend,
          extra_config={"linear": linear.options(), "optimizer_spec": dict(spec)})


