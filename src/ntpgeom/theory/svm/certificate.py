"""The certificate of an NTP-SVM solution: a proven lower bound on ‖L^mm‖_* from any dual guess.

The Lagrange dual of the program (``docs/paper.md`` §1.5; derivation in :func:`dual_bound`)::

    max Σ_j Σ_{v∉S_j} Y_vj   s.t.  ‖Y‖_2 ≤ 1,  Y_vj ≥ 0 (v ∉ S_j),  Σ_z Y_zj = 0 for every j.

Repairing any Y to exact dual feasibility gives a lower bound; an exactly feasible L gives the
upper bound ‖L‖_*. ADMM certifies its iterates with these (:func:`certificate`), the cvxpy
solvers and the closed form theirs (:func:`certified_gap`). Always float64. Internally matrices
are contexts × tokens (m × V), as in :mod:`ntpgeom.theory.svm.admm`.
"""

from __future__ import annotations

import numpy as np
import torch

#: Certificates are taken in float64 whatever the iterates' dtype.
DTYPE = torch.float64


def dual_bound(Y: torch.Tensor, support: torch.Tensor, n_in: torch.Tensor) -> torch.Tensor:
    """A certified lower bound on ‖L^mm‖_* from any Y (m × V); a 0-d tensor (no host sync).

    Lagrangian of min ‖L‖_* + I_C(X), L = X, with multiplier Y: inf_L ‖L‖_* + ⟨Y, L⟩ is 0 if
    ‖Y‖_2 ≤ 1 (else −∞), and inf_{X∈C} −⟨Y, X⟩ with X_{:,j} = t 1 + w (w_S = 0, w_out ≤ −1) is
    Σ_out Y if every column sums to 0 and Y_out ≥ 0 (else −∞). Any Y made to satisfy these gives
    g(Y) = Σ_out Y ≤ ‖L^mm‖_* (weak duality). The repair keeps the linear constraints exactly
    (clamp, then re-center each column on its support, which leaves Y_out alone) and scales the
    spectral norm down, which the cone constraints survive.
    """
    Y = torch.where(support, Y, Y.clamp_min(0.0))
    Y = Y - torch.where(support, (Y.sum(dim=1) / n_in)[:, None], 0.0)
    G = Y.mT @ Y if Y.shape[0] >= Y.shape[1] else Y @ Y.mT
    lam = torch.linalg.eigvalsh(G)  # the largest eigenvalue is accurate to ~eps relative
    spectral = lam[-1].clamp_min(0.0).sqrt()
    return torch.where(support, 0.0, Y).sum() / torch.clamp(spectral, min=1.0)


def svd_nuclear_norm(X: torch.Tensor) -> torch.Tensor:
    """‖X‖_* from ``svdvals`` (not the Gram: its ~eps·σ_max² noise on the zero eigenvalues of a
    low-rank X would add ~1e-7 per zero singular value, swamping a 1e-8 gap)."""
    return torch.linalg.svdvals(X).sum()


def extrapolated_dual(duals) -> torch.Tensor | None:
    """Aitken-style extrapolation of the dual sequence Y_k = ρ_k U_k from its last three terms.

    ADMM converges linearly, and near the end the dual error shrinks by an almost constant factor
    q per iteration, so Y_k + (Y_k − Y_{k−1}) q/(1 − q), q = ‖Y_k − Y_{k−1}‖/‖Y_{k−1} − Y_{k−2}‖,
    is much nearer Y* than Y_k (r104x400: dual-side gap 1.8e-7 → 3.9e-9 at iteration 200). It is
    only ever a *candidate*: :func:`dual_bound` repairs any Y, so the bound stays certified.
    """
    if len(duals) < 3:
        return None
    (r0, U0), (r1, U1), (r2, U2) = duals
    d1 = r2 * U2 - r1 * U1
    q = torch.linalg.vector_norm(d1) / torch.linalg.vector_norm(r1 * U1 - r0 * U0).clamp_min(1e-300)
    # q ≥ 1 (not contracting): no extrapolation; cap the factor at 1000 (q ≤ 0.999).
    c = torch.where(q < 0.999, q / (1.0 - q.clamp_max(0.999)), 0.0)
    return r2 * U2 + c * d1


def certificate(X: torch.Tensor, duals, support: torch.Tensor,
                 n_in: torch.Tensor) -> tuple[float, float]:
    """(‖X‖_*, dual lower bound), with one host sync.

    ``duals`` holds the last (ρ, U) pairs, newest last; the bound is the better of the repaired
    current dual ρU and its extrapolation (:func:`extrapolated_dual`). Both are valid bounds.
    """
    rho, U = duals[-1]
    bounds = [svd_nuclear_norm(X), dual_bound(rho * U, support, n_in)]
    Y_ext = extrapolated_dual(duals)
    if Y_ext is not None:
        bounds.append(dual_bound(Y_ext, support, n_in))
    upper, *lower = torch.stack(bounds).tolist()
    return upper, max(lower)


def certified_gap(L: np.ndarray, Y: np.ndarray, support: np.ndarray) -> tuple[float, float, float]:
    """Certify any feasible L (V × m) with any dual guess Y (V × m): (‖L‖_*, lower bound, rel. gap).

    Used for the cvxpy solvers, whose linear-constraint multipliers give Y (see
    :func:`dual_bound`); L must be exactly feasible for the upper bound to be valid.
    """
    supp = torch.as_tensor(np.ascontiguousarray(np.asarray(support, dtype=bool).T))
    n_in = supp.sum(dim=1).to(DTYPE)
    X = torch.as_tensor(np.ascontiguousarray(L.T), dtype=DTYPE)
    upper = float(svd_nuclear_norm(X))
    lower = float(dual_bound(torch.as_tensor(np.ascontiguousarray(Y.T), dtype=DTYPE), supp, n_in))
    return upper, lower, (upper - lower) / upper
