"""Comparisons that discount what the predictions cannot see (issue 14).

- :func:`center_columns`, :func:`centered_reldir`: softmax is invariant to adding a constant to
  each column of L (each context's logits), so a direction distance should not count each
  column's mean over tokens. L^mm and S̄ have zero column sums; trained L does not (13–18% of
  ‖L‖ for AdamW runs), and the raw distance ‖L/‖L‖ − T/‖T‖‖_F then overstates how far the
  prediction is.
- :func:`offdiag_correlation`: the structural correlation of two cosine matrices over their
  off-diagonal entries only. Both diagonals are all ones, so the paper's whole-matrix value is
  high (≈ 0.64 on the grammar data) even for random embeddings.
- :func:`group_cosines`: the mean cosine of context embeddings within blocks of identical support
  and across blocks (subspace collapse, paper §3 claim 6), in the units the paper speaks of.

Orientation as in :mod:`ntpgeom.metrics.geometry`: L is V × m, H is d × m.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ntpgeom.metrics.geometry import (
    SSIM_C,
    cosine_matrix,
    project_F_perp,
    structural_correlation,
    support_groups,
)
from ntpgeom.theory.reference import reldir

#: The comparisons of :func:`compare_extra`, added to every (step, target) of a geometry store.
EXTRA_METRICS = ("dist_L_centered", "dist_L_perp_centered", "corr_cos_W_offdiag",
                 "corr_cos_H_offdiag")
#: The per-step numbers of :func:`group_cosines` (trained H) in a geometry store.
GROUP_METRICS = ("cos_within_groups_H", "cos_across_groups_H")
#: Meaning and units of the variables above (merged into the store's ``DESCRIPTIONS``).
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "dist_L_centered": ("‖L̃_k/‖L̃_k‖ − T̃/‖T̃‖‖_F, column means over tokens removed "
                        "(softmax-invariant)", "1"),
    "dist_L_perp_centered": ("the same for P_F⊥(L_k)", "1"),
    "corr_cos_W_offdiag": ("structural correlation of cos(W_k) with the target's, off the "
                           "diagonal", "1"),
    "corr_cos_H_offdiag": ("structural correlation of cos(H_k) with the target's, off the "
                           "diagonal", "1"),
    "cos_within_groups_H": ("mean cos(h_i, h_j) within blocks of identical support", "1"),
    "cos_across_groups_H": ("mean cos(h_i, h_j) across blocks of identical support", "1"),
    "target_cos_within_groups_H": ("mean cosine of the target's h_j within identical supports",
                                   "1"),
    "target_cos_across_groups_H": ("mean cosine of the target's h_j across identical supports",
                                   "1"),
}


def center_columns(L: np.ndarray) -> np.ndarray:
    """L̃ = L − 1 (1ᵀL)/V: each context's (column's) mean over tokens removed.

    softmax(L̃_{:,j}) = softmax(L_{:,j}) for every j: L̃ is the part of L that predictions see.
    """
    L = np.asarray(L, dtype=float)
    return L - L.mean(axis=0, keepdims=True)


def centered_reldir(L: np.ndarray, T: np.ndarray) -> float:
    """‖L̃/‖L̃‖_F − T̃/‖T̃‖_F‖_F with both matrices' column means removed (:func:`center_columns`).

    For targets with zero column sums (L^mm, S̄) T̃ = T, so this is the issue's
    ‖L̃/‖L̃‖ − T/‖T‖‖_F; centring T too keeps the value invariant to per-column shifts of either
    matrix. Unchanged when any row vector c is added to L (L + 1cᵀ); equal to ``reldir(L, T)``
    when both L and T have zero column sums.
    """
    return reldir(center_columns(L), center_columns(T))


def offdiag_correlation(A: np.ndarray, B: np.ndarray, c: float = SSIM_C) -> float:
    """Structural correlation (:func:`~ntpgeom.metrics.geometry.structural_correlation`) of two
    square symmetric matrices over their entries above the diagonal (i < j).

    For cosine matrices the diagonal is 1 in both, which the whole-matrix value rewards; the
    off-diagonal value is ≈ 0 for unrelated embeddings. Below the diagonal repeats the same
    entries, so the upper triangle gives the value of every off-diagonal entry. NaN when either
    matrix is constant off the diagonal (nothing to correlate).
    """
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"offdiag_correlation: need two square matrices of one shape; got "
                         f"{A.shape} and {B.shape}")
    iu = np.triu_indices(A.shape[0], k=1)
    a, b = A[iu], B[iu]
    # Constant off-diagonal entries (a simplex ETF, as W^mm of k = 1 tables) have no structure
    # to correlate with: SSIM's c would make the value exactly 1 whatever the other matrix is.
    # Rounded as in rsa(), so that values equal in exact arithmetic count as constant.
    if a.size < 2 or np.ptp(np.round(a, 9)) == 0 or np.ptp(np.round(b, 9)) == 0:
        return float("nan")
    return structural_correlation(a, b, c)


def group_cosines(H: np.ndarray, S: np.ndarray) -> tuple[float, float]:
    """(within, across): mean cos(h_i, h_j) over pairs in one block of identical support, and over
    pairs in two different blocks.

    H is d × m (contexts are columns); blocks are :func:`support_groups` of S (size ≥ 2).
    ``within`` → 1 under subspace collapse (H^mm's columns in a block coincide, paper §1.6);
    ``across`` stays well below. NaN when no two contexts share a support (and ``across`` NaN
    with fewer than two blocks).
    """
    groups = support_groups(S)
    if not groups:
        return float("nan"), float("nan")
    C = cosine_matrix(np.asarray(H, dtype=float).T)
    within = np.concatenate([C[np.ix_(g, g)][np.triu_indices(len(g), k=1)] for g in groups])
    across = [C[np.ix_(a, b)].ravel() for i, a in enumerate(groups) for b in groups[i + 1:]]
    return (float(within.mean()),
            float(np.concatenate(across).mean()) if across else float("nan"))


def compare_extra(L: np.ndarray, W: np.ndarray, H: np.ndarray, target: Mapping[str, np.ndarray],
                  *, S: np.ndarray) -> dict[str, float]:
    """The comparisons of :data:`EXTRA_METRICS` of one checkpoint with one target.

    Same arguments as :func:`ntpgeom.metrics.geometry.compare`; a target without ``L`` (the raw
    support) gets NaN for the centered distances.
    """
    out: dict[str, float] = {}
    T = target.get("L")
    if T is not None:
        out["dist_L_centered"] = centered_reldir(L, T)
        out["dist_L_perp_centered"] = centered_reldir(project_F_perp(L, S), T)
    else:
        out["dist_L_centered"] = out["dist_L_perp_centered"] = float("nan")
    for name, mine, theirs in (("W", W, target["W"]), ("H", H.T, target["H"].T)):
        out[f"corr_cos_{name}_offdiag"] = offdiag_correlation(cosine_matrix(mine),
                                                              cosine_matrix(theirs))
    return out
