"""The NTP-SVM through cvxpy on its SDP embedding, with SCS or MOSEK (``docs/paper.md`` §5).

``cp.normNuc(L)`` compiles to the embedding min ½(tr A + tr B) s.t. [[A, L], [Lᵀ, B]] ⪰ 0: one PSD
cone of order V + m, whose (V+m)(V+m+1)/2 unknowns make the memory grow fast. The constraints are
the paper code's anchor form (§1.5; anchor a_j = the lowest support token), vectorised into one
equality and one inequality constraint.

Solver choice, options, the MOSEK licence probe and the error messages are the package's one cvxpy
layer, :mod:`ntpgeom.theory.conic` (shared with the linear model). Clarabel is not offered here:
it needs GBs at PSD order ~120 and aborts the process beyond.

The returned L is projected onto the constraint set (the solver's own iterate violates it by about
its tolerance; the violation is kept in ``raw_max_violation``), and certified with the multipliers
of the linear constraints as dual guess (:func:`ntpgeom.theory.svm.certificate.certified_gap`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntpgeom.errors import UserError
from ntpgeom.theory import conic
from ntpgeom.theory.reference import constraint_violation
from ntpgeom.theory.svm.config import ScsOptions

log = logging.getLogger(__name__)

#: The cvxpy solvers of the NTP-SVM in L; the ones to suggest instead of an unlicensed MOSEK.
CVX_SOLVERS = ("scs", "mosek")
ALTERNATIVES = "auto, scs or admm"


@dataclass
class CvxResult:
    """What :func:`solve_cvx` returns (see :class:`ntpgeom.theory.svm.admm.AdmmResult` for the
    shared
    fields)."""

    L: np.ndarray
    nuclear_norm: float
    lower_bound: float
    gap: float
    status: str
    solver: str
    seconds: float
    compile_seconds: float
    raw_max_violation: float
    iterations: int | None
    options: dict[str, Any] = field(default_factory=dict)


# --- memory --------------------------------------------------------------------------------------

def estimate_memory_mb(V: int, m: int, solver: str) -> float:  # noqa: N803
    """A rough peak-memory estimate (MB) of the cvxpy solve of a V × m problem.

    SCS: fitted to ``baselines.md`` (r104x400: 0.47 GB, r200x1000: 2.0 GB at 127k and 720k PSD
    unknowns): ~150 MB of interpreter and libraries plus ~2.6 kB per unknown of the PSD block
    (cvxpy's compiled matrices, SCS's KKT factorisation, and their copies).
    MOSEK: an interior-point method factorises a dense Schur complement of the ~mV linear
    constraints, 8(mV)² bytes, on top of the same compiled problem. This is an order of magnitude,
    not a measurement (no licence was available), and errs high.
    """
    n_psd = (V + m) * (V + m + 1) / 2
    base = 150.0 + 2.6e-3 * n_psd
    if solver == "mosek":
        return base + 8.0 * (V * m) ** 2 / 2**20
    return base


def available_memory_mb() -> float:
    """The memory this process may still use: ``MemAvailable`` from /proc/meminfo (Linux), else
    the physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


# --- the solve -----------------------------------------------------------------------------------

def solve_cvx(support: np.ndarray, *, solver: str = "scs", eps: float = ScsOptions.eps,
              max_iters: int = ScsOptions.max_iters, time_limit: float | None = None,
              memory_limit_mb: float | None = ScsOptions.memory_limit_mb,
              verbose: bool = False) -> CvxResult:
    """Solve the NTP-SVM with cvxpy and SCS or MOSEK; refuse problems that would not fit memory.

    Parameters
    ----------
    support : bool ndarray (V, m)
    solver : {"scs", "mosek", "auto"}
    eps : float
        SCS ``eps_abs = eps_rel``; MOSEK's relative gap and feasibility tolerances.
    max_iters : int
        SCS's iteration cap.
    time_limit : float or None
        Seconds (SCS ``time_limit_secs``, MOSEK ``MSK_DPAR_OPTIMIZER_MAX_TIME``); a solve cut short
        reports status ``optimal_inaccurate`` with its certified gap.
    memory_limit_mb : float or None
        Refuse when :func:`estimate_memory_mb` exceeds it; default the available memory.
    verbose : bool
        The solver's own log on stdout.

    Raises
    ------
    UserError
        Unlicensed MOSEK, a problem too large for memory, or a solve that returns no solution.
    """
    import cvxpy as cp

    # admm imports torch: not at module level, since Snakemake imports this module for every
    # svm job's memory estimate (rules/common.smk).
    from ntpgeom.theory.svm.admm import project_feasible
    from ntpgeom.theory.svm.certificate import certified_gap

    S = np.asarray(support, dtype=bool)
    V, m = S.shape
    name = conic.resolve_solver(solver, where="svm", fallback="scs", choices=CVX_SOLVERS,
                                alternatives=ALTERNATIVES)
    need = estimate_memory_mb(V, m, name)
    limit = available_memory_mb() if memory_limit_mb is None else memory_limit_mb
    if need > limit:
        raise UserError(f"svm solver {name}: V={V}, m={m} (PSD order {V + m}) needs about "
                        f"{need / 1024:.1f} GB, more than the {limit / 1024:.1f} GB available; "
                        "use solver admm (memory O(mV)) for problems this size")
    log.info("svm: cvxpy %s on V=%d, m=%d (PSD order %d, estimated %.0f MB)", name, V, m, V + m,
             need)
    t0 = time.perf_counter()
    L = cp.Variable((V, m))
    constraints = conic.anchor_form(L, S, 1)
    problem = cp.Problem(cp.Minimize(cp.normNuc(L)), constraints)
    conic.solve(problem, name, eps=eps, where="svm", alternatives=ALTERNATIVES,
                max_iters=max_iters, time_limit=time_limit, verbose=verbose)
    wall = time.perf_counter() - t0
    stats = problem.solver_stats
    solve_time = stats.solve_time if stats and stats.solve_time is not None else wall
    raw = conic.require_solution(problem, L, name, where="svm", hint="try solver admm")
    raw_violation = max(constraint_violation(raw, S))
    X = project_feasible(raw, S)
    eq, eq_anchor, out, out_anchor = conic.anchor_constraints(S)
    Y = np.zeros(V * m)
    if eq.size:
        nu = np.asarray(constraints[0].dual_value, dtype=float).reshape(-1)
        np.add.at(Y, eq, nu)
        np.add.at(Y, eq_anchor, -nu)
    mu = np.asarray(constraints[-1].dual_value, dtype=float).reshape(-1)
    np.add.at(Y, out, mu)
    np.add.at(Y, out_anchor, -mu)
    upper, lower, gap = certified_gap(X, Y.reshape((V, m), order="F"), S)
    log.info("svm: %s %s in %.1f s (solve %.1f s): ‖L‖_* = %.10g, raw violation %.1e, "
             "certified gap %.2e", name, problem.status, wall, solve_time, upper, raw_violation,
             gap)
    return CvxResult(L=X, nuclear_norm=upper, lower_bound=lower, gap=gap, status=problem.status,
                     solver=name, seconds=wall, compile_seconds=max(wall - solve_time, 0.0),
                     raw_max_violation=raw_violation,
                     iterations=getattr(stats, "num_iters", None) if stats else None,
                     options={"eps": eps, "max_iters": max_iters, "time_limit": time_limit,
                              **({"linear_solver": "qdldl"} if name == "scs" else {}),
                              "cvxpy_version": cp.__version__,
                              "solver_version": conic.solver_version(name)})

