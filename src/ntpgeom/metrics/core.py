"""Metrics on arrays → numbers: the one family every store's per-step quantities come from.

Each function maps matrices of one checkpoint (and of a prediction) to a number; the run-level
builders (:mod:`ntpgeom.metrics.geometry` for the geometry stage, :mod:`ntpgeom.metrics.trajectory`
for grid points and linear runs) only loop over checkpoints and call these. The names they store
are the vocabulary of :mod:`ntpgeom.metrics.vocabulary`.

Orientation is the paper's: a logit matrix L is V × m (tokens × contexts), word embeddings W are
V × d (one row per token), context embeddings H are d × m (one column per context). Every
"embedding" argument of the representation-similarity metrics (CKA, RSA, k-NN, TwoNN) is a point
cloud with **one row per point**: pass ``W`` for words and ``H.T`` for contexts.

What each metric tests (paper §3):

- CE − H → 0 (Thm (i)); ‖P_F(L_k) − L*‖_F → 0 and ‖L_k − L*‖/‖L_k‖ → 1 (Thm (ii));
- ‖L_k/‖L_k‖ − L^mm/‖L^mm‖‖_F → 0 (Thm (iii)), also for P_F⊥(L_k) and for the Grams W Wᵀ, Hᵀ H,
  which are invariant to the rotation that leaves W H unchanged (§1.3);
- cosine-similarity matrices of W rows and H columns, compared by their structural correlation
  (the structure term of SSIM, ≈ Pearson correlation of the flattened matrices) with those of the
  predicted factors W^mm, H^mm, of S̄'s factors and of the support S itself;
- from the representation-geometry literature: linear CKA, RSA, k-NN overlap, TwoNN intrinsic
  dimension and the spread of context embeddings that share a support (subspace collapse).

Library choices (see ``README.md``): RSA is Spearman's ρ of two condensed dissimilarity vectors,
``scipy.stats.spearmanr`` on ``scipy.spatial.distance.pdist`` output, which is what
``rsatoolbox``'s ``compare_spearman`` computes, without its extra dependencies (h5py,
scikit-image, scikit-learn); TwoNN is the few-line maximum-likelihood estimator of Facco et al.
(2017) rather than ``scikit-dimension``, which pulls numba, llvmlite and scikit-learn for it. Both
are checked in ``tests/test_geometry.py`` on cases with known answers. NumPy and SciPy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.spatial.distance import cdist, pdist
from scipy.stats import spearmanr

from ntpgeom.theory.reference import RANK_RTOL, project_F, reldir

#: The SSIM stabilizer of the paper's ``compute_structural_component`` (C = 1e-5).
SSIM_C = 1e-5


# -- losses and norms --------------------------------------------------------------------------
def log_softmax(L: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of a V × m logit matrix, computed stably (max subtracted)."""
    L = np.asarray(L, dtype=float)
    shifted = L - L.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def cross_entropy(L: np.ndarray, P: np.ndarray, pi: np.ndarray) -> float:
    """CE(L) = −Σ_j π_j Σ_{z∈S_j} P_zj log softmax(L_{:,j})_z, in nats (paper §1.1).

    This is the per-sample NTP loss averaged over the n training pairs, written over the m distinct
    contexts. CE(L) ≥ H with equality only in the limit ‖L‖ → ∞.
    """
    P = np.asarray(P, dtype=float)
    logq = log_softmax(L)
    return float(-(np.asarray(pi) * np.where(P > 0, P * logq, 0.0).sum(axis=0)).sum())


def singular_values(L: np.ndarray) -> np.ndarray:
    """σ_1 ≥ … ≥ σ_min(V,m) of L."""
    return np.linalg.svd(np.asarray(L, dtype=float), compute_uv=False)


def numerical_rank(sigma: np.ndarray, rtol: float = RANK_RTOL) -> int:
    """Number of singular values above ``rtol · σ_1`` (the cut of :func:`reference.factorize`)."""
    sigma = np.asarray(sigma, dtype=float)
    return int((sigma > rtol * sigma[0]).sum()) if sigma.size and sigma[0] > 0 else 0


def effective_rank(sigma: np.ndarray) -> float:
    """exp(−Σ_i p_i log p_i) with p_i = σ_i / Σ_k σ_k (Roy & Vetterli, EUSIPCO 2007).

    A continuous rank: r equal singular values give exactly r; it is insensitive to the rank cut.
    Zero for the zero matrix.
    """
    sigma = np.asarray(sigma, dtype=float)
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


# -- the decomposition L = P_F(L) + P_F⊥(L) (paper §1.4, Thm (ii)) -----------------------------
def project_F_perp(L: np.ndarray, S: np.ndarray) -> np.ndarray:  # noqa: N802 (paper's letter)
    """P_F⊥(L) = L − P_F(L): constant over each support, free off it. O(Vm) per call."""
    return np.asarray(L, dtype=float) - project_F(L, S)


def in_support_error(L: np.ndarray, L_star: np.ndarray, S: np.ndarray) -> float:
    """‖P_F(L) − L*‖_F, the distance of L's in-support log-odds to their limit L* (Thm (ii))."""
    return float(np.linalg.norm(project_F(L, S) - L_star))


def relative_offset(L: np.ndarray, L_star: np.ndarray) -> float:
    """‖L − L*‖_F / ‖L‖_F: → 1 as the norm of the orthogonal component diverges (paper §2.6)."""
    return float(np.linalg.norm(np.asarray(L) - L_star) / np.linalg.norm(L))


def logit_metrics(L: np.ndarray, W: np.ndarray, H: np.ndarray, *, P: np.ndarray,
                  pi: np.ndarray, entropy: float, L_star: np.ndarray, S: np.ndarray
                  ) -> dict[str, float]:
    """The per-step quantities every UFM-type run stores: ``ce_minus_entropy`` (CE(L) − H),
    ``norm_W``, ``norm_H``, ``norm_L`` (Frobenius) and ``in_support_error`` (‖P_F(L) − L*‖_F)."""
    return {"ce_minus_entropy": cross_entropy(L, P, pi) - entropy,
            "norm_W": float(np.linalg.norm(W)), "norm_H": float(np.linalg.norm(H)),
            "norm_L": float(np.linalg.norm(L)), "in_support_error": in_support_error(L, L_star, S)}


def correlation(A: np.ndarray, B: np.ndarray) -> float:
    """⟨A/‖A‖_F, B/‖B‖_F⟩ (NeurIPS Fig. 3); equals 1 − reldir(A, B)²/2. NaN for a zero matrix."""
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.sum(A * B) / (na * nb))


def rank_limited_distance(sigma: np.ndarray, d: int) -> float:
    """min over rank-≤d L of ‖L/‖L‖ − T/‖T‖‖_F, from the target T's singular values σ.

    The best direction is the truncated SVD's (Eckart–Young), at cosine c = ‖σ_{≤d}‖/‖σ‖, and
    two unit vectors at cosine c are √(2 − 2c) apart. 0 when d ≥ rank(T).
    """
    sigma = np.sort(np.asarray(sigma, dtype=float))[::-1]
    c = float(np.linalg.norm(sigma[:d]) / np.linalg.norm(sigma))
    return math.sqrt(max(0.0, 2.0 - 2.0 * min(c, 1.0)))


# -- similarity matrices and their comparison ---------------------------------------------------
def cosine_matrix(X: np.ndarray) -> np.ndarray:
    """cos(X)_{ab} = ⟨x_a, x_b⟩ / (‖x_a‖ ‖x_b‖) over the rows of X.

    The paper's ``1 − cdist(X, X, 'cosine')``. A zero row has no direction: its row and column are
    0 (scipy gives NaN there), so that comparisons stay finite. Invariant to X → X R for any
    orthogonal R, hence to the rotation freedom of the factorization L = W H (§1.3).
    """
    X = np.asarray(X, dtype=float)
    norms = np.linalg.norm(X, axis=1)
    U = np.divide(X, norms[:, None], out=np.zeros_like(X), where=norms[:, None] > 0)
    C = U @ U.T
    np.clip(C, -1.0, 1.0, out=C)
    return C


def structural_correlation(A: np.ndarray, B: np.ndarray, c: float = SSIM_C) -> float:
    """SSIM's structure term (cov(a, b) + c) / (σ_a σ_b + c) over all entries of A and B.

    a, b are the flattened matrices, cov and σ population moments; with c = 0 this is Pearson's
    correlation. The paper's code (``compute_structural_component``, paper §3) mixes a population
    covariance with sample standard deviations, which multiplies the value by (N − 1)/N
    (0.9961 for a 16 × 16 matrix); we keep the moments consistent so that identical structure
    scores exactly 1. c = 1e-5 as in the paper: it only matters for near-constant matrices.
    """
    a = np.asarray(A, dtype=float).ravel()
    b = np.asarray(B, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"structural_correlation: shapes {np.shape(A)} and {np.shape(B)} differ")
    a = a - a.mean()
    b = b - b.mean()
    cov = (a * b).mean()
    return float((cov + c) / (np.sqrt((a * a).mean() * (b * b).mean()) + c))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA = ‖Ỹᵀ X̃‖_F² / (‖X̃ᵀ X̃‖_F ‖Ỹᵀ Ỹ‖_F), X̃, Ỹ column-centered.

    Kornblith, Norouzi, Lee & Hinton, "Similarity of neural network representations revisited",
    ICML 2019, eq. (4)/(5). X (N × p) and Y (N × q) hold the same N points (rows) in two spaces;
    p ≠ q is allowed. In [0, 1]; invariant to orthogonal maps and isotropic scaling of either.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    cross = np.linalg.norm(Y.T @ X) ** 2
    denom = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(cross / denom) if denom > 0 else float("nan")


def rsa(X: np.ndarray, Y: np.ndarray) -> float:
    """Representational similarity: Spearman's ρ between the cosine dissimilarities 1 − cos.

    Kriegeskorte, Mur & Bandettini, "Representational similarity analysis", Front. Syst.
    Neurosci. 2008: the two representational dissimilarity matrices (RDMs) are compared on
    their upper triangles (i < j), by rank correlation. NaN when one RDM is constant.
    """
    # Rounded to 1e-9 so that dissimilarities equal in exact arithmetic (common: symmetric
    # solutions such as L^mm have many equal cosines) tie instead of being ranked by round-off.
    rdm_x = np.round(pdist(np.asarray(X, dtype=float), "cosine"), 9)
    rdm_y = np.round(pdist(np.asarray(Y, dtype=float), "cosine"), 9)
    if np.ptp(rdm_x) == 0 or np.ptp(rdm_y) == 0:
        return float("nan")
    return float(spearmanr(rdm_x, rdm_y).statistic)


def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k most cosine-similar other rows, ties broken by index."""
    C = np.round(cosine_matrix(X), 9)  # exact ties stay ties (see rsa)
    np.fill_diagonal(C, -np.inf)
    return np.argsort(-C, axis=1, kind="stable")[:, :k]


def knn_overlap(X: np.ndarray, Y: np.ndarray, k: int = 5) -> float:
    """Mean over points i of |N_k^X(i) ∩ N_k^Y(i)| / k, neighbours by cosine similarity.

    The mutual k-nearest-neighbour alignment of Huh, Cheung, Wang & Isola, "The platonic
    representation hypothesis", ICML 2024. 1 when both clouds rank every point's k nearest
    neighbours alike; about k/(N−1) for unrelated clouds. k is capped at N − 1.
    """
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    nx, ny = _neighbours(X, k), _neighbours(np.asarray(Y, dtype=float), k)
    hits = [len(np.intersect1d(nx[i], ny[i], assume_unique=True)) for i in range(n)]
    return float(np.mean(hits) / k)


def twonn_dimension(X: np.ndarray) -> float:
    """TwoNN intrinsic dimension, d̂ = (N − 1) / Σ_i log(r₂(i)/r₁(i)) (maximum likelihood).

    Facco, d'Errico, Rodriguez & Laio, "Estimating the intrinsic dimension of datasets by a
    minimal neighborhood information", Sci. Rep. 7:12140 (2017): under local uniformity the ratio
    μ = r₂/r₁ of the distances to a point's second and first nearest neighbours is Pareto with
    P(μ > x) = x^(−d); the MLE of d is N / Σ log μ_i, and (N − 1)/Σ log μ_i is unbiased (Denti et
    al., Sci. Rep. 12:20005, 2022). Euclidean distances. Duplicate points (r₁ = 0, as for collapsed
    contexts) have no defined ratio and are merged first; NaN for fewer than 3 distinct points.
    """
    X = np.unique(np.round(np.asarray(X, dtype=float), 12), axis=0)
    n = X.shape[0]
    if n < 3:
        return float("nan")
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    r = np.sort(D, axis=1)[:, :2]
    log_mu = np.log(r[:, 1] / r[:, 0])
    total = log_mu.sum()
    return float((n - 1) / total) if total > 0 else float("inf")


def support_groups(S: np.ndarray) -> list[np.ndarray]:
    """Contexts grouped by identical support sets (columns of S), groups of size ≥ 2 only."""
    S = np.asarray(S, dtype=bool)
    _, inverse, counts = np.unique(S.T, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    return [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts >= 2)]


def subspace_collapse(H: np.ndarray, S: np.ndarray) -> float:
    """Spread of context directions within groups of identical support, relative to all contexts.

    With ĥ_j = h_j/‖h_j‖, groups G of contexts sharing a support (size ≥ 2) and their means
    ĥ_G: Σ_G Σ_{j∈G} ‖ĥ_j − ĥ_G‖² / Σ_j ‖ĥ_j − ĥ̄‖² over the contexts in those groups (ĥ̄ their
    overall mean). 0 when every group has collapsed to one direction (as the columns of L^mm and
    H^mm do, paper §1.6 "subspace collapse"); about 1 when the support says nothing about the
    direction. Directions, not vectors, because ‖h_j‖ diverges during training. NaN when no two
    contexts share a support. Within-/total-scatter ratios are the NC1-style measure of Papyan,
    Han & Donoho (PNAS 2020).
    """
    H = np.asarray(H, dtype=float)
    groups = support_groups(S)
    if not groups:
        return float("nan")
    norms = np.linalg.norm(H, axis=0)
    Hn = np.divide(H, norms, out=np.zeros_like(H), where=norms > 0)
    members = np.concatenate(groups)
    total = ((Hn[:, members] - Hn[:, members].mean(axis=1, keepdims=True)) ** 2).sum()
    within = sum(((Hn[:, g] - Hn[:, g].mean(axis=1, keepdims=True)) ** 2).sum() for g in groups)
    return float(within / total) if total > 0 else 0.0


# -- what softmax and the cosine diagonal cannot see (issue 14) ------------------------------
# softmax is invariant to adding a constant to each column of L, so a direction distance should
# not count each column's mean over tokens (L^mm and S̄ have zero column sums; trained L does not,
# 13–18% of ‖L‖ for AdamW runs). Both diagonals of two cosine matrices are all ones, which the
# paper's whole-matrix correlation rewards (≈ 0.64 for random embeddings on the grammar data).
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
    """Structural correlation (:func:`structural_correlation`) of two
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


# -- the one-hot regime (semantics.md §6, "Structure Before Collapse") --------------------------
def shares_attribute(labels: np.ndarray) -> np.ndarray:
    """(m, m) bool: contexts i and j share at least one latent attribute value.

    ``labels`` is a table's ``context_label`` (m × n_attributes, value indices); the diagonal is
    True (a context shares everything with itself), callers take i ≠ j.
    """
    labels = np.asarray(labels)
    return (labels[:, None, :] == labels[None, :, :]).any(axis=-1)


def attribute_gap(H: np.ndarray, labels: np.ndarray) -> float:
    """Mean cos(h_i, h_j) over pairs i ≠ j sharing ≥ 1 attribute minus the mean over pairs
    sharing none (semantics.md §6.3 check 15).

    H is d × m (contexts are columns). Positive = contexts cluster by their latent attributes; the
    simplex ETF (every pairwise cosine −1/(m − 1)) gives 0. NaN when either set of pairs is empty.
    """
    C = cosine_matrix(np.asarray(H, dtype=float).T)
    share = shares_attribute(labels)
    upper = np.triu(np.ones_like(share), k=1)
    with_, without = C[share & upper], C[~share & upper]
    if not with_.size or not without.size:
        return float("nan")
    return float(with_.mean() - without.mean())


def etf_distance(H: np.ndarray) -> float:
    """‖G/‖G‖_F − E/‖E‖_F‖_F with G = H̃ᵀH̃ the Gram of the contexts centred over contexts and
    E = I − 11ᵀ/m the simplex ETF's Gram (semantics.md §6.3 check 17; paper §1.7, k = 1).

    0 exactly when the centred context embeddings form a simplex ETF (equal norms, every pairwise
    cosine −1/(m − 1)), whatever their common mean; NaN when all contexts coincide (G = 0).
    """
    H = np.asarray(H, dtype=float)
    Hc = H - H.mean(axis=1, keepdims=True)
    G = Hc.T @ Hc
    m = H.shape[1]
    if m < 2 or not np.linalg.norm(G) > 0:
        return float("nan")
    return reldir(G, np.eye(m) - 1.0 / m)


def compare_contexts(H: np.ndarray, target: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The context-side comparisons of :func:`compare` that every transformer layer gets:
    ``dist_gram_H`` (Hᵀ H vs H_Tᵀ H_T; NaN for a target without ``L``, the raw support) and
    ``corr_cos_H`` (structural correlation of the cosine matrices). H is d × m."""
    H = np.asarray(H, dtype=float)
    gram = reldir(H.T @ H, target["H"].T @ target["H"]) if target.get("L") is not None \
        else float("nan")
    return {"dist_gram_H": gram, "corr_cos_H": structural_correlation(
        cosine_matrix(H.T), cosine_matrix(np.asarray(target["H"], dtype=float).T))}


# -- one checkpoint against one prediction ------------------------------------------------------
def compare(L: np.ndarray, W: np.ndarray, H: np.ndarray, target: Mapping[str, np.ndarray], *,
            S: np.ndarray, knn_k: int = 5) -> dict[str, float]:
    """Every trained-vs-predicted metric of one checkpoint against one prediction.

    Parameters
    ----------
    L, W, H : ndarray
        The checkpoint's logits (V × m), word embeddings (V × d) and context embeddings (d × m).
    target : mapping
        The prediction: ``L`` (V × m) and its factors ``W`` (V × r), ``H`` (r × m), e.g. L^mm with
        W^mm, H^mm, or S̄ with W̄, H̄. A target without ``L`` (the raw support S, whose "factors"
        are its rows and columns) gets NaN for the logit and Gram distances.
    S : ndarray of bool
        The support (V × m), for P_F⊥.

    Returns
    -------
    dict
        ``dist_L`` ‖L/‖L‖ − T/‖T‖‖_F, ``dist_L_perp`` (the same for P_F⊥(L)), ``dist_gram_W``
        (W Wᵀ vs W_T W_Tᵀ), ``dist_gram_H`` (Hᵀ H vs H_Tᵀ H_T), ``corr_cos_W``/``corr_cos_H``
        (structural correlation of cosine matrices), ``cka_*``, ``rsa_*``, ``knn_*``;
        ``dist_L_centered``, ``dist_L_perp_centered`` (column means removed) and
        ``corr_cos_*_offdiag`` (off the diagonal only).
    """
    out: dict[str, float] = {}
    T = target.get("L")
    if T is not None:
        out["dist_L"] = reldir(L, T)
        out["dist_L_perp"] = reldir(project_F_perp(L, S), T)
        out["dist_gram_W"] = reldir(W @ W.T, target["W"] @ target["W"].T)
    else:
        for key in ("dist_L", "dist_L_perp", "dist_gram_W"):
            out[key] = float("nan")
    out["corr_cos_W"] = structural_correlation(cosine_matrix(W), cosine_matrix(target["W"]))
    out.update(compare_contexts(H, target))  # dist_gram_H, corr_cos_H: shared with every layer's
    for name, mine, theirs in (("W", W, target["W"]), ("H", H.T, target["H"].T)):
        out[f"cka_{name}"] = linear_cka(mine, theirs)
        out[f"rsa_{name}"] = rsa(mine, theirs)
        out[f"knn_{name}"] = knn_overlap(mine, theirs, knn_k)
        out[f"corr_cos_{name}_offdiag"] = offdiag_correlation(cosine_matrix(mine),
                                                              cosine_matrix(theirs))
    if T is not None:
        out["dist_L_centered"] = centered_reldir(L, T)
        out["dist_L_perp_centered"] = centered_reldir(project_F_perp(L, S), T)
    else:
        out["dist_L_centered"] = out["dist_L_perp_centered"] = float("nan")
    return out


COMPARE_METRICS = ("dist_L", "dist_L_perp", "dist_gram_W", "dist_gram_H", "corr_cos_W",
                   "corr_cos_H", "cka_W", "cka_H", "rsa_W", "rsa_H", "knn_W", "knn_H",
                   "dist_L_centered", "dist_L_perp_centered", "corr_cos_W_offdiag",
                   "corr_cos_H_offdiag")

