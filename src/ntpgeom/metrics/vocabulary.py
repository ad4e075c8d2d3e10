"""The one vocabulary of the metric stores: each name, its meaning and its units.

Geometry (``results/{dataset}/geometry/{model}/{run}.zarr``), grid-point and grid-aggregate
(``results/grid/...``) and linear-run (``results/{dataset}/linear/{embedding}/train/...``) stores
use these names for these quantities and nothing else; :func:`describe` writes them into each
variable's attrs (``long_name``, ``units``). The README's store section lists the same table.

A comparison with a prediction T (L^mm of a solver, S̄, the raw support S) lives on the dim
``target``: the geometry store has one entry per solver plus ``S_bar`` and ``S``, a grid point
``L_mm`` (its ``solver``'s L^mm) and ``S_bar``.
"""

from __future__ import annotations

from ntpgeom.metrics.core import COMPARE_METRICS

#: name → (long_name, units).
VOCABULARY: dict[str, tuple[str, str]] = {
    # -- per step -------------------------------------------------------------------------------
    "loss": ("training loss (with the ridge term, if any)", "nats"),
    "ce_minus_entropy": ("CE(L_k) − H, the excess cross-entropy", "nats"),
    "norm_W": ("‖W_k‖_F", "1"),
    "norm_H": ("‖H_k‖_F", "1"),
    "norm_L": ("‖L_k‖_F", "logit units"),
    "nuclear_norm_L": ("‖L_k‖_*", "logit units"),
    "rank_L": ("rank of L_k (σ > rank_rtol · σ_1, attr rank_rtol)", "1"),
    "effective_rank_L": ("effective rank exp(H(σ/Σσ)) of L_k", "1"),
    "singular_values_L": ("singular values of L_k", "logit units"),
    "in_support_error": ("‖P_F(L_k) − L*‖_F", "logit units"),
    "relative_offset": ("‖L_k − L*‖_F / ‖L_k‖_F", "1"),
    "twonn_W": ("TwoNN intrinsic dimension of the rows of W_k", "dimensions"),
    "twonn_H": ("TwoNN intrinsic dimension of the columns of H_k", "dimensions"),
    "collapse_H": ("spread of H_k directions within identical supports / total", "1"),
    "cos_within_groups_H": ("mean cos(h_i, h_j) within blocks of identical support", "1"),
    "cos_across_groups_H": ("mean cos(h_i, h_j) across blocks of identical support", "1"),
    "attribute_gap": ("mean cos(h_i, h_j) over pairs sharing a latent attribute minus over pairs "
                      "sharing none (tables with context_label)", "1"),
    "etf_distance": ("‖G/‖G‖_F − E/‖E‖_F‖_F, G the context Gram centred over contexts, "
                     "E = I − 11ᵀ/m the simplex ETF's", "1"),
    "attribute_gap_chance": ("mean over random Gaussian H of: attribute_gap", "1"),
    "attribute_gap_chance_std": ("standard deviation over random Gaussian H of: attribute_gap",
                                 "1"),
    "etf_distance_chance": ("mean over random Gaussian H of: etf_distance", "1"),
    "etf_distance_chance_std": ("standard deviation over random Gaussian H of: etf_distance",
                                "1"),
    # -- per step and target --------------------------------------------------------------------
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
    "dist_L_centered": ("‖L̃_k/‖L̃_k‖ − T̃/‖T̃‖‖_F, column means over tokens removed "
                        "(softmax-invariant)", "1"),
    "dist_L_perp_centered": ("the same for P_F⊥(L_k)", "1"),
    "corr_cos_W_offdiag": ("structural correlation of cos(W_k) with the target's, off the "
                           "diagonal", "1"),
    "corr_cos_H_offdiag": ("structural correlation of cos(H_k) with the target's, off the "
                           "diagonal", "1"),
    # -- per step, transformer layer (and target) -------------------------------------------------
    "dist_gram_H_layer": ("dist_gram_H of the last position's representation after each layer "
                          "(chance: dist_gram_H_chance)", "1"),
    "corr_cos_H_layer": ("corr_cos_H of the last position's representation after each layer "
                         "(chance: corr_cos_H_chance)", "1"),
    "attribute_gap_layer": ("attribute_gap of the last position's representation after each "
                            "layer", "1"),
    "etf_distance_layer": ("etf_distance of the last position's representation after each layer",
                           "1"),
    # -- per target -----------------------------------------------------------------------------
    "target_nuclear_norm": ("‖T‖_* of the target", "logit units"),
    "target_rank": ("rank of the target (σ > rank_rtol · σ_1)", "1"),
    "target_singular_values": ("singular values of the target", "logit units"),
    "target_twonn_W": ("TwoNN dimension of the target's word embeddings", "dimensions"),
    "target_twonn_H": ("TwoNN dimension of the target's context embeddings", "dimensions"),
    "target_collapse_H": ("subspace collapse of the target's context embeddings", "1"),
    "target_cos_within_groups_H": ("mean cosine of the target's h_j within identical supports",
                                   "1"),
    "target_cos_across_groups_H": ("mean cosine of the target's h_j across identical supports",
                                   "1"),
    "rank_limit": ("direction distance from the target to its best rank-d approximation: a "
                   "lower bound on dist_L for any L of rank ≤ d", "1"),
    # -- grid points ----------------------------------------------------------------------------
    "entropy": ("H, the entropy of the table's next tokens", "nats"),
    "L_final": ("logits W H at the last step", "logit units"),
    # -- linear runs (W trained on fixed H̄; NeurIPS Fig. 3) -------------------------------------
    "corr_W": ("⟨W_k/‖W_k‖, W^mm/‖W^mm‖⟩", "1"),
    "corr_W_offset": ("⟨(W_k − W*)/‖W_k − W*‖, W^mm/‖W^mm‖⟩", "1"),
    "in_support_error_W": ("‖P_F(W_k) − W*‖_F", "1"),
    "dist_W": ("‖W_k/‖W_k‖ − W^mm/‖W^mm‖‖_F", "1"),
    # -- semantics runs (docs/semantics.md: learning order, orthant clusters) --------------------
    "sigma": ("singular values σ_k of the target (column-centred)", "logit units"),
    "block": ("degenerate block of each mode (relative gap < degeneracy_rtol); −1 = no mode",
              "1"),
    "mode_strength": ("ā_k(t): u_iᵀ L_t v_i averaged over the mode's degenerate block",
                      "logit units"),
    "learn_step": ("first checkpoint step with mode_strength ≥ θ (attr theta); NaN if never",
                   "steps"),
    "sigma_L": ("top singular values of the trained, column-centred L at the last step",
                "logit units"),
    "k_used": ("directions used at k: k rounded up to the end of its degenerate block of S̄",
               "1"),
    "degenerate": ("the k-th direction lies in a degenerate block of S̄ (clusters use it whole)",
                   "1"),
    "orthant_W": ("orthant cluster of each word (rows of W) in the trained L's SVD basis, last "
                  "step", "cluster id"),
    "orthant_H": ("orthant cluster of each context (columns of H) in the trained L's SVD basis, "
                  "last step", "cluster id"),
    "orthant_W_in_S_bar": ("orthant cluster of each trained word projected on S̄'s singular "
                           "directions, last step", "cluster id"),
    "kmeans_W": ("spectral k-means cluster of each word (same coordinates and number of "
                 "clusters as orthant_W)", "cluster id"),
    "orthant_target_W": ("orthant cluster of each word in the target's own factors",
                         "cluster id"),
    "orthant_target_H": ("orthant cluster of each context in the target's own factors",
                         "cluster id"),
    "target_k_used": ("directions used at k for the target's own clusters", "1"),
    "coord_W": ("coordinate of each word on the trained L's concept direction k (U√Σ), last step",
                "√(logit units)"),
    "pole_pos_W": ("words with the largest positive coordinate on direction k", "words"),
    "pole_neg_W": ("words with the most negative coordinate on direction k", "words"),
    "ari_W": ("adjusted Rand index of orthant_W against token_label at each level", "1"),
    "ari_W_in_S_bar": ("adjusted Rand index of orthant_W_in_S_bar against token_label", "1"),
    "ari_kmeans_W": ("adjusted Rand index of kmeans_W against token_label", "1"),
    "ari_target_W": ("adjusted Rand index of orthant_target_W against token_label", "1"),
    "resolve_step": ("first step at which level ℓ's clusters match and its block of S̄ is "
                     "learned (ā ≥ θ)", "steps"),
    "ari_W_steps": ("adjusted Rand index of the orthant clusters of W at each checkpoint", "1"),
}


#: The chance level of every comparison (:mod:`ntpgeom.metrics.chance`): ``<name>_chance`` and
#: ``<name>_chance_std`` on dim ``target``, the mean and σ of ``<name>`` over seeded random
#: Gaussian W, H of the run's shapes against the same target.
CHANCE: dict[str, tuple[str, str]] = {
    f"{name}{suffix}": (f"{what} over random Gaussian W, H of: {VOCABULARY[name][0]}",
                        VOCABULARY[name][1])
    for name in COMPARE_METRICS
    for suffix, what in (("_chance", "mean"), ("_chance_std", "standard deviation"))
}


def describe(ds, names=None) -> None:
    """Set ``long_name`` and ``units`` of every variable of ``ds`` the vocabulary names (in place;
    ``names`` restricts it to those)."""
    for name, (long_name, units) in {**VOCABULARY, **CHANCE}.items():
        if name in ds and (names is None or name in names):
            ds[name].attrs.update(long_name=long_name, units=units)
