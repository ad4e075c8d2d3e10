"""How concepts emerge: learning order of S̄'s modes and orthant clustering (``docs/semantics.md``).

Array → array functions (numpy, plus scikit-learn for the k-means baseline and the ARI, imported
where used). Notation: a target T (S̄ or L^mm) with SVD T = U Σ Vᵀ over its nonzero modes; a run's
logits L_t = W_t H_t at its checkpoint steps.

**Learning order** (§2.3, check 4). The strength of mode k at step t is a_k(t) = u_kᵀ L_t v_k
(in logits), averaged over the *degenerate block* of k, the maximal run of singular values with
relative gaps below ``rtol`` (1e-6): inside a block the singular vectors are defined only up to a
common rotation R (U_B R, V_B R), and the block mean tr(U_Bᵀ L V_B)/|B| is the one quantity that
does not depend on it (it is also unchanged by flipping u_k and v_k together). Mode k is *learned*
at the first stored step with a_k ≥ θ, an absolute threshold in logits (default θ = 0.5, §5 check
4: "θ = 0.5 logits, with init ≪ θ"): the saddle-to-saddle picture of small-initialisation GD,
where a mode's strength stays near 0 and then rises to O(1) at t_k ≈ (τ/σ_k) log(1/init). A
share-of-norm criterion (σ_k(L_t)/‖L_t‖) is *not* used: from small init the first step already has
every mode in proportion to σ_k, so shares saturate in reverse order (check 4).

**Orthant clustering** (§3). Words (rows of W) and contexts (columns of H) in the SVD basis of the
column-centred logits L̃ = (I − 11ᵀ/V) W H = U Σ Vᵀ (centring is softmax-invariant and removes the
per-context shift a trained L may carry): word z's coordinates y_z = (C w_z)ᵀ H V Σ^{-1/2}, i.e. the
rows of U√Σ, and context j's x_j = Σ^{-1/2} Uᵀ C W h_j, the rows of V√Σ. They depend on W and H
only through L, so a rotation W → WQ, H → QᵀH changes nothing (check 8). The cluster of a word at
k is its sign pattern over the top k directions, |y| ≤ ``zero_rtol``·max|y_{:,i}| being the third
symbol 0 (a word outside a concept's scope, §3 step 3). A degenerate block is *taken whole*: when
the k-th direction lies in a block, the directions up to the block's end are used (``k_used``) and
k is flagged ``degenerate`` (check 13), so no clustering splits a block. Cluster ids are numbered
by first appearance over the rows, so a sign flip of a direction (which relabels orthants) leaves
the ids unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ntpgeom.config import from_section, to_section
from ntpgeom.errors import UserError
from ntpgeom.metrics.core import center_columns
from ntpgeom.metrics.vocabulary import describe
from ntpgeom.store import provenance
from ntpgeom.theory.reference import RANK_RTOL

log = logging.getLogger(__name__)

#: Relative gap below which consecutive singular values form one degenerate block (§5 check 13).
DEGENERACY_RTOL = 1e-6
#: |coordinate| ≤ this × the direction's largest |coordinate| counts as 0 (§3 step 3).
ZERO_RTOL = 1e-8
#: θ of the learning step, in logits (§5 check 4).
THETA = 0.5


@dataclass(frozen=True)
class SemanticsConfig:
    """The ``semantics`` section: how a run's learning order and concept clusters are read.

    The defaults stated here are the section's (``schemas/semantics.schema.yaml`` documents the
    same values; ``tests/test_semantics.py`` proves they agree) and :func:`run_semantics`'s.
    """
    theta: float = THETA  # learning-step threshold, logits
    max_k: int = 8  # largest number of concept directions clustered
    zero_rtol: float = ZERO_RTOL  # |y| ≤ zero_rtol × max |y| is the sign 0
    degeneracy_rtol: float = DEGENERACY_RTOL  # relative σ gap that ends a degenerate block
    pole_words: int = 3  # words naming each pole of a direction
    kmeans_seed: int = 0  # seed of the spectral k-means baseline

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "semantics") -> SemanticsConfig:
        """From a ``semantics`` section (missing keys: the defaults; unknown keys: refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)


def spectrum(T: np.ndarray, rtol: float = RANK_RTOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U (V, r), σ (r,), V (m, r) of T's nonzero modes (σ > rtol·σ₁), σ descending."""
    U, s, Vt = np.linalg.svd(np.asarray(T, dtype=np.float64), full_matrices=False)
    r = int((s > rtol * s[0]).sum()) if s.size and s[0] > 0 else 0
    return U[:, :r], s[:r], Vt[:r].T


def degenerate_blocks(sigma: np.ndarray, rtol: float = DEGENERACY_RTOL) -> np.ndarray:
    """Block id of each mode (0, 1, …): consecutive σ (descending) whose relative gap
    (σ_i − σ_{i+1}) / σ_i is below ``rtol`` share a block."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.size == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = (sigma[:-1] - sigma[1:]) / np.maximum(sigma[:-1], np.finfo(float).tiny)
    return np.concatenate([[0], np.cumsum(gaps >= rtol)]).astype(np.int64)


def block_mean(values: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Average ``values`` (..., r) over each block of the last axis, broadcast back to (..., r)."""
    out = np.empty_like(values, dtype=np.float64)
    for b in np.unique(blocks):
        idx = blocks == b
        out[..., idx] = values[..., idx].mean(axis=-1, keepdims=True)
    return out


def mode_strength(L: np.ndarray, U: np.ndarray, V: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """ā_k(t) = block mean of u_iᵀ L_t v_i, shape (steps, r), for logits L (steps, V, m)."""
    raw = np.einsum("vi,tvm,mi->ti", U, np.asarray(L, dtype=np.float64), V)
    return block_mean(raw, blocks)


def learn_steps(steps: Sequence[int], strength: np.ndarray, theta: float = THETA) -> np.ndarray:
    """First step at which each mode's strength reaches θ, (r,) float; NaN if it never does."""
    steps = np.asarray(steps, dtype=np.float64)
    reached = np.asarray(strength) >= theta  # (steps, r)
    first = np.argmax(reached, axis=0)
    return np.where(reached.any(axis=0), steps[first], np.nan)


# -- orthant clustering -------------------------------------------------------------------------
def concept_coordinates(W: np.ndarray, H: np.ndarray, K: int,  # noqa: N803
                        basis: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Words' and contexts' coordinates in the SVD basis of L̃ = C W H (module docstring).

    ``basis`` = (U, σ, V) of another matrix (a target's :func:`spectrum`) projects W and H on
    that matrix's singular directions instead: y_z = (C w_z)ᵀ H v_i / √σ_i.

    Returns
    -------
    Y : (V, k) the rows of W projected on the top-k context-side directions H v_i / √σ_i
        (= U_k √Σ_k);
    X : (m, k) the columns of H projected on the word-side directions (C W)ᵀ u_i / √σ_i
        (= V_k √Σ_k);
    sigma : (k,) the top singular values; k = min(K, rank L̃).
    """
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    CW = W - W.mean(axis=0, keepdims=True)  # C W: C L = C W H
    U, s, V = spectrum(center_columns(W @ H)) if basis is None else basis
    k = min(K, s.size)
    U, s, V = U[:, :k], s[:k], V[:, :k]
    root = np.sqrt(s)
    Y = CW @ (H @ V) / root
    X = ((CW.T @ U) / root).T @ H
    return Y, X.T, s


def sign_patterns(Y: np.ndarray, zero_rtol: float = ZERO_RTOL) -> np.ndarray:
    """sign(Y) in {−1, 0, +1}, with |y| ≤ zero_rtol · max|Y_{:,i}| counted as 0, int8."""
    Y = np.asarray(Y, dtype=np.float64)
    scale = np.abs(Y).max(axis=0, keepdims=True) if Y.size else np.ones((1, Y.shape[1]))
    out = np.sign(Y).astype(np.int8)
    out[np.abs(Y) <= zero_rtol * scale] = 0
    return out


def first_appearance_ids(rows: np.ndarray) -> np.ndarray:
    """Integer id of each row's value, numbered by first appearance (0, 1, …): equal partitions
    give equal id arrays whatever the values' labels."""
    rows = np.asarray(rows)
    if rows.ndim > 1 and rows.shape[1] == 0:  # no direction: one cluster
        return np.zeros(len(rows), dtype=np.int64)
    _, first, inverse = np.unique(rows.reshape(len(rows), -1), axis=0, return_index=True,
                                  return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def whole_blocks(blocks: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """For k = 1 … K: the directions used (k rounded up to the end of its degenerate block), and
    whether the k-th direction lies in a block of more than one mode."""
    blocks = np.asarray(blocks)
    k_used = np.array([int(np.flatnonzero(blocks == blocks[k - 1]).max()) + 1
                       for k in range(1, K + 1)], dtype=np.int64)
    degenerate = np.array([(blocks == blocks[k - 1]).sum() > 1 for k in range(1, K + 1)])
    return k_used, degenerate


def orthant_clusters(Y: np.ndarray, k_used: np.ndarray, zero_rtol: float = ZERO_RTOL
                     ) -> np.ndarray:
    """Cluster ids (K, n): row k−1 is the sign pattern of the first ``k_used[k−1]`` columns."""
    signs = sign_patterns(Y, zero_rtol)
    return np.stack([first_appearance_ids(signs[:, :k]) for k in k_used])


def trained_clusters(W: np.ndarray, H: np.ndarray, k_used: np.ndarray,  # noqa: N803
                     zero_rtol: float = ZERO_RTOL):
    """Orthant clusters of a run's words and contexts at each k (directions ``k_used``, capped
    at rank L̃; L̃ = 0 puts everything in one cluster): ((ids_W, ids_H), (Y, X, σ))."""
    Y, X, sigma = concept_coordinates(W, H, int(np.max(k_used)))
    used = np.minimum(k_used, Y.shape[1])
    return (orthant_clusters(Y, used, zero_rtol), orthant_clusters(X, used, zero_rtol)), \
        (Y, X, sigma)


def kmeans_clusters(Y: np.ndarray, k_used: np.ndarray, n_clusters: np.ndarray, seed: int = 0
                    ) -> np.ndarray:
    """Spectral k-means baseline (§3): KMeans with ``n_clusters[i]`` clusters on the first
    ``k_used[i]`` coordinates, ids numbered by first appearance, (K, n)."""
    from sklearn.cluster import KMeans

    out = []
    for k, c in zip(k_used, n_clusters, strict=True):
        c = int(min(c, len(Y)))
        labels = KMeans(n_clusters=c, n_init=10, random_state=seed).fit_predict(Y[:, :k])
        out.append(first_appearance_ids(labels))
    return np.stack(out)


def adjusted_rand(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ARI of each clustering (K, n) against each level's labels (n, levels): (K, levels)."""
    from sklearn.metrics import adjusted_rand_score

    return np.array([[adjusted_rand_score(labels[:, lv], c) for lv in range(labels.shape[1])]
                     for c in clusters])


def resolve_steps(steps: Sequence[int], ari_steps: np.ndarray, strength: np.ndarray,
                  blocks: np.ndarray, K: int, theta: float = THETA) -> np.ndarray:
    """Per level ℓ (semantics.md check 10): the first step at which the clusters at the first k
    of S̄'s block ℓ match level ℓ (ARI = 1 to 1e-9) *and* that block's strength is ≥ θ; NaN if
    never, or if S̄ has fewer blocks than levels (level ℓ ↔ block ℓ, as in a balanced tree).

    ``ari_steps`` (steps, K, levels), ``strength`` (steps, r) and ``blocks`` (r,) of S̄.
    """
    steps = np.asarray(steps, dtype=np.float64)
    levels = ari_steps.shape[2]
    out = np.full(levels, np.nan)
    for lv in range(levels):
        modes = np.flatnonzero(blocks == lv)
        if modes.size == 0 or modes[0] >= K:
            continue
        ok = (ari_steps[:, modes[0], lv] >= 1 - 1e-9) & (strength[:, modes[0]] >= theta)
        if ok.any():
            out[lv] = steps[np.argmax(ok)]
    return out


def pole_names(Y: np.ndarray, names: Sequence[str], top: int = 3) -> tuple[list[str], list[str]]:
    """Per direction i: the ``top`` names with the largest positive and the most negative y_i
    (", "-joined; words at 0 are not on either pole)."""
    names = np.asarray(names, dtype=object)
    pos, neg = [], []
    for i in range(Y.shape[1]):
        order = np.argsort(-Y[:, i], kind="stable")
        scale = np.abs(Y[:, i]).max()
        keep = [z for z in order[:top] if Y[z, i] > ZERO_RTOL * scale]
        pos.append(", ".join(names[keep]))
        keep = [z for z in order[::-1][:top] if Y[z, i] < -ZERO_RTOL * scale]
        neg.append(", ".join(names[keep]))
    return pos, neg


# -- the semantics store ------------------------------------------------------------------------
def run_semantics(train, table, reference, svm=None, *, theta: float = SemanticsConfig.theta,
                  max_k: int = SemanticsConfig.max_k,
                  zero_rtol: float = SemanticsConfig.zero_rtol,
                  degeneracy_rtol: float = SemanticsConfig.degeneracy_rtol,
                  pole_words: int = SemanticsConfig.pole_words,
                  kmeans_seed: int = SemanticsConfig.kmeans_seed):
    """The ``results/{dataset}/semantics/{model}/{run}.zarr`` dataset of one training run.

    Parameters
    ----------
    train : xarray.Dataset
        The run's training store (``W`` (step, token, dim), ``H`` (step, dim, context),
        ``logits``).
    table : ntpgeom.data.table.Table
        Its table (``token_label`` gives the ARIs when present).
    reference : xarray.Dataset
        ``reference.zarr`` (``S_bar``, ``W_bar``, ``H_bar``).
    svm : xarray.Dataset, optional
        One solver's ``svm/{solver}.zarr`` (``L_mm``, ``W_mm``, ``H_mm``): target ``L_mm``.
    theta, max_k, zero_rtol, degeneracy_rtol, pole_words, kmeans_seed
        θ of the learning step (logits); the largest k clustered; the zero and degeneracy
        tolerances (module docstring); words named per pole; the k-means seed.

    Returns
    -------
    xarray.Dataset
        Dims ``target`` (``S_bar``[, ``L_mm``]), ``mode`` (1 … rank), ``step``, ``k`` (1 … K),
        ``token``, ``context``[, ``level``]. The trained clusters use S̄'s degenerate blocks
        (``k_used``, ``degenerate``): a trained L's spectrum is never exactly degenerate (finite
        training and the random initialisation split the tie), while the concept structure the
        theory predicts is S̄'s. Names and meanings: :mod:`ntpgeom.metrics.vocabulary`.
    """
    import xarray as xr


    start = time.perf_counter()
    train = train.transpose("step", "token", "dim", "context", ...)
    if [str(t) for t in train["token"].values] != list(table.tokens) or \
            [str(c) for c in train["context"].values] != list(table.contexts):
        raise UserError("semantics: the training store's token/context labels differ from the "
                        "table's; rebuild the training run from this table")
    steps = train["step"].values
    logits = train["logits"].values.astype(np.float64)
    W_end = train["W"].values[-1].astype(np.float64)
    H_end = train["H"].values[-1].astype(np.float64)
    reference = reference.transpose("token", "rank", "context", ...)
    factors = {"S_bar": (reference["S_bar"].values, reference["W_bar"].values,
                         reference["H_bar"].values)}
    if svm is not None:
        svm = svm.transpose("token", "rank", "context", ...)
        factors["L_mm"] = (svm["L_mm"].values, svm["W_mm"].values, svm["H_mm"].values)
    names = list(factors)
    spectra = {n: spectrum(center_columns(f[0])) for n, f in factors.items()}
    r = max(s[1].size for s in spectra.values())
    K = min(max_k, spectra["S_bar"][1].size)

    sigma = np.full((len(names), r), np.nan)
    block = np.full((len(names), r), -1, dtype=np.int64)
    strength = np.full((len(names), len(steps), r), np.nan)
    learned = np.full((len(names), r), np.nan)
    target_W = np.zeros((len(names), K, table.V), dtype=np.int64)
    target_H = np.zeros((len(names), K, table.m), dtype=np.int64)
    target_k_used = np.zeros((len(names), K), dtype=np.int64)
    for t, name in enumerate(names):
        U_t, s_t, V_t = spectra[name]
        b = degenerate_blocks(s_t, degeneracy_rtol)
        n = s_t.size
        sigma[t, :n], block[t, :n] = s_t, b
        strength[t, :, :n] = mode_strength(logits, U_t, V_t, b)
        learned[t, :n] = learn_steps(steps, strength[t, :, :n], theta)
        _, Wf, Hf = factors[name]
        Kt = min(K, n)
        Y, X, _ = concept_coordinates(Wf, Hf, Kt)
        used, _ = whole_blocks(b, Kt)
        used = np.concatenate([used, np.full(K - Kt, used[-1] if Kt else 0)])
        target_k_used[t] = used
        target_W[t] = orthant_clusters(Y, used, zero_rtol)
        target_H[t] = orthant_clusters(X, used, zero_rtol)

    U_s, s_s, V_s = spectra["S_bar"]
    k_used, degenerate = whole_blocks(degenerate_blocks(s_s, degeneracy_rtol), K)
    (orthant_W, orthant_H), (Y, X, sigma_L) = trained_clusters(W_end, H_end, k_used, zero_rtol)
    used = np.minimum(k_used, Y.shape[1])
    Y_s, _, _ = concept_coordinates(W_end, H_end, int(k_used[-1]), basis=(U_s, s_s, V_s))
    in_sbar = orthant_clusters(Y_s, k_used, zero_rtol)
    n_clusters = np.array([len(np.unique(row)) for row in orthant_W])
    kmeans = kmeans_clusters(Y, used, n_clusters, kmeans_seed)
    pos, neg = pole_names(Y[:, :K], table.tokens, pole_words)
    pad = K - len(pos)

    obj = np.dtype(object)
    data: dict = {
        "sigma": (("target", "mode"), sigma),
        "block": (("target", "mode"), block),
        "mode_strength": (("target", "step", "mode"), strength),
        "learn_step": (("target", "mode"), learned),
        "k_used": ("k", k_used), "degenerate": ("k", degenerate),
        "sigma_L": ("k", np.concatenate([sigma_L[:K], np.full(K - min(K, sigma_L.size),
                                                              np.nan)])),
        "orthant_W": (("k", "token"), orthant_W), "orthant_H": (("k", "context"), orthant_H),
        "orthant_W_in_S_bar": (("k", "token"), in_sbar),
        "kmeans_W": (("k", "token"), kmeans),
        "orthant_target_W": (("target", "k", "token"), target_W),
        "orthant_target_H": (("target", "k", "context"), target_H),
        "target_k_used": (("target", "k"), target_k_used),
        "coord_W": (("token", "k"), np.pad(Y[:, :K], ((0, 0), (0, K - min(K, Y.shape[1]))),
                                           constant_values=np.nan)),
        "pole_pos_W": ("k", np.array(pos + [""] * pad, dtype=obj)),
        "pole_neg_W": ("k", np.array(neg + [""] * pad, dtype=obj)),
    }
    coords: dict = {"target": np.array(names, dtype=obj), "mode": np.arange(1, r + 1),
                    "step": steps, "k": np.arange(1, K + 1),
                    "token": np.array(table.tokens, dtype=obj),
                    "context": np.array(table.contexts, dtype=obj)}
    if table.token_label is not None:
        labels = table.token_label
        data["ari_W"] = (("k", "level"), adjusted_rand(orthant_W, labels))
        data["ari_W_in_S_bar"] = (("k", "level"), adjusted_rand(in_sbar, labels))
        data["ari_kmeans_W"] = (("k", "level"), adjusted_rand(kmeans, labels))
        data["ari_target_W"] = (("target", "k", "level"),
                                np.stack([adjusted_rand(c, labels) for c in target_W]))
        per_step = [adjusted_rand(trained_clusters(train["W"].values[i], train["H"].values[i],
                                                   k_used, zero_rtol)[0][0], labels)
                    for i in range(len(steps))]
        data["ari_W_steps"] = (("step", "k", "level"), np.stack(per_step))
        data["resolve_step"] = ("level", resolve_steps(
            steps, np.stack(per_step), strength[0], block[0], K, theta))
        coords["level"] = np.arange(1, labels.shape[1] + 1)
    ds = xr.Dataset(data, coords=coords)
    describe(ds)
    options = SemanticsConfig(theta=theta, max_k=max_k, zero_rtol=zero_rtol,
                              degeneracy_rtol=degeneracy_rtol, pole_words=pole_words,
                              kmeans_seed=kmeans_seed)
    ds.attrs = provenance(
        options.to_dict(), wall_seconds=time.perf_counter() - start,
        dataset=str(train.attrs.get("dataset", "")), model=str(train.attrs.get("model", "")),
        run=str(train.attrs.get("run", "")), theta=float(theta), theta_units="logits",
        zero_rtol=float(zero_rtol), degeneracy_rtol=float(degeneracy_rtol),
        kmeans_seed=int(kmeans_seed), seed=train.attrs.get("seed"))
    log.info("semantics: learn steps (S̄) %s for σ %s", learned[0, :min(r, 8)].tolist(),
             np.round(sigma[0, :min(r, 8)], 4).tolist())
    return ds
