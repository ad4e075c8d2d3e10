"""The one cvxpy layer of the package: solver choice, options, the MOSEK licence probe, errors.

The NTP-SVM in L (:mod:`ntpgeom.theory.svm.cvx`, an SDP) and the linear model's W^mm and
max-margin problems (:mod:`ntpgeom.theory.linear`, a QP and an SOCP) build their problems on
the anchor-form constraints of :func:`anchor_constraints` and solve them through :func:`solve`,
so that solver names, tolerances and error messages are the same everywhere.

Traps handled here (``docs/ecosystem.md`` §3): the solver is always passed explicitly; MOSEK is
used only after a probe solve proves a licence (an unlicensed MOSEK raises ``mosek.Error``, not
a ``cvxpy.SolverError``); ``MOSEKLM_LICENSE_FILE`` is read when cvxpy is first imported, so it
must be in the process environment; SCS runs with ``linear_solver="qdldl"`` (MKL Pardiso's
results depend on the thread count) and ``warm_start=False``.

cvxpy is imported inside the functions that build or solve a problem, never at module level:
it costs ~0.8 s, and these modules are imported when Snakemake parses the workflow
(``rules/common.smk``) and by the linear study's training, which solves nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ntpgeom.errors import UserError

log = logging.getLogger(__name__)

#: SCS's iteration cap unless a caller says otherwise (the ``svm.cvxpy.max_iters`` default).
SCS_MAX_ITERS = 100_000
#: How the log names a solver.
DISPLAY_NAMES = {"scs": "SCS", "mosek": "MOSEK", "clarabel": "Clarabel"}
#: Clarabel's iteration cap: an interior-point method needs tens of iterations, not hundreds.
CLARABEL_MAX_ITER = 500


def licence_hint(alternatives: str) -> str:
    """What a missing MOSEK licence tells the user; ``alternatives`` names the other solvers."""
    return ("put a licence file at ~/mosek/mosek.lic or point MOSEKLM_LICENSE_FILE at one in the "
            "environment that starts the job (it is read when cvxpy is imported; free academic "
            "licences: https://www.mosek.com/products/academic-licenses/), or use solver "
            f"{alternatives}")


@functools.cache
def mosek_status() -> tuple[bool, str]:
    """Whether MOSEK can solve here, and why not: a 2 × 2 nuclear-norm probe through cvxpy.

    ``cp.installed_solvers()`` lists MOSEK whenever the package imports, licence or not, so only a
    solve tells. Cached per process (the licence path is fixed at import anyway).
    """
    import cvxpy as cp

    if "MOSEK" not in cp.installed_solvers():
        return False, "the mosek package is not installed (pip install mosek)"
    X = cp.Variable((2, 2))
    try:
        cp.Problem(cp.Minimize(cp.normNuc(X)), [X[0, 0] >= 1]).solve(solver=cp.MOSEK,
                                                                       warm_start=False)
    except Exception as err:  # mosek.Error is not a cvxpy.SolverError: catch it all
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return False, first
    return True, ""


def resolve_solver(solver: str, *, where: str, fallback: str, choices: Sequence[str],
                   alternatives: str) -> str:
    """Our solver name for ``solver``: ``auto`` → ``mosek`` when licensed, else ``fallback``
    (with a log line).

    Raises
    ------
    UserError
        ``mosek`` without a licence (saying how to get one, or to use ``alternatives``), or a
        name not in ``choices``.
    """
    if solver == "auto":
        ok, why = mosek_status()
        if ok:
            return "mosek"
        log.info("%s: solver auto: MOSEK unavailable (%s); falling back to %s", where, why,
                 DISPLAY_NAMES.get(fallback, fallback))
        return fallback
    if solver == "mosek":
        ok, why = mosek_status()
        if not ok:
            raise UserError(f"{where} solver mosek: MOSEK cannot solve here ({why}); "
                            f"{licence_hint(alternatives)}")
        return solver
    if solver not in choices:
        raise UserError(f"{where}: unknown cvxpy solver {solver!r}; choose from "
                        f"{', '.join([*choices, 'auto'])}")
    return solver


def solver_options(name: str, *, eps: float, max_iters: int = SCS_MAX_ITERS,
                   time_limit: float | None = None) -> dict[str, Any]:
    """The keyword arguments of ``problem.solve`` for solver ``name`` at tolerance ``eps``.

    SCS: ``eps_abs = eps_rel = eps``, qdldl, ``max_iters``; MOSEK: relative gap and feasibility
    tolerances of the conic and the quadratic interior point; Clarabel: gap and feasibility.
    ``time_limit`` (seconds) caps SCS and MOSEK; a solve cut short reports
    ``optimal_inaccurate``.
    """
    if name == "scs":
        options: dict[str, Any] = {"eps_abs": eps, "eps_rel": eps, "max_iters": int(max_iters),
                                   "linear_solver": "qdldl"}
        if time_limit is not None:
            options["time_limit_secs"] = float(time_limit)
        return options
    if name == "mosek":
        params: dict[str, Any] = {"MSK_DPAR_INTPNT_CO_TOL_REL_GAP": eps,
                                  "MSK_DPAR_INTPNT_CO_TOL_PFEAS": eps,
                                  "MSK_DPAR_INTPNT_CO_TOL_DFEAS": eps,
                                  "MSK_DPAR_INTPNT_QO_TOL_REL_GAP": eps}
        if time_limit is not None:
            params["MSK_DPAR_OPTIMIZER_MAX_TIME"] = float(time_limit)
        return {"mosek_params": params}
    if name == "clarabel":
        return {"tol_gap_abs": eps, "tol_gap_rel": eps, "tol_feas": eps,
                "max_iter": CLARABEL_MAX_ITER}
    raise ValueError(f"no options for solver {name!r}")


def solve(problem, name: str, *, eps: float, where: str, alternatives: str,
          max_iters: int = SCS_MAX_ITERS, time_limit: float | None = None,
          verbose: bool = False) -> dict[str, Any]:
    """Solve ``problem`` with solver ``name`` (already resolved) and return the options used.

    Raises
    ------
    UserError
        The solver fails (``cvxpy.SolverError``, or a ``mosek.Error`` such as a licence that
        expired between the probe and the solve), with the solver's first line and what to use
        instead (``alternatives``).
    """
    import cvxpy as cp

    options = solver_options(name, eps=eps, max_iters=max_iters, time_limit=time_limit)
    arg = {"scs": cp.SCS, "mosek": cp.MOSEK, "clarabel": cp.CLARABEL}[name]
    try:
        problem.solve(solver=arg, warm_start=False, verbose=verbose, **options)
    except cp.error.SolverError as err:
        raise UserError(f"{where} solver {name} failed: {str(err).splitlines()[0]}; try "
                        f"solver {alternatives}") from err
    except Exception as err:  # mosek.Error is not a cvxpy.SolverError
        if type(err).__module__.split(".")[0] == "mosek":
            raise UserError(f"{where} solver mosek: {str(err).splitlines()[0]}; "
                            f"{licence_hint(alternatives)}") from err
        raise
    return options


def require_solution(problem, variable, name: str, *, where: str, hint: str) -> np.ndarray:
    """``variable``'s value after :func:`solve`, or a one-line :class:`UserError` when the solver
    found none (``hint`` says what to try); ``optimal_inaccurate`` is accepted with a warning, as
    cvxpy's own message advises (the callers certify or cross-check what they keep)."""
    import cvxpy as cp

    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or variable.value is None:
        raise UserError(f"{where} solver {name}: no solution (status {problem.status}); {hint}")
    if problem.status == cp.OPTIMAL_INACCURATE:
        log.warning("%s: %s reports optimal_inaccurate", where, name)
    return np.asarray(variable.value, dtype=float)


def solver_version(name: str) -> str:
    """The solver library's version string (provenance; ``unknown`` when it cannot be read)."""
    try:
        if name == "scs":
            import scs

            return str(scs.__version__)
        if name == "clarabel":
            import clarabel

            return str(clarabel.__version__)
        import mosek

        return ".".join(map(str, mosek.Env.getversion()))
    except Exception:  # a version string is provenance, never worth failing a solve
        return "unknown"


def anchor_constraints(S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat column-major indices of the anchor form: L[eq] = L[eq_anchor] (z ∈ S_j, z ≠ a_j) and
    L[out_anchor] − L[out] ≥ 1 (v ∉ S_j), with a_j the lowest-index support token (the paper's
    code)."""
    V, _ = S.shape
    anchor = np.argmax(S, axis=0)
    z, j = np.nonzero(S)
    keep = z != anchor[j]
    eq, eq_anchor = z[keep] + V * j[keep], anchor[j[keep]] + V * j[keep]
    v, jo = np.nonzero(~S)
    return eq, eq_anchor, v + V * jo, anchor[jo] + V * jo


def anchor_form(logits, S: np.ndarray, margin) -> list:
    """The anchor-form constraints on a cvxpy V × m expression ``logits``: equal on each support
    (first, absent when every support is one token) and ``margin`` above every off-support
    logit (last)."""
    import cvxpy as cp

    flat = cp.vec(logits, order="F")
    eq, eq_anchor, out, out_anchor = anchor_constraints(np.asarray(S, dtype=bool))
    constraints = [flat[eq] == flat[eq_anchor]] if eq.size else []
    return constraints + [flat[out_anchor] - flat[out] >= margin]
