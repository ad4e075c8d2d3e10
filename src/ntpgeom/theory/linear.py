"""The linear model's solutions: W*, separability and the NTP-SVM W^mm (``docs/paper.md`` §1.9).

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
  :func:`ntpgeom.theory.conic.anchor_constraints`). Solved with cvxpy (Clarabel, SCS, MOSEK when
  licensed, through the package's one cvxpy layer :mod:`ntpgeom.theory.conic`:
  :func:`solve_wmm_cvx`) and by our own accelerated projected gradient on the dual
  (:func:`solve_wmm_fista`), whose cost per iteration is two V×d×m products.
- **Lemma 1**: d > m with rank(H̄) = m implies both conditions (:func:`overparameterized`).

GD converges for η ≤ 1/(2 L_smooth) (Lemma 2); :func:`smoothness` gives L_smooth. Orientation is
the paper's: W is V × d, H̄ is d × m, logits W H̄ are V × m. NumPy only; cvxpy is imported inside
the functions that solve (see :mod:`ntpgeom.theory.conic`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntpgeom.errors import UserError
from ntpgeom.metrics.core import numerical_rank, singular_values
from ntpgeom.theory import conic
from ntpgeom.theory.reference import (
    RANK_RTOL,
    constraint_violation,
    in_support_logits,
    project_F,
)

log = logging.getLogger(__name__)

#: Solvers of the NTP-SVM in W (``linear.solvers``); the first listed is the stored ``W_mm``.
W_SOLVERS = ("clarabel", "scs", "mosek", "auto", "fista")
#: The cvxpy ones, and what to suggest instead of one that fails.
CVX_SOLVERS = ("clarabel", "scs", "mosek")
ALTERNATIVES = "clarabel, scs or fista (linear.solvers)"
#: γ* ≤ MARGIN_RTOL · max_j ‖h̄_j‖ counts as zero: not separable. A unit-norm W has margins at
#: most √2 ‖h̄_j‖, so this is relative to the largest margin possible; interior-point solvers
#: resolve γ* to ~1e-9 of it.
MARGIN_RTOL = 1e-6
#: Compatibility holds when the worst in-support log-odds error of W* is below this (nats) times
#: max(1, the largest log-odds): least squares resolves a consistent system to ~1e-13.
COMPAT_RTOL = 1e-8


#: Pseudo-inverse cut of the least-squares solve of W* (singular values of the difference
#: operator ≤ LSTSQ_RTOL · σ_1 count as zero): the operator is exact data, so the cut only drops
#: round-off; it is not the rank cut of a trained matrix (``linear.rank_rtol``).
LSTSQ_RTOL = 1e-10


def overparameterized(H_bar: np.ndarray, rank_rtol: float = RANK_RTOL) -> tuple[bool, int]:
    """(d > m and rank(H̄) = m, rank(H̄)): Lemma 1's sufficient condition for both conditions.

    rank(H̄) counts the singular values above ``rank_rtol · σ_1`` (``linear.rank_rtol``).
    """
    d, m = H_bar.shape
    rank = numerical_rank(singular_values(H_bar), rank_rtol)
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
                        rtol: float = LSTSQ_RTOL) -> InSupport:
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


def _resolve(solver: str) -> str:
    """Our cvxpy solver for ``solver``: ``auto`` = MOSEK when licensed, else Clarabel."""
    return conic.resolve_solver(solver, where="linear.solvers", fallback="clarabel",
                                choices=CVX_SOLVERS, alternatives=ALTERNATIVES)


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
    name = _resolve("clarabel" if solver == "fista" else solver)
    W, t = cp.Variable((V, d)), cp.Variable()
    problem = cp.Problem(cp.Maximize(t), [cp.norm(W, "fro") <= 1,
                                          *conic.anchor_form(W @ H_bar, S, t)])
    conic.solve(problem, name, eps=eps, where="linear separability check",
                alternatives=ALTERNATIVES)
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
    name = _resolve(solver)
    W = cp.Variable((V, d))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(W)), conic.anchor_form(W @ H_bar, S, 1))
    t0 = time.perf_counter()
    conic.solve(problem, name, eps=eps, where="linear NTP-SVM", alternatives=ALTERNATIVES)
    seconds = time.perf_counter() - t0
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise UserError("linear NTP-SVM: the constraints are infeasible: the embeddings are not "
                        "NTP-separable")
    Wv = conic.require_solution(problem, W, name, where="linear NTP-SVM",
                                hint="try another of linear.solvers")
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


