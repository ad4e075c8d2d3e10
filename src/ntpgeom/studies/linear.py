"""The linear model of NTP: fixed context embeddings H̄, trained decoder W (``docs/paper.md`` §1.9).

Thrampoulidis, "Implicit Optimization Bias of Next-Token Prediction in Linear Models" (NeurIPS
2024). The context embeddings h̄_j (columns of H̄ ∈ ℝ^{d×m}) are fixed; only W ∈ ℝ^{V×d} is
trained, on the distinct-context CE. With logits W h̄_j:

- **NTP_H-compatibility** (Def. 1): some W^p has (e_z − e_z')ᵀ W^p h̄_j = log(P_zj / P_z'j) for all
  z, z' ∈ S_j. Decided by least squares; the residual is reported (:func:`in_support_solution`).
- **W*** ∈ F = span{(e_z − e_z') h̄_jᵀ}: the unique solution of those equations in F, i.e. the
  minimum-norm least-squares solution (Thm 1/2: P_F(W_k) → W*).
- **NTP-separability** (Def. 2): some W^d has equal logits on every support and margin ≥ 1 to every
  out-of-support token. Decided by the max-margin SOCP γ* = max_{‖W‖_F ≤ 1} min margin s.t. the
  equalities (:func:`max_margin`); separable iff γ* > 0, and then ‖W^mm‖_F = 1/γ*.
- **W^mm** (Def. 3, the NTP-SVM): argmin ‖W‖_F s.t. the separability constraints, a strongly
  convex QP with Σ_j S_j − m equalities and mV − Σ_j S_j inequalities (in the anchor form of
  :func:`ntpgeom.theory.svm.cvx.anchor_constraints`). Solved with cvxpy (Clarabel, SCS, MOSEK when
  licensed: :func:`solve_wmm_cvx`) and by our own accelerated projected gradient on the dual
  (:func:`solve_wmm_fista`), whose cost per iteration is two V×d×m products.
- **Lemma 1**: d > m with rank(H̄) = m implies both conditions (:func:`overparameterized`).

GD converges for η ≤ 1/(2 L_smooth) (Lemma 2); :func:`smoothness` gives L_smooth. Orientation is
the paper's: W is V × d, H̄ is d × m, logits W H̄ are V × m. NumPy only (cvxpy and xarray are
imported inside the functions that need them), so the core runs wherever the training does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.theory.reference import constraint_violation, in_support_logits, project_F, reldir

log = logging.getLogger(__name__)

#: Where the fixed embeddings come from (``linear.embeddings.<name>.source``).
EMBEDDING_SOURCES = ("random", "train", "svm")
#: Solvers of the NTP-SVM in W (``linear.solvers``); the first listed is the stored ``W_mm``.
W_SOLVERS = ("clarabel", "scs", "mosek", "auto", "fista")
#: γ* ≤ MARGIN_RTOL · max_j ‖h̄_j‖ counts as zero: not separable. A unit-norm W has margins at
#: most √2 ‖h̄_j‖, so this is relative to the largest margin possible; interior-point solvers
#: resolve γ* to ~1e-9 of it.
MARGIN_RTOL = 1e-6
#: Compatibility holds when the worst in-support log-odds error of W* is below this (nats) times
#: max(1, the largest log-odds): least squares resolves a consistent system to ~1e-13.
COMPAT_RTOL = 1e-8


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


def overparameterized(H_bar: np.ndarray) -> tuple[bool, int]:
    """(d > m and rank(H̄) = m, rank(H̄)): Lemma 1's sufficient condition for both conditions."""
    d, m = H_bar.shape
    rank = int(np.linalg.matrix_rank(H_bar))
    return d > m and rank == m, rank


def smoothness(H_bar: np.ndarray, pi: np.ndarray) -> float:
    """L_smooth of W ↦ CE(W): ½ λ_max(Σ_j π_j h̄_j h̄_jᵀ).

    The Hessian of −Σ_z p_z log softmax(l)_z in l is diag(s) − s sᵀ (s = softmax(l)), whose
    eigenvalues are ≤ ½ by Gershgorin (row z sums to 2 s_z(1 − s_z) ≤ ½). Hence
    ∇²CE(W) ⪯ ½ I_V ⊗ Σ_j π_j h̄_j h̄_jᵀ, and GD with η ≤ 1/(2 L_smooth) satisfies Lemma 2.
    """
    M = (H_bar * np.asarray(pi)) @ H_bar.T  # (d, m) diag(π) (m, d) -> (d, d)
    return 0.5 * float(np.linalg.eigvalsh(M)[-1])


# -- W*: the in-support solution (Def. 1) -------------------------------------------------------
def difference_operator(S: np.ndarray, H_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """A (Σ_j (S_j − 1), V·d): row (j, z) maps vec(W) (row-major) to (e_z − e_a_j)ᵀ W h̄_j.

    a_j is the lowest support token (the anchor). Also returns the rows' (z, j) indices. The
    row space of A is exactly F = span{(e_z − e_z') h̄_jᵀ}.
    """
    S = np.asarray(S, dtype=bool)
    V, _ = S.shape
    d = H_bar.shape[0]
    anchor = np.argmax(S, axis=0)
    z, j = np.nonzero(S)
    keep = z != anchor[j]
    z, j = z[keep], j[keep]
    A = np.zeros((len(z), V, d))
    rows = np.arange(len(z))
    A[rows, z] = H_bar[:, j].T
    A[rows, anchor[j]] = -H_bar[:, j].T
    return A.reshape(len(z), V * d), z, j


@dataclass
class InSupport:
    """W* and the compatibility check (see :func:`in_support_solution`)."""

    W_star: np.ndarray  # (V, d)
    residual: float  # max |P_F(W* H̄) − L*| over entries, nats
    compatible: bool
    basis: np.ndarray  # (r, V·d) orthonormal rows spanning F: P_F(W) = (Bᵀ B vec W).reshape
    rank: int  # dim F


def in_support_solution(S: np.ndarray, P: np.ndarray, H_bar: np.ndarray,
                        rtol: float = 1e-10) -> InSupport:
    """W* ∈ F solving (e_z − e_z')ᵀ W h̄_j = log(P_zj/P_z'j) for z, z' ∈ S_j, by least squares.

    The minimum-norm least-squares solution A⁺b (SVD of :func:`difference_operator`) lies in
    the row space of A, which is F; when the equations are consistent (NTP_H-compatibility,
    Def. 1) it is the unique solution in F. The residual is measured anchor-free against
    L* = :func:`ntpgeom.theory.reference.in_support_logits` as max_{z∈S_j} |P_F(W* H̄) − L*|, since
    (e_z − e_z')ᵀ W h̄_j = log(P_zj/P_z'j) for all pairs iff the column's centered logits on S_j
    equal L*'s.
    """
    S = np.asarray(S, dtype=bool)
    V = S.shape[0]
    d = H_bar.shape[0]
    A, z, j = difference_operator(S, H_bar)
    anchor = np.argmax(S, axis=0)
    b = np.log(P[z, j]) - np.log(P[anchor[j], j])
    if A.shape[0] == 0:  # every support a single token: no equations, F = {0}
        return InSupport(np.zeros((V, d)), 0.0, True, np.zeros((0, V * d)), 0)
    U, sigma, Vt = np.linalg.svd(A, full_matrices=False)
    r = int((sigma > rtol * sigma[0]).sum()) if sigma[0] > 0 else 0
    w = Vt[:r].T @ ((U[:, :r].T @ b) / sigma[:r])
    W_star = w.reshape(V, d)
    L_star = in_support_logits(S, P)
    residual = float(np.abs(project_F(W_star @ H_bar, S) - L_star).max())
    compatible = residual <= COMPAT_RTOL * max(1.0, float(np.abs(L_star).max()))
    return InSupport(W_star, residual, compatible, Vt[:r], r)


def project_F_W(W: np.ndarray, basis: np.ndarray) -> np.ndarray:  # noqa: N802 (paper's letter)
    """P_F(W): orthogonal projection of W (V × d, or a stack (k, V, d)) onto F ⊆ ℝ^{V×d}."""
    W = np.asarray(W, dtype=float)
    flat = W.reshape(-1, basis.shape[1])
    return ((flat @ basis.T) @ basis).reshape(W.shape)


# -- separability (Def. 2) ----------------------------------------------------------------------
@dataclass
class Margin:
    """The max-margin feasibility solve (see :func:`max_margin`)."""

    gamma: float  # max over ‖W‖_F ≤ 1 of the smallest margin, equalities held
    separable: bool
    stuck: int  # margin constraints that no W can make positive (≤ tolerance at the solution)
    constraints: int  # mV − Σ S_j margin constraints
    W: np.ndarray  # the maximizer (V, d)
    status: str
    solver: str


def _cvx_solver(solver: str) -> tuple[str, Any]:
    """cvxpy's solver constant for ours; ``auto`` = MOSEK when licensed, else Clarabel (the
    licence probe of :func:`ntpgeom.theory.svm.cvx.mosek_status`)."""
    import cvxpy as cp

    from ntpgeom.theory.svm.cvx import MOSEK_LICENCE_HINT, mosek_status

    if solver in ("auto", "mosek"):
        ok, why = mosek_status()
        if ok:
            return "mosek", cp.MOSEK
        if solver == "mosek":
            raise UserError(f"linear.solvers mosek: MOSEK cannot solve here ({why}); "
                            f"{MOSEK_LICENCE_HINT.replace('svm', 'linear')}")
        log.info("linear: solver auto: MOSEK unavailable (%s); using Clarabel", why)
        return "clarabel", cp.CLARABEL
    if solver == "clarabel":
        return "clarabel", cp.CLARABEL
    if solver == "scs":
        return "scs", cp.SCS
    raise UserError(f"linear.solvers: unknown cvxpy solver {solver!r}; choose from clarabel, scs, "
                    "mosek, auto")


def _options(name: str, eps: float) -> dict[str, Any]:
    """Tolerances per solver (``docs/ecosystem.md`` §3.4: SCS with qdldl for reproducibility)."""
    if name == "scs":
        return {"eps_abs": eps, "eps_rel": eps, "max_iters": 200_000, "linear_solver": "qdldl"}
    if name == "mosek":
        return {"mosek_params": {"MSK_DPAR_INTPNT_CO_TOL_REL_GAP": eps,
                                 "MSK_DPAR_INTPNT_CO_TOL_PFEAS": eps,
                                 "MSK_DPAR_INTPNT_CO_TOL_DFEAS": eps,
                                 "MSK_DPAR_INTPNT_QO_TOL_REL_GAP": eps}}
    return {"tol_gap_abs": eps, "tol_gap_rel": eps, "tol_feas": eps, "max_iter": 500}


def _constraints(cp, W, S: np.ndarray, H_bar: np.ndarray, rhs):
    """Anchor-form constraints on the logits W H̄ (V × m): equal on S_j, margin ≥ ``rhs`` off it."""
    from ntpgeom.theory.svm.cvx import anchor_constraints

    flat = cp.vec(W @ H_bar, order="F")
    eq, eq_anchor, out, out_anchor = anchor_constraints(S)
    cons = [flat[eq] == flat[eq_anchor]] if eq.size else []
    return cons + [flat[out_anchor] - flat[out] >= rhs]


def _solve(problem, name: str, solver_arg, eps: float, what: str) -> None:
    import cvxpy as cp

    try:
        problem.solve(solver=solver_arg, warm_start=False, **_options(name, eps))
    except cp.error.SolverError as err:
        raise UserError(f"linear {what}: solver {name} failed ({str(err).splitlines()[0]}); "
                        "try another of linear.solvers (clarabel, scs, fista)") from err
    except Exception as err:  # mosek.Error is not a cvxpy.SolverError
        if type(err).__module__.split(".")[0] == "mosek":
            raise UserError(f"linear {what}: mosek: {str(err).splitlines()[0]}") from err
        raise


def max_margin(S: np.ndarray, H_bar: np.ndarray, *, solver: str = "auto",
               eps: float = 1e-9) -> Margin:
    """Decide NTP-separability (Def. 2) by the SOCP γ* = max t s.t. ‖W‖_F ≤ 1, equal logits on
    every S_j, and (e_z − e_v)ᵀ W h̄_j ≥ t for z ∈ S_j, v ∉ S_j.

    γ* ≥ 0 always (W = 0); the data are separable iff γ* > 0, and then W^mm = W_γ/γ* (the NeurIPS
    paper's max-margin form of Def. 3), so ‖W^mm‖_F = 1/γ*. When γ* = 0 the interior-point
    solution keeps every margin that can be positive positive; the others are counted in
    ``stuck`` (the constraints that make the data non-separable).
    """
    import cvxpy as cp

    S = np.asarray(S, dtype=bool)
    V, m = S.shape
    d = H_bar.shape[0]
    name, solver_arg = _cvx_solver("clarabel" if solver == "fista" else solver)
    W, t = cp.Variable((V, d)), cp.Variable()
    problem = cp.Problem(cp.Maximize(t), [cp.norm(W, "fro") <= 1,
                                          *_constraints(cp, W, S, H_bar, t)])
    _solve(problem, name, solver_arg, eps, "separability check")
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or W.value is None:
        raise UserError(f"linear separability check: {name} returned status {problem.status}; "
                        "try another of linear.solvers")
    Wv = np.asarray(W.value, dtype=float)
    gamma = float(t.value)
    scale = float(np.linalg.norm(H_bar, axis=0).max()) if m else 1.0
    tol = MARGIN_RTOL * max(scale, 1e-300)
    L = Wv @ H_bar
    inside_min = np.where(S, L, np.inf).min(axis=0)
    margins = (inside_min[None, :] - L)[~S]
    stuck = int((margins <= tol).sum()) if gamma <= tol else 0
    return Margin(gamma, gamma > tol, stuck, int((~S).sum()), Wv, problem.status, name)


# -- W^mm: the NTP-SVM (Def. 3) -----------------------------------------------------------------
@dataclass
class SvmSolution:
    """W^mm from one solver."""

    W: np.ndarray  # (V, d)
    solver: str
    status: str
    seconds: float
    iterations: int | None = None
    max_violation: float = float("nan")  # worst of (support spread, margin shortfall) of W H̄
    extra: dict[str, Any] = field(default_factory=dict)


def solve_wmm_cvx(S: np.ndarray, H_bar: np.ndarray, *, solver: str = "clarabel",
                  eps: float = 1e-9) -> SvmSolution:
    """W^mm = argmin ½‖W‖_F² s.t. W H̄ equal on each S_j and ≥ 1 above every off-support logit.

    A QP (Clarabel solves it as such; SCS and MOSEK through their cones), not an SDP.

    Raises
    ------
    UserError
        An infeasible problem (not separable), a solver failure, or an unlicensed MOSEK.
    """
    import cvxpy as cp

    S = np.asarray(S, dtype=bool)
    V, d = S.shape[0], H_bar.shape[0]
    name, solver_arg = _cvx_solver(solver)
    W = cp.Variable((V, d))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(W)), _constraints(cp, W, S, H_bar, 1))
    t0 = time.perf_counter()
    _solve(problem, name, solver_arg, eps, "NTP-SVM")
    seconds = time.perf_counter() - t0
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise UserError("linear NTP-SVM: the constraints are infeasible: the embeddings are not "
                        "NTP-separable")
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or W.value is None:
        raise UserError(f"linear NTP-SVM: {name} returned status {problem.status}; try another "
                        "of linear.solvers")
    if problem.status == cp.OPTIMAL_INACCURATE:
        log.warning("linear: %s reports optimal_inaccurate for W^mm", name)
    Wv = np.asarray(W.value, dtype=float)
    stats = problem.solver_stats
    return SvmSolution(Wv, name, problem.status, seconds,
                       getattr(stats, "num_iters", None) if stats else None,
                       max(constraint_violation(Wv @ H_bar, S)))


def project_dual(X: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Euclidean projection of each column of X (V × m) onto {y : 1ᵀy = 0, y_v ≤ 0 for v ∉ S_j}.

    y = x − τ on S_j and min(x − τ, 0) off it, with τ the root of the decreasing piecewise-linear
    Σ_v y_v(τ). Exact: with the k smallest off-support entries negative after the shift,
    τ_k = (Σ_{S_j} x + Σ_{k smallest off} x) / (S_j + k), and the right k is the one whose τ_k
    lies between the k-th and (k+1)-th smallest off-support entries.
    """
    S = np.asarray(S, dtype=bool)
    V, m = X.shape
    xs = np.sort(np.where(S, np.inf, X), axis=0)  # off-support entries ascending, then +inf
    finite = np.isfinite(xs)
    cum = np.vstack([np.zeros((1, m)), np.cumsum(np.where(finite, xs, 0.0), axis=0)])  # (V+1, m)
    k = np.arange(V + 1)[:, None]
    n_in = S.sum(axis=0)
    tau = (np.where(S, X, 0.0).sum(axis=0) + cum) / (n_in + k)  # (V+1, m)
    below = np.vstack([np.full((1, m), -np.inf), xs])  # k-th smallest (k ≥ 1)
    above = np.vstack([xs, np.full((1, m), np.inf)])  # (k+1)-th smallest
    valid = (below < tau) & (tau <= above)
    kk = np.argmax(valid, axis=0)
    t = tau[kk, np.arange(m)]
    Y = X - t
    return np.where(S, Y, np.minimum(Y, 0.0))


def solve_wmm_fista(S: np.ndarray, H_bar: np.ndarray, *, tol: float = 1e-10,
                    max_iter: int = 200_000, check_every: int = 10) -> SvmSolution:
    """W^mm by accelerated projected gradient (FISTA, adaptive restart) on the dual of the QP.

    The Lagrangian of min ½‖W‖² s.t. the anchor-form constraints gives W = Y H̄ᵀ with Y ∈ ℝ^{V×m}
    in K = {each column sums to 0, off-support entries ≤ 0} (the off-support entries are minus
    the margin multipliers; in-support entries carry the equality multipliers). The dual is

        min_{Y ∈ K} f(Y) = ½‖Y H̄ᵀ‖_F² + Σ_{v ∉ S_j} Y_vj,

    smooth with constant σ_max(H̄)², projected exactly by :func:`project_dual`. At the optimum
    ‖W‖² = Σ μ (complementary slackness), so the run stops when the relative duality gap
    |‖W‖² − Σμ|/‖W‖² and the worst constraint violation of W H̄ are both ≤ ``tol``. Restart:
    O'Donoghue & Candès (2015), gradient scheme. Cost per iteration: two (V×m)(m×d) products.
    """
    S = np.asarray(S, dtype=bool)
    V, m = S.shape
    off = (~S).astype(float)
    Lip = float(np.linalg.norm(H_bar, 2)) ** 2
    step = 1.0 / Lip
    Y = np.zeros((V, m))
    Z, t = Y.copy(), 1.0
    t0 = time.perf_counter()
    status, it, gap, viol = "max_iter", 0, np.inf, np.inf
    for it in range(1, max_iter + 1):
        grad = (Z @ H_bar.T) @ H_bar + off  # (V, m)(m, d)(d, m)
        Y_new = project_dual(Z - step * grad, S)
        if np.sum((Z - Y_new) * (Y_new - Y)) > 0:  # the momentum points uphill: restart
            t, Z = 1.0, Y.copy()
            continue
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        Z = Y_new + ((t - 1) / t_new) * (Y_new - Y)
        Y, t = Y_new, t_new
        if it % check_every == 0:
            W = Y @ H_bar.T
            sq = float(np.sum(W * W))
            if sq > 0:
                gap = abs(sq + float(np.sum(Y * off))) / sq
                viol = max(constraint_violation(W @ H_bar, S))
                if gap <= tol and viol <= tol:
                    status = "optimal"
                    break
    W = Y @ H_bar.T
    if status != "optimal":
        log.warning("linear: fista stopped at max_iter=%d (gap %.1e, violation %.1e)", max_iter,
                    gap, viol)
    return SvmSolution(W, "fista", status, time.perf_counter() - t0, it,
                       max(constraint_violation(W @ H_bar, S)), {"dual_gap": gap})


def solve_wmm(S: np.ndarray, H_bar: np.ndarray, solver: str, *, eps: float = 1e-9,
              tol: float = 1e-10, max_iter: int = 200_000) -> SvmSolution:
    """W^mm with one of :data:`W_SOLVERS`."""
    if solver == "fista":
        return solve_wmm_fista(S, H_bar, tol=tol, max_iter=max_iter)
    return solve_wmm_cvx(S, H_bar, solver=solver, eps=eps)


# -- the reference of one (table, embedding) ----------------------------------------------------
def correlation(A: np.ndarray, B: np.ndarray) -> float:
    """⟨A/‖A‖_F, B/‖B‖_F⟩ (NeurIPS Fig. 3); equals 1 − reldir(A, B)²/2. NaN for a zero matrix."""
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.sum(A * B) / (na * nb))


def linear_reference(table: Table, H_bar: np.ndarray, *, solvers: tuple[str, ...] | list[str] =
                     ("clarabel", "fista"), eps: float = 1e-9, fista_tol: float = 1e-10,
                     fista_max_iter: int = 200_000, embedding: dict[str, Any] | None = None,
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
    import xarray as xr

    from ntpgeom.store import provenance

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
    over, rank = overparameterized(H_bar)
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


# -- metrics of a training run ------------------------------------------------------------------
def run_metrics(W_steps: np.ndarray, reference, S: np.ndarray) -> dict[str, np.ndarray]:
    """Per checkpoint k (W_steps: (k, V, d)): the quantities of the NeurIPS Fig. 3 panels.

    ``corr_mm`` = ⟨W_k/‖W_k‖, W^mm/‖W^mm‖⟩ (→ 1, Thm 2), ``corr_mm_offset`` the same for
    W_k − W*, ``in_support_error`` = ‖P_F(W_k) − W*‖_F (→ 0), ``dist_mm`` = ‖W_k/‖W_k‖ −
    W^mm/‖W^mm‖‖_F.
    """
    H_bar = reference["H_bar"].transpose("dim", "context").values
    W_star = reference["W_star"].transpose("token", "dim").values
    W_mm = reference["W_mm"].transpose("token", "dim").values
    P = np.zeros_like(S, dtype=float)  # only the basis is needed: any P with this support
    P[S] = 1.0
    basis = in_support_solution(S, P / P.sum(axis=0, keepdims=True), H_bar).basis
    Wk = np.asarray(W_steps, dtype=float)
    proj = project_F_W(Wk, basis)
    return {
        "corr_mm": np.array([correlation(w, W_mm) for w in Wk]),
        "corr_mm_offset": np.array([correlation(w - W_star, W_mm) for w in Wk]),
        "in_support_error": np.linalg.norm((proj - W_star).reshape(len(Wk), -1), axis=1),
        "dist_mm": np.array([reldir(w, W_mm) if np.linalg.norm(w) > 0 else np.nan
                             for w in Wk]),
    }


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
def make_embeddings(table: Table, spec: dict[str, Any], store=None) -> tuple[np.ndarray,
                                                                             dict[str, Any]]:
    """H̄ (d, m) from one ``linear.embeddings`` entry, checked against the table.

    ``store`` is the opened training or svm store for sources ``train`` and ``svm``.
    """
    source = spec.get("source")
    d = spec.get("d")
    info: dict[str, Any] = {"source": source}
    if source == "random":
        if d is None:
            raise UserError("linear.embeddings: source random needs d (the embedding width)")
        H, contexts = random_embeddings(int(d), table.m, spec.get("seed", 0)), None
        info.update(d=int(d), seed=spec.get("seed", 0))
    elif source == "train":
        H, contexts, step = embeddings_from_train(store, spec.get("step", -1))
        info.update(model=spec.get("model"), run=spec.get("run"), step=step)
    elif source == "svm":
        H, contexts = embeddings_from_svm(store)
        info.update(solver=spec.get("solver"))
    else:
        raise UserError(f"linear.embeddings.source: unknown source {source!r}; choose from "
                        f"{', '.join(EMBEDDING_SOURCES)}")
    check_embeddings(H, table, d=d, contexts=contexts)
    return H, info


def reference_files(*, table: str, out: str, embedding: dict[str, Any], options: dict[str, Any],
                    store: str | None = None, config: dict[str, Any] | None = None) -> None:
    """Read the table (and the embeddings' store), write ``linear/{embedding}/reference.zarr``."""
    from ntpgeom.data.table import load
    from ntpgeom.store import open_store, write_store

    t = load(table)
    H, info = make_embeddings(t, embedding, open_store(store) if store else None)
    ds = linear_reference(t, H, solvers=options["solvers"], eps=options["eps"],
                          fista_tol=options["fista_tol"], fista_max_iter=options["fista_max_iter"],
                          embedding=info, config=config)
    write_store(ds, out)


def train_config(spec: dict[str, Any], *, d: int, L_smooth: float,  # noqa: N803
                 options: dict[str, Any]):
    """The :class:`ntpgeom.train.training.TrainConfig` of one ``linear.optimizers`` entry.

    ``lr: auto`` (gd only) is 1/(2 L_smooth), the largest step of Lemma 2; a larger gd step is
    allowed but logged, since the theorem no longer covers it. No LR schedule (milestones
    empty): the paper's runs use constant steps.
    """
    from ntpgeom.train.training import TrainConfig

    opt, lr = spec["optimizer"], spec["lr"]
    bound = 1.0 / (2.0 * L_smooth)
    if lr == "auto":
        if opt != "gd":
            raise UserError(f"linear.optimizers: lr auto is for gd only (1/(2L)); give {opt} a "
                            "number")
        lr = bound
    elif opt == "gd" and lr > bound:
        log.warning("linear: gd step %.3g exceeds 1/(2 L_smooth) = %.3g (Lemma 2)", lr, bound)
    values: dict[str, Any] = {"model": "linear", "d": d, "epochs": options["epochs"],
                              "optimizer": opt, "lr": float(lr), "milestones": [],
                              "weight_decay": spec.get("weight_decay", 0.0),
                              "seed": options["seed"], "dtype": options["dtype"],
                              "checkpoints_per_decade": options["checkpoints_per_decade"],
                              "device": options["device"]}
    if "betas" in spec:
        values["betas"] = spec["betas"]
    return TrainConfig.from_dict(values, where="linear.optimizers")


def train_files(*, table: str, reference: str, out: str, spec: dict[str, Any],
                options: dict[str, Any], progress: bool | None = False) -> None:
    """Train W on fixed H̄ with one optimizer; write ``linear/{embedding}/train/{name}.zarr``.

    The store is the training loop's (:func:`ntpgeom.train.training.train`) plus the per-checkpoint
    metrics of :func:`run_metrics` and attrs ``final_*``, ``lr_bound``, ``L_smooth``.

    Raises
    ------
    UserError
        The reference says the embeddings are not NTP-separable (:func:`require_separable`).
    """
    from ntpgeom.data.table import load
    from ntpgeom.store import open_store
    from ntpgeom.train.training import train

    t = load(table)
    ref = open_store(reference)
    require_separable(ref, f"linear {out}")
    H = ref["H_bar"].transpose("dim", "context").values
    check_embeddings(H, t, contexts=[str(c) for c in ref["context"].values],
                     where=f"{reference}")
    L_smooth = float(ref.attrs["L_smooth"])
    config = train_config(spec, d=H.shape[0], L_smooth=L_smooth, options=options)
    S = t.S()

    def extend(ds):
        metrics = run_metrics(ds["W"].transpose("step", "token", "dim").values, ref, S)
        for name, values in metrics.items():
            ds[name] = ("step", values, {"long_name": RUN_METRICS[name]})
        last = ds.isel(step=-1)
        ds.attrs.update(
            final_ce_minus_entropy=float(ds["trace_ce_minus_entropy"].values[-1]),
            final_norm_W=float(last["norm_W"]), final_corr_mm=float(last["corr_mm"]),
            final_corr_mm_offset=float(last["corr_mm_offset"]),
            final_in_support_error=float(last["in_support_error"]),
            L_smooth=L_smooth, lr_bound=1.0 / (2.0 * L_smooth), optimizer_name=spec["optimizer"])
        log.info("linear %s: CE − H %.3e, ⟨Ŵ, Ŵ^mm⟩ %.6f, ⟨(W − W*)^, Ŵ^mm⟩ %.6f, "
                 "‖P_F(W) − W*‖ %.3e", out, ds.attrs["final_ce_minus_entropy"],
                 ds.attrs["final_corr_mm"], ds.attrs["final_corr_mm_offset"],
                 ds.attrs["final_in_support_error"])
        return ds

    train(t, config, out=out, progress=progress, features=H, extend=extend,
          extra_config={"linear": options, "optimizer_spec": spec})


#: Long names of the per-step metrics of a linear run.
RUN_METRICS = {
    "corr_mm": "⟨W_k/‖W_k‖, W^mm/‖W^mm‖⟩",
    "corr_mm_offset": "⟨(W_k − W*)/‖W_k − W*‖, W^mm/‖W^mm‖⟩",
    "in_support_error": "‖P_F(W_k) − W*‖_F",
    "dist_mm": "‖W_k/‖W_k‖ − W^mm/‖W^mm‖‖_F",
}
