"""The NTP-SVM solution L^mm of a table and its factors W^mm, H^mm (``docs/paper.md`` §1.5, §1.8).

    L^mm ∈ argmin ‖L‖_*  s.t.  L_zj = L_z'j (z, z' ∈ S_j),  L_zj − L_vj ≥ 1 (z ∈ S_j, v ∉ S_j).

Solvers (:data:`SOLVERS`):

- ``admm``: the project's first-order solver (:mod:`ntpgeom.theory.svm.admm`), torch float64 on CPU
or
  CUDA, stopped on a certified relative duality gap. The one to use beyond a few hundred contexts.
- ``scs``, ``mosek``: cvxpy on the SDP embedding (:mod:`ntpgeom.theory.svm.cvx`); ``auto`` is MOSEK
when
  licensed, else SCS. Memory grows with (V + m)²; too large a problem is refused before solving.
- ``closed_form``: S̄ = (I − 11ᵀ/V) S, exact for tables whose supports are all k-subsets (§1.7);
  refused for other tables. On such tables every other solver's result is also checked against
  it (attr ``closed_form_reldir``).

:func:`solve` returns the ``svm/{solver}.zarr`` dataset of ``docs/artifacts.md``; ``ntpgeom solve``
runs it from the command line. Every solver's L is exactly feasible and certified by a repaired
dual (:func:`ntpgeom.theory.svm.certificate.certified_gap`), so attr ``gap`` is a proven bound on
the relative suboptimality of ``nuclear_norm``.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from ntpgeom.data.table import Table, load
from ntpgeom.errors import UserError
from ntpgeom.theory.reference import (
    RANK_RTOL,
    centered_support,
    constraint_violation,
    factorize,
    reldir,
)
from ntpgeom.theory.svm.config import SOLVERS, AdmmOptions, MosekOptions, ScsOptions, SvmConfig

__all__ = ["SOLVERS", "AdmmOptions", "MosekOptions", "ScsOptions", "SvmConfig", "check_table",
           "is_ksubset", "solve", "solve_options", "to_dataset"]

log = logging.getLogger(__name__)

# Every default of solve() and of `ntpgeom solve` is the `svm` section's (SvmConfig's).
_DEFAULT = SvmConfig()

#: Relative distance from S̄ above which a k-subset table's solution is reported as a mismatch:
#: the closed form is exact, so anything beyond the solvers' accuracy (SCS ~1e-6) is a bug.
CLOSED_FORM_RTOL = 1e-5


def check_table(table: Table, where: str = "table") -> np.ndarray:
    """Validate a table for the NTP-SVM and return its support S (V × m, bool).

    Raises
    ------
    UserError
        Non-finite or non-positive probabilities, a context without any next token, or no
        out-of-support token anywhere (every S_j = V: the margin constraints are empty and the
        program has no finite solution direction to speak of).
    """
    prob = np.asarray(table.prob, dtype=float)
    if prob.size and not (np.isfinite(prob).all() and (prob > 0).all() and (prob <= 1).all()):
        raise UserError(f"{where}: next-token probabilities must be finite and in (0, 1]; found "
                        f"{int((~np.isfinite(prob)).sum())} non-finite and "
                        f"{int((prob <= 0).sum())} non-positive; rebuild the table")
    table.check_for_theory(where)
    empty = np.flatnonzero(table.support_size == 0)
    if empty.size:
        raise UserError(f"{where}: {empty.size} context(s) have no next token (e.g. "
                        f"{table.contexts[empty[0]]!r}); rebuild the table")
    return table.S()


def is_ksubset(S: np.ndarray) -> bool:
    """Whether the columns of S are exactly all C(V, k) distinct k-subsets (the §1.7 setting)."""
    V, m = S.shape
    k = S.sum(axis=0)
    if m == 0 or (k != k[0]).any() or m != comb(V, int(k[0])):
        return False
    return len({col.tobytes() for col in np.packbits(S, axis=0).T}) == m


def solve(table: Table, *, solver: str = _DEFAULT.solvers[0], gap_tol: float = _DEFAULT.gap_tol,
          time_limit: float | None = _DEFAULT.time_limit, device: str = _DEFAULT.admm.device,
          residual_tol: float = _DEFAULT.admm.residual_tol,
          max_iter: int = _DEFAULT.admm.max_iter, check_every: int = _DEFAULT.admm.check_every,
          anderson: int | None = _DEFAULT.admm.anderson,
          float32_until: float | None = _DEFAULT.admm.float32_until,
          eps: float = _DEFAULT.scs.eps, max_iters: int = _DEFAULT.scs.max_iters,
          memory_limit_mb: float | None = _DEFAULT.scs.memory_limit_mb,
          rank_rtol: float = _DEFAULT.rank_rtol, config: dict[str, Any] | None = None):
    """Solve the NTP-SVM of ``table`` and return the ``svm/{solver}.zarr`` dataset.

    Parameters
    ----------
    table : Table
    solver : {"admm", "scs", "mosek", "auto", "closed_form"}
        See the module docstring. Attr ``solver`` records what ran (``auto`` → ``scs``/``mosek``).
    gap_tol : float
        admm: stop at this certified relative gap (cvxpy solvers report theirs, they do not stop
        on it).
    time_limit : float or None
        Seconds per solve; a solve cut short keeps its certified gap and says so in ``status``.
    device, residual_tol, max_iter, check_every, anderson, float32_until
        admm options (:class:`~ntpgeom.theory.svm.config.AdmmOptions`, whose defaults these are;
        :func:`ntpgeom.theory.svm.admm.solve_admm`).
    eps, max_iters, memory_limit_mb
        cvxpy options (:class:`~ntpgeom.theory.svm.config.ScsOptions`, whose defaults these are;
        :func:`ntpgeom.theory.svm.cvx.solve_cvx`). MOSEK's come from ``SvmConfig.mosek`` through
        :meth:`SvmConfig.solve_options`.
    rank_rtol : float
        Rank cut of the factors W_mm = U√Σ, H_mm = √ΣVᵀ
        (:func:`ntpgeom.theory.reference.factorize`).
    config : dict, optional
        Recorded in the store's provenance.

    Returns
    -------
    xarray.Dataset
        ``L_mm`` (token, context), ``W_mm`` (token, rank), ``H_mm`` (rank, context),
        ``singular_values`` (rank); admm adds its convergence history on dim ``iteration``.
        Attrs: ``solver_name`` (as asked), ``solver`` (what ran), ``status``, ``nuclear_norm``,
        ``lower_bound``, ``max_violation``, ``gap``, ``solve_seconds``, ``rank``,
        ``solver_options`` and provenance.

    Raises
    ------
    UserError
        Bad table (:func:`check_table`), unknown solver or device, unlicensed MOSEK, a problem
        too large for the cvxpy solver's memory, ``closed_form`` on a non-k-subset table.
    """
    if solver not in SOLVERS:
        raise UserError(f"svm solver: unknown solver {solver!r}; choose from "
                        f"{', '.join(SOLVERS)}")
    S = check_table(table)
    V, m = S.shape
    ksubset = is_ksubset(S)
    # The name asked for labels the solution downstream; ``solver`` becomes what ran (auto → scs).
    extra: dict[str, Any] = {"solver_name": solver}
    history = None
    start = time.perf_counter()
    if solver == "admm":
        from ntpgeom.theory.svm.admm import solve_admm

        options = {"device": device, "gap_tol": gap_tol, "residual_tol": residual_tol,
                   "max_iter": max_iter, "check_every": check_every, "time_limit": time_limit,
                   "anderson": anderson, "float32_until": float32_until}
        try:
            res = solve_admm(S, **options)
        except ValueError as err:  # bad device or option: the admm core stays torch-only
            raise UserError(f"svm solver admm: {err}") from err
        L, status, gap, lower, solved = res.L, res.status, res.gap, res.lower_bound, res.seconds
        extra.update(iterations=res.iterations, device=res.device,
                     extrapolations_rejected=res.extrapolations_rejected)
        history = res.history
    elif solver == "closed_form":
        if not ksubset:
            raise UserError("svm solver closed_form: the closed form S̄ is the solution only when "
                            "the supports are exactly all k-subsets of the tokens (paper §1.7); "
                            "use admm for this table")
        from ntpgeom.theory.svm.certificate import certified_gap

        L = centered_support(S)
        # Certify with the dual guess Y = −UVᵀ (the polar factor of S̄, rank V − 1): for
        # k-subsets S̄S̄ᵀ ∝ I − 11ᵀ/V, all singular values are equal, so Y = −S̄/σ is dual
        # feasible (Y_out = k/(Vσ) ≥ 0, columns sum to 0) with value ‖S̄‖_*: a zero gap.
        W, H, sigma = factorize(L, rank_rtol)
        polar = (W / sigma) @ H
        _, lower, gap = certified_gap(L, -polar, S)
        status, solved, options = "optimal", time.perf_counter() - start, {}
    else:
        from ntpgeom.theory.svm.cvx import solve_cvx

        options = {"solver": solver, "eps": eps, "max_iters": max_iters,
                   "time_limit": time_limit, "memory_limit_mb": memory_limit_mb}
        res = solve_cvx(S, **options)
        L, status, gap, lower, solved = res.L, res.status, res.gap, res.lower_bound, res.seconds
        options = {**options, **res.options}
        solver = res.solver
        extra.update(iterations=res.iterations, compile_seconds=res.compile_seconds,
                     raw_max_violation=res.raw_max_violation, projected_onto_constraints=True)
    if ksubset:
        extra["closed_form_reldir"] = reldir(L, centered_support(S))
        if extra["closed_form_reldir"] > CLOSED_FORM_RTOL:
            log.warning("svm: %s is %.2e (relative, in direction) from the closed form S̄ on a "
                        "k-subset table", solver, extra["closed_form_reldir"])
    ds = to_dataset(table, L, solver=solver, status=status, gap=gap, lower_bound=lower,
                    solve_seconds=solved, solver_options=options, history=history,
                    rank_rtol=rank_rtol, config=config, wall_seconds=time.perf_counter() - start,
                    **extra)
    log.info("svm: %s %s: ‖L_mm‖_* = %.10g, rank %d, max violation %.1e, certified gap %s",
             solver, status, ds.attrs["nuclear_norm"], ds.attrs["rank"],
             ds.attrs["max_violation"], f"{gap:.2e}" if gap is not None else "n/a")
    return ds


def solve_options(section: SvmConfig | dict[str, Any], solver: str) -> dict[str, Any]:
    """The keyword arguments of :func:`solve` for one solver, from an ``svm`` config section
    (:meth:`SvmConfig.solve_options`; ``auto`` takes the ``scs`` options).

    Raises
    ------
    UserError
        An unknown solver name or setting.
    """
    return SvmConfig.from_dict(section).solve_options(solver)


def to_dataset(table: Table, L: np.ndarray, *, solver: str, status: str, gap: float | None,
               lower_bound: float | None, solve_seconds: float, solver_options: dict[str, Any],
               history: dict[str, np.ndarray] | None = None, rank_rtol: float = RANK_RTOL,
               config: dict[str, Any] | None = None, wall_seconds: float | None = None,
               **extra: Any):
    """Package a solution as the ``svm/{solver}.zarr`` dataset (``docs/artifacts.md``)."""
    import xarray as xr

    from ntpgeom.store import provenance

    S = table.S()
    W, H, sigma = factorize(L, rank_rtol)
    coords = {"token": ("token", np.array(table.tokens, dtype=object)),
              "context": ("context", np.array(table.contexts, dtype=object))}
    data = {
        "L_mm": (("token", "context"), L, {"long_name": "L^mm, the NTP-SVM solution (§1.5)"}),
        "W_mm": (("token", "rank"), W, {"long_name": "U√Σ of L^mm (word embeddings)"}),
        "H_mm": (("rank", "context"), H, {"long_name": "√ΣVᵀ of L^mm (context embeddings)"}),
        "singular_values": ("rank", sigma, {"long_name": "singular values of L^mm"}),
    }
    if history is not None:
        coords["iteration"] = ("iteration", history["iteration"].astype(np.int64))
        for key, long_name in (("seconds", "wall time since the first iteration (s)"),
                               ("primal_residual", "‖L − X‖/‖X‖"),
                               ("dual_residual", "ρ‖X − X_prev‖/‖ρU‖"),
                               ("rho", "ADMM penalty ρ"),
                               ("nuclear_norm", "‖X‖_*, upper bound (NaN: not evaluated)"),
                               ("lower_bound", "certified lower bound on ‖L^mm‖_*"),
                               ("gap", "certified relative gap (NaN: not evaluated)")):
            data[f"history_{key}"] = ("iteration", history[key], {"long_name": long_name})
    ds = xr.Dataset(data, coords=coords)
    spread, shortfall = constraint_violation(L, S)
    nuc = float(sigma.sum())
    ds.attrs = provenance(
        config, wall_seconds=wall_seconds, solver=solver, status=status, nuclear_norm=nuc,
        lower_bound=_finite_or_none(lower_bound), gap=_finite_or_none(gap),
        max_violation=max(spread, shortfall), max_equality_spread=spread,
        max_margin_shortfall=shortfall, solve_seconds=float(solve_seconds), rank=int(sigma.size),
        rank_rtol=rank_rtol, solver_options=solver_options, V=int(S.shape[0]), m=int(S.shape[1]),
        **extra)
    return ds


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --- command line --------------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``ntpgeom solve TABLE --solver admm --out X.zarr``."""
    p = subparsers.add_parser(
        "solve", help="solve the NTP-SVM of a table (L^mm and its factors)",
        description="Solve min ‖L‖_* s.t. L constant on each context's support and ≥ 1 above "
        "every out-of-support token (paper §1.5), and write L_mm, W_mm, H_mm and the solver's "
        "certificate to a zarr store (docs/artifacts.md, svm/{solver}.zarr).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("table", type=Path, help="a table.zarr store (results/{dataset}/table.zarr)")
    p.add_argument("--out", type=Path, required=True, help="the store to write (…/X.zarr)")
    p.add_argument("--solver", choices=SOLVERS, default=_DEFAULT.solvers[0],
                   help="admm: the project's first-order solver (any size); scs/mosek: cvxpy on "
                   "the SDP (memory grows with (V+m)²); auto: mosek when licensed, else scs; "
                   "closed_form: S̄, only for all-k-subset tables")
    p.add_argument("--gap-tol", type=float, default=_DEFAULT.gap_tol,
                   help="admm stops at this certified relative duality gap")
    p.add_argument("--time-limit", type=float, default=_DEFAULT.time_limit,
                   help="seconds per solve; a solve cut short is written with its status and gap")
    p.add_argument("--rank-rtol", type=float, default=_DEFAULT.rank_rtol,
                   help="singular values at or below rank_rtol × σ_max are cut from W_mm, H_mm")
    g = p.add_argument_group("admm options")
    g.add_argument("--device", default=_DEFAULT.admm.device,
                   help="auto (CUDA for large problems when available), cpu, cuda or cuda:N")
    g.add_argument("--residual-tol", type=float, default=_DEFAULT.admm.residual_tol,
                   help="also require relative primal and dual residuals below this")
    g.add_argument("--max-iter", type=int, default=_DEFAULT.admm.max_iter, help="iteration cap")
    g.add_argument("--check-every", type=int, default=_DEFAULT.admm.check_every,
                   help="iterations between convergence checks (each one syncs a GPU)")
    g.add_argument("--anderson", type=int, default=_DEFAULT.admm.anderson,
                   help="memory of the Anderson acceleration, 0 = plain ADMM")
    g.add_argument("--float32-until", type=float, default=_DEFAULT.admm.float32_until,
                   help="CPU: iterate in float32 until the residuals reach this, then float64; "
                   "0 = float64 throughout; None = 1e-5 on the CPU, 0 on CUDA")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (None: torch's choice)")
    g = p.add_argument_group("scs/mosek options")
    g.add_argument("--eps", type=float, default=_DEFAULT.scs.eps,
                   help="SCS eps_abs = eps_rel; MOSEK's gap and feasibility tolerances")
    g.add_argument("--max-iters", type=int, default=_DEFAULT.scs.max_iters,
                   help="SCS iteration cap")
    g.add_argument("--memory-limit-mb", type=float, default=_DEFAULT.scs.memory_limit_mb,
                   help="refuse problems estimated above this (None: the memory available)")
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> None:
    from ntpgeom.store import write_store

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    table = load(args.table)
    options = {k: getattr(args, k) for k in (
        "solver", "gap_tol", "time_limit", "device", "residual_tol", "max_iter", "check_every",
        "anderson", "float32_until", "eps", "max_iters", "memory_limit_mb", "rank_rtol")}
    ds = solve(table, **options, config={"svm": options, "table": str(args.table)})
    write_store(ds, args.out)
    print(f"{args.out}: {ds.attrs['solver']} {ds.attrs['status']}, ‖L_mm‖_* = "
          f"{ds.attrs['nuclear_norm']:.10g}, rank {ds.attrs['rank']}, gap {ds.attrs['gap']}")
