"""The closed-form objects of the theory, and the linear algebra every stage shares.

All matrices are in the paper's orientation: tokens × contexts (V × m), column j = context j.
``docs/paper.md`` §1.4 (the subspace F, L*), §1.7 (S̄) and §1.8 (factors W = U√Σ, H = √ΣVᵀ).
NumPy only, so this runs wherever the numerical core runs.
"""

from __future__ import annotations

import numpy as np

#: Singular values at or below ``RANK_RTOL × σ_max`` count as zero when a logit matrix is factored.
#: The paper's code cuts at an absolute 1e-6 on matrices of norm ~10², i.e. about 1e-8 relative;
#: solver solutions accurate to 1e-8 leave noise singular values far below this.
RANK_RTOL = 1e-6


def centered_support(S: np.ndarray) -> np.ndarray:
    """S̄ = (I − 11ᵀ/V) S, the closed-form NTP-SVM solution for k-subset tables (paper §1.7).

    Entries are (V − S_j)/V on the support and −S_j/V off it. S̄ is feasible with margin exactly 1
    for any supports, so ‖S̄‖_* bounds ‖L^mm‖_* from above.
    """
    S = np.asarray(S, dtype=float)
    return S - S.mean(axis=0, keepdims=True)


def in_support_logits(S: np.ndarray, P: np.ndarray) -> np.ndarray:
    """L* ∈ F: the unique solution of L_zj − L_z'j = log(P_zj / P_z'j) for z, z' ∈ S_j (§1.4).

    Column by column: log P_zj minus its mean over S_j on the support, zero off it. It depends on
    the in-support probabilities only, not on π.
    """
    S = np.asarray(S, dtype=bool)
    logp = np.where(S, np.log(np.where(S, P, 1.0)), 0.0)
    return project_F(logp, S)


def project_F(L: np.ndarray, S: np.ndarray) -> np.ndarray:  # noqa: N802 (the paper's letter)
    """Orthogonal projection onto F = span{(e_z − e_z') e_jᵀ : z, z' ∈ S_j}, in O(Vm).

    Per column: center L_{:,j} over S_j and zero it off S_j (the code's ``project_Lt``); the
    complement is ``L − project_F(L, S)``.
    """
    S = np.asarray(S, dtype=bool)
    size = S.sum(axis=0)
    mean = np.where(S, L, 0.0).sum(axis=0) / np.maximum(size, 1)
    return np.where(S, L - mean, 0.0)


def factorize(L: np.ndarray, rtol: float = RANK_RTOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W = U√Σ (V × r), H = √ΣVᵀ (r × m) and σ (r,) from the SVD of L, rank cut at ``rtol·σ_max``.

    Then W H = L (up to the cut), ‖W‖_F² + ‖H‖_F² = 2‖L‖_*, W Wᵀ = (L Lᵀ)^{1/2} and
    Hᵀ H = (Lᵀ L)^{1/2}: the geometry a trained model with d ≥ r can take (paper §1.3, §1.8).
    The signs of singular vectors are fixed (largest-magnitude entry of each column of U positive)
    so that the factors are reproducible.
    """
    U, sigma, Vt = np.linalg.svd(np.asarray(L, dtype=float), full_matrices=False)
    r = int((sigma > rtol * sigma[0]).sum()) if sigma.size and sigma[0] > 0 else 0
    U, sigma, Vt = U[:, :r], sigma[:r], Vt[:r]
    flip = np.sign(U[np.abs(U).argmax(axis=0), np.arange(r)])
    flip[flip == 0] = 1
    U, Vt = U * flip, Vt * flip[:, None]
    root = np.sqrt(sigma)
    return U * root, root[:, None] * Vt, sigma


def nuclear_norm(L: np.ndarray) -> float:
    """‖L‖_*, the sum of singular values."""
    return float(np.linalg.svd(np.asarray(L, dtype=float), compute_uv=False).sum())


def reldir(A: np.ndarray, B: np.ndarray) -> float:
    """‖A/‖A‖_F − B/‖B‖_F‖_F: the distance between directions (0 = same, 2 = opposite)."""
    return float(np.linalg.norm(A / np.linalg.norm(A) - B / np.linalg.norm(B)))


def constraint_violation(L: np.ndarray, S: np.ndarray) -> tuple[float, float]:
    """Worst violation of the NTP-SVM constraints (§1.5), anchor-free.

    Returns ``(spread, shortfall)``: the largest spread max − min of L over a support (the
    equalities), and the largest max(0, 1 − (min over S_j − max off S_j)) (the margin). Contexts
    with full support have no margin constraint.
    """
    S = np.asarray(S, dtype=bool)
    inside_max = np.where(S, L, -np.inf).max(axis=0)
    inside_min = np.where(S, L, np.inf).min(axis=0)
    outside_max = np.where(~S, L, -np.inf).max(axis=0)
    spread = float((inside_max - inside_min).max())
    margin = inside_min - outside_max
    shortfall = float(np.maximum(0.0, 1.0 - margin[np.isfinite(margin)]).max(initial=0.0))
    return spread, shortfall


def reference_dataset(table, config=None, *, rtol: float = RANK_RTOL):
    """``reference.zarr``: L*, S̄ and S̄'s factors (W̄, H̄, σ̄) of a table (docs/artifacts.md)."""
    import xarray as xr

    from ntpgeom.store import provenance

    S, P = table.S(), table.P()
    L_star = in_support_logits(S, P)
    S_bar = centered_support(S)
    W_bar, H_bar, sigma = factorize(S_bar, rtol)
    coords = {"token": ("token", np.array(table.tokens, dtype=object)),
              "context": ("context", np.array(table.contexts, dtype=object))}
    ds = xr.Dataset(
        {
            "L_star": (("token", "context"), L_star,
                       {"long_name": "L*, in-support log-odds centered per context (in F)"}),
            "S_bar": (("token", "context"), S_bar,
                      {"long_name": "S̄ = (I − 11ᵀ/V) S, the centered support"}),
            "W_bar": (("token", "rank"), W_bar, {"long_name": "U√Σ of S̄ (word embeddings)"}),
            "H_bar": (("rank", "context"), H_bar, {"long_name": "√ΣVᵀ of S̄ (context embeddings)"}),
            "S_bar_singular_values": ("rank", sigma, {"long_name": "singular values of S̄"}),
        },
        coords=coords,
    )
    ds.attrs = provenance(config, rank_rtol=rtol, rank=len(sigma),
                          nuclear_norm_S_bar=float(sigma.sum()),
                          norm_L_star=float(np.linalg.norm(L_star)), entropy=table.entropy)
    return ds
