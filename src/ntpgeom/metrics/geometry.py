"""Geometry of trained embeddings against the theory's predictions (paper §1.4–1.8, §3).

Pure metric functions on arrays (NumPy and SciPy only, so they run wherever the numerical core
runs), and :func:`run_geometry`, which evaluates all of them at every checkpoint of one training
run and returns the ``results/{dataset}/geometry/{model}/{run}.zarr`` dataset.

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
are checked in ``tests/test_geometry.py`` on cases with known answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ntpgeom.theory.reference import RANK_RTOL, project_F, reldir

log = logging.getLogger(__name__)

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
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

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
    from scipy.spatial.distance import cdist

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
        (structural correlation of cosine matrices), ``cka_*``, ``rsa_*``, ``knn_*``.
    """
    out: dict[str, float] = {}
    T = target.get("L")
    if T is not None:
        out["dist_L"] = reldir(L, T)
        out["dist_L_perp"] = reldir(project_F_perp(L, S), T)
        out["dist_gram_W"] = reldir(W @ W.T, target["W"] @ target["W"].T)
        out["dist_gram_H"] = reldir(H.T @ H, target["H"].T @ target["H"])
    else:
        for key in ("dist_L", "dist_L_perp", "dist_gram_W", "dist_gram_H"):
            out[key] = float("nan")
    for name, mine, theirs in (("W", W, target["W"]), ("H", H.T, target["H"].T)):
        out[f"corr_cos_{name}"] = structural_correlation(cosine_matrix(mine), cosine_matrix(theirs))
        out[f"cka_{name}"] = linear_cka(mine, theirs)
        out[f"rsa_{name}"] = rsa(mine, theirs)
        out[f"knn_{name}"] = knn_overlap(mine, theirs, knn_k)
    return out


COMPARE_METRICS = ("dist_L", "dist_L_perp", "dist_gram_W", "dist_gram_H", "corr_cos_W",
                   "corr_cos_H", "cka_W", "cka_H", "rsa_W", "rsa_H", "knn_W", "knn_H")

#: Meaning and units of every variable of the geometry store (attrs ``long_name``, ``units``).
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "ce_minus_entropy": ("CE(L_k) − H, recomputed from the stored logits", "nats"),
    "norm_W": ("‖W_k‖_F", "1"),
    "norm_H": ("‖H_k‖_F", "1"),
    "norm_L": ("‖L_k‖_F", "logit units"),
    "nuclear_norm_L": ("‖L_k‖_*", "logit units"),
    "rank_L": ("rank of L_k (σ > 1e-6 σ_1)", "1"),
    "effective_rank_L": ("effective rank exp(H(σ/Σσ)) of L_k", "1"),
    "singular_values_L": ("singular values of L_k", "logit units"),
    "in_support_error": ("‖P_F(L_k) − L*‖_F", "logit units"),
    "relative_offset": ("‖L_k − L*‖_F / ‖L_k‖_F", "1"),
    "twonn_W": ("TwoNN intrinsic dimension of the rows of W_k", "dimensions"),
    "twonn_H": ("TwoNN intrinsic dimension of the columns of H_k", "dimensions"),
    "collapse_H": ("spread of H_k directions within identical supports / total", "1"),
    "dist_L": ("‖L_k/‖L_k‖ − T/‖T‖‖_F", "1"),
    "dist_L_perp": ("‖P_F⊥(L_k)/‖·‖ − T/‖T‖‖_F", "1"),
    "dist_gram_W": ("normalized distance of W_k W_kᵀ to the target's word Gram", "1"),
    "dist_gram_H": ("normalized distance of H_kᵀ H_k to the target's context Gram", "1"),
    "corr_cos_W": ("structural correlation of cos(W_k) with the target's", "1"),
    "corr_cos_H": ("structural correlation of cos(H_k) with the target's", "1"),
    "cka_W": ("linear CKA of W_k rows with the target's word embeddings", "1"),
    "cka_H": ("linear CKA of H_k columns with the target's context embeddings", "1"),
    "rsa_W": ("RSA (Spearman of cosine RDMs) of words, trained vs target", "1"),
    "rsa_H": ("RSA (Spearman of cosine RDMs) of contexts, trained vs target", "1"),
    "knn_W": ("k-NN overlap of words, trained vs target", "1"),
    "knn_H": ("k-NN overlap of contexts, trained vs target", "1"),
    "target_nuclear_norm": ("‖T‖_* of the target", "logit units"),
    "target_rank": ("rank of the target", "1"),
    "target_singular_values": ("singular values of the target", "logit units"),
    "target_twonn_W": ("TwoNN dimension of the target's word embeddings", "dimensions"),
    "target_twonn_H": ("TwoNN dimension of the target's context embeddings", "dimensions"),
    "target_collapse_H": ("subspace collapse of the target's context embeddings", "1"),
}


def _describe(ds) -> None:
    for name, (long_name, units) in DESCRIPTIONS.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)


def targets_from_stores(reference, svm: Mapping[str, Any], S: np.ndarray) -> dict[str, dict]:
    """The predictions a run is compared with: each solver's L^mm, S̄, and the raw support S.

    ``svm`` maps a solver name to its ``svm/{solver}.zarr`` dataset. The raw support is compared
    as the paper's cos(S,S) and cos(Sᵀ,Sᵀ) proxies (paper §1.8): word z is the row S_z (m-vector),
    context j the column S_{:,j} (V-vector), written as factors W = S (V × m), H = S (V × m).
    """
    out: dict[str, dict] = {}
    for solver, ds in svm.items():
        out[str(solver)] = {"L": ds["L_mm"].values, "W": ds["W_mm"].values,
                            "H": ds["H_mm"].values}
    out["S_bar"] = {"L": reference["S_bar"].values, "W": reference["W_bar"].values,
                    "H": reference["H_bar"].values}
    S = np.asarray(S, dtype=float)
    out["S"] = {"W": S, "H": S}
    return out


def run_geometry(train, table, reference, svm: Mapping[str, Any], *, knn_k: int = 5,
                 rank_rtol: float = RANK_RTOL):
    """The geometry dataset of one training run: every metric above at every checkpoint.

    Parameters
    ----------
    train : xarray.Dataset
        ``results/{dataset}/train/{model}/{run}.zarr`` (``W`` (step, token, dim), ``H`` (step,
        dim, context), ``logits`` (step, token, context)).
    table : ntpgeom.data.table.Table
        The run's table (S, P, π, H).
    reference : xarray.Dataset
        ``reference.zarr`` (``L_star``, ``S_bar``, ``W_bar``, ``H_bar``).
    svm : mapping of str to xarray.Dataset
        ``svm/{solver}.zarr`` per solver (``L_mm``, ``W_mm``, ``H_mm``).
    knn_k : int
        Neighbours of the k-NN overlap.
    rank_rtol : float
        Relative cut of the numerical rank.

    Returns
    -------
    xarray.Dataset
        Dims ``step`` (the run's checkpoints), ``target`` (solver names, ``S_bar``, ``S``) and
        ``sv`` (singular-value index); per-step metrics on ``step``, comparisons on
        (``step``, ``target``), the targets' own numbers on ``target``; the run's dense
        ``trace_*`` series are carried over on ``trace_step``.
    """
    import xarray as xr

    from ntpgeom.errors import UserError

    train = train.transpose("step", "token", "dim", "context", ...)
    tokens = [str(t) for t in train["token"].values]
    contexts = [str(c) for c in train["context"].values]
    if tokens != list(table.tokens) or contexts != list(table.contexts):
        raise UserError("geometry: the training store's token/context labels differ from the "
                        "table's; rebuild the training run from this table")
    S, P, pi, entropy = table.S(), table.P(), table.pi, table.entropy
    L_star = reference["L_star"].transpose("token", "context").values
    targets = targets_from_stores(reference.transpose("token", "rank", "context", ...),
                                  {k: v.transpose("token", "rank", "context", ...)
                                   for k, v in svm.items()}, S)
    names = list(targets)
    steps = train["step"].values
    n_sv = min(table.V, table.m)

    per_step: dict[str, list[float]] = {k: [] for k in (
        "ce_minus_entropy", "norm_W", "norm_H", "norm_L", "nuclear_norm_L", "rank_L",
        "effective_rank_L", "in_support_error", "relative_offset", "twonn_W", "twonn_H",
        "collapse_H")}
    spectra = np.zeros((len(steps), n_sv))
    comparisons = {k: np.full((len(steps), len(names)), np.nan) for k in COMPARE_METRICS}
    for i in range(len(steps)):
        W = train["W"].values[i].astype(float)          # (V, d)
        H = train["H"].values[i].astype(float)          # (d, m)
        L = train["logits"].values[i].astype(float)     # (V, m)
        sigma = singular_values(L)
        spectra[i] = sigma[:n_sv]
        per_step["ce_minus_entropy"].append(cross_entropy(L, P, pi) - entropy)
        per_step["norm_W"].append(float(np.linalg.norm(W)))
        per_step["norm_H"].append(float(np.linalg.norm(H)))
        per_step["norm_L"].append(float(np.linalg.norm(L)))
        per_step["nuclear_norm_L"].append(float(sigma.sum()))
        per_step["rank_L"].append(numerical_rank(sigma, rank_rtol))
        per_step["effective_rank_L"].append(effective_rank(sigma))
        per_step["in_support_error"].append(in_support_error(L, L_star, S))
        per_step["relative_offset"].append(relative_offset(L, L_star))
        per_step["twonn_W"].append(twonn_dimension(W))
        per_step["twonn_H"].append(twonn_dimension(H.T))
        per_step["collapse_H"].append(subspace_collapse(H, S))
        for t, name in enumerate(names):
            for key, value in compare(L, W, H, targets[name], S=S, knn_k=knn_k).items():
                comparisons[key][i, t] = value

    target_sv = np.full((len(names), n_sv), np.nan)
    target_numbers: dict[str, list[float]] = {k: [] for k in (
        "target_nuclear_norm", "target_rank", "target_twonn_W", "target_twonn_H",
        "target_collapse_H")}
    for t, name in enumerate(names):
        tgt = targets[name]
        if "L" in tgt:
            sigma = singular_values(tgt["L"])
            target_sv[t] = sigma[:n_sv]
            target_numbers["target_nuclear_norm"].append(float(sigma.sum()))
            target_numbers["target_rank"].append(numerical_rank(sigma, rank_rtol))
        else:
            target_numbers["target_nuclear_norm"].append(float("nan"))
            target_numbers["target_rank"].append(float("nan"))
        target_numbers["target_twonn_W"].append(twonn_dimension(tgt["W"]))
        target_numbers["target_twonn_H"].append(twonn_dimension(tgt["H"].T))
        target_numbers["target_collapse_H"].append(subspace_collapse(tgt["H"], S))

    data: dict[str, Any] = {k: ("step", np.asarray(v, dtype=float)) for k, v in per_step.items()}
    data["singular_values_L"] = (("step", "sv"), spectra)
    data.update({k: (("step", "target"), v) for k, v in comparisons.items()})
    data.update({k: ("target", np.asarray(v, dtype=float)) for k, v in target_numbers.items()})
    data["target_singular_values"] = (("target", "sv"), target_sv)
    for name in train.data_vars:
        if str(name).startswith("trace_"):
            data[str(name)] = ("trace_step", train[name].values)
    coords: dict[str, Any] = {"step": steps, "target": np.array(names, dtype=object),
                              "sv": np.arange(n_sv)}
    if "trace_step" in train.coords:
        coords["trace_step"] = train["trace_step"].values
    ds = xr.Dataset(data, coords=coords)
    _describe(ds)
    ds.attrs = {"model": str(train.attrs.get("model", "")), "entropy": entropy,
                "knn_k": int(knn_k), "rank_rtol": float(rank_rtol),
                "solvers": [str(s) for s in svm], "norm_L_star": float(np.linalg.norm(L_star)),
                "seed": train.attrs.get("seed")}
    log.info("geometry: %d checkpoints × %d targets; final CE − H = %.3g, dist_L(%s) = %.3g",
             len(steps), len(names), per_step["ce_minus_entropy"][-1], names[0],
             comparisons["dist_L"][-1, 0])
    return ds


def final_values(geometry, names: Sequence[str] = ("ce_minus_entropy", "in_support_error",
                                                   "relative_offset")) -> dict[str, float]:
    """The last checkpoint's value of each named per-step variable (for the report's table)."""
    last = geometry.isel(step=-1)
    return {n: float(last[n]) for n in names if n in geometry}


def geometry_store(*, train: str, table: str, reference: str, svm: Sequence[str] | str,
                   out: str, config: Mapping[str, Any] | None = None, knn_k: int = 5,
                   rank_rtol: float = RANK_RTOL) -> None:
    """Read the stores of one run, compute :func:`run_geometry` and write it atomically to ``out``.

    ``svm`` lists ``.../svm/{solver}.zarr`` paths; the solver's name is the file stem.
    """
    import time
    from pathlib import Path

    from ntpgeom.data.table import load
    from ntpgeom.store import open_store, provenance, write_store

    start = time.perf_counter()
    paths = [svm] if isinstance(svm, str) else list(svm)
    ds = run_geometry(open_store(train), load(table), open_store(reference),
                      {Path(p).name.removesuffix(".zarr"): open_store(p) for p in paths},
                      knn_k=knn_k, rank_rtol=rank_rtol)
    ds.attrs = provenance(config, wall_seconds=time.perf_counter() - start, **ds.attrs)
    write_store(ds, out)
