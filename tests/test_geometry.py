"""ntpgeom.metrics.core: each metric against a hand-computed or closed-form case, then one
run."""

from __future__ import annotations

import numpy as np
import pytest
from fixture_stores import solve_mm, svm_dataset, train_ufm

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.errors import UserError
from ntpgeom.metrics import core as g
from ntpgeom.metrics.geometry import run_geometry
from ntpgeom.theory.reference import (
    centered_support,
    factorize,
    in_support_logits,
    project_F,
    reference_dataset,
    reldir,
)


def rotation(d: int, seed: int = 0) -> np.ndarray:
    """A random d × d orthogonal matrix (Q of a QR factorization)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@pytest.fixture(scope="module")
def table():
    # V = 10 tokens, m = 14 contexts, two groups of contexts with identical supports.
    return random_table(V=10, m=14, max_support=3, seed=3)


@pytest.fixture(scope="module")
def L_mm(table):
    return solve_mm(table.S())


# -- the closed forms ---------------------------------------------------------------------------
@pytest.mark.parametrize(("V", "k"), [(5, 2), (6, 3)])
def test_ksubset_distance_of_S_bar_to_L_mm_is_zero(V, k):
    """Paper §1.7: for all k-subsets, L^mm = S̄. SCS at eps 1e-9 meets it to ~1e-8."""
    S = ksubset_table(V, k).S()
    assert reldir(centered_support(S), solve_mm(S)) < 1e-6


def test_projection_onto_F_recovers_L_star_from_any_matching_L(table):
    """Any L with L_zj − L_z'j = L*_zj − L*_z'j on every support has P_F(L) = L* (§1.4)."""
    S, P = table.S(), table.P()
    L_star = in_support_logits(S, P)
    rng = np.random.default_rng(1)
    # Add a per-column constant (leaves in-support differences unchanged) and anything off S.
    L = L_star + rng.normal(size=table.m) * 7 + np.where(S, 0.0, rng.normal(size=S.shape) * 50)
    assert g.in_support_error(L, L_star, S) < 1e-12 * np.linalg.norm(L)
    # The two parts are orthogonal and add up to L.
    perp = g.project_F_perp(L, S)
    np.testing.assert_allclose(project_F(L, S) + perp, L, atol=1e-12)
    assert abs((project_F(L, S) * perp).sum()) < 1e-10 * np.linalg.norm(L) ** 2
    # And ‖L − L*‖/‖L‖ by hand.
    assert g.relative_offset(L, L_star) == pytest.approx(
        np.linalg.norm(L - L_star) / np.linalg.norm(L), rel=1e-14)


def test_L_mm_lies_in_F_perp(table, L_mm):
    """L^mm is constant on every support, so P_F(L^mm) = 0 (§1.5), up to the solver's 1e-9."""
    assert np.linalg.norm(project_F(L_mm, table.S())) < 1e-6 * np.linalg.norm(L_mm)


# -- losses and spectra --------------------------------------------------------------------------
def test_cross_entropy_equals_the_per_sample_loss(table):
    """CE over distinct contexts = mean over the n (context, token) pairs of −log softmax."""
    L = np.random.default_rng(0).normal(size=(table.V, table.m)) * 3
    logq = L - np.log(np.exp(L).sum(axis=0))
    per_pair = -logq[table.indices, table.column]
    brute = (per_pair * table.pair_count).sum() / table.n
    assert g.cross_entropy(L, table.P(), table.pi) == pytest.approx(brute, rel=1e-13)
    # CE ≥ H, approached by ρ L^mm + L* as ρ grows (Thm (i)).
    L_star = in_support_logits(table.S(), table.P())
    gap = [g.cross_entropy(L_star + rho * centered_support(table.S()), table.P(), table.pi)
           - table.entropy for rho in (1, 5, 15)]
    assert gap[0] > gap[1] > gap[2] > 0 and gap[2] < 1e-5  # ≈ Σ e^{−ρ} terms


def test_effective_and_numerical_rank():
    assert g.effective_rank(np.array([2.0, 2.0, 2.0, 0.0])) == pytest.approx(3.0, rel=1e-14)
    # Two singular values 3:1 → exp(−(¾ log ¾ + ¼ log ¼)) by hand.
    assert g.effective_rank(np.array([3.0, 1.0])) == pytest.approx(
        np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))), rel=1e-14)
    assert g.numerical_rank(np.array([1.0, 1e-3, 1e-7])) == 2
    assert g.effective_rank(np.zeros(3)) == 0.0


# -- similarity matrices --------------------------------------------------------------------------
def test_cosine_and_gram_matrices_are_rotation_invariant():
    W = np.random.default_rng(2).normal(size=(9, 6))
    R = rotation(6)
    np.testing.assert_allclose(g.cosine_matrix(W @ R), g.cosine_matrix(W), atol=1e-13)
    np.testing.assert_allclose((W @ R) @ (W @ R).T, W @ W.T, atol=1e-12)
    # By hand: rows (1, 0), (1, 1), (0, 0) → cos = 1/√2 between the first two, 0 for the zero row.
    C = g.cosine_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(C, [[1, 2**-0.5, 0], [2**-0.5, 1, 0], [0, 0, 0]], atol=1e-15)


def test_structural_correlation_by_hand():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert g.structural_correlation(A, 2 * A + 5) == pytest.approx(1.0, abs=1e-15)
    # a = (1, 2, 3, 4): population variance 1.25, so −A scores (−1.25 + c)/(1.25 + c).
    c = g.SSIM_C
    assert g.structural_correlation(A, -A) == pytest.approx((-1.25 + c) / (1.25 + c), rel=1e-14)
    X, Y = np.random.default_rng(3).normal(size=(2, 7, 7))
    # With c = 0 it is Pearson's correlation of the flattened matrices.
    assert g.structural_correlation(X, Y, c=0) == pytest.approx(
        np.corrcoef(X.ravel(), Y.ravel())[0, 1], rel=1e-12)
    with pytest.raises(ValueError, match="shapes"):
        g.structural_correlation(X, Y[:3])


def test_linear_cka_matches_the_hsic_formula_and_its_invariances():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    # Kornblith et al. eq. (3) with linear kernels: HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)),
    # HSIC(K, L) ∝ tr(K C L C), C = I − 11ᵀ/n the centering matrix.
    C = np.eye(12) - 1 / 12
    K, L = X @ X.T, Y @ Y.T

    def hsic(a, b):
        return np.trace(a @ C @ b @ C)

    expected = hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))
    assert g.linear_cka(X, Y) == pytest.approx(expected, rel=1e-12)
    assert g.linear_cka(X, 3 * X @ rotation(5) + 1) == pytest.approx(1.0, rel=1e-12)


def test_rsa_by_hand():
    # Three unit vectors at 0°, 30°, 90°: cosine RDM (i<j) = (1 − cos30°, 1, 1 − cos60°).
    ang = np.deg2rad([0, 30, 90])
    X = np.c_[np.cos(ang), np.sin(ang)]
    # Y's RDM ranks the pairs in the reverse order → Spearman −1; row scaling changes nothing.
    ang_y = np.deg2rad([0, 80, 20])
    Y = np.c_[np.cos(ang_y), np.sin(ang_y)]
    assert g.rsa(X, Y) == pytest.approx(-1.0)
    assert g.rsa(X, X * np.array([[1.0], [5.0], [0.2]])) == pytest.approx(1.0)
    assert np.isnan(g.rsa(X, np.ones((3, 2))))


def test_knn_overlap_by_hand():
    # Angles 0, 10, 20, 90 degrees: 1-NN = (1, 0 or 2 → 0 by index tie-break, 1, 2).
    ang = np.deg2rad([0, 10, 20, 90])
    X = np.c_[np.cos(ang), np.sin(ang)]
    assert g.knn_overlap(X, X, k=1) == 1.0
    # Y moves point 3 next to point 0: its 1-NN becomes 0 and point 0's becomes 3.
    ang_y = np.deg2rad([0, 10, 20, -5])
    Y = np.c_[np.cos(ang_y), np.sin(ang_y)]
    # X 1-NN: 0→1, 1→0 (tie 0/2), 2→1, 3→2;  Y 1-NN: 0→3, 1→0, 2→1, 3→0  → 2 of 4 agree.
    assert g.knn_overlap(X, Y, k=1) == 0.5


@pytest.mark.parametrize("d", [2, 4])
def test_twonn_recovers_the_dimension_of_a_linear_manifold(d):
    """N = 2000 uniform points of a d-cube, rotated into ℝ²⁰. The MLE's standard error is
    d/√N (0.045 for d = 2, 0.09 for d = 4); cube boundaries bias it slightly low. 10% margin."""
    rng = np.random.default_rng(5)
    Z = np.zeros((2000, 20))
    Z[:, :d] = rng.uniform(size=(2000, d))
    est = g.twonn_dimension(Z @ rotation(20, 6))
    assert abs(est - d) < 0.1 * d
    # Duplicates (collapsed points) are merged, not divided by zero.
    assert np.isfinite(g.twonn_dimension(np.repeat(Z[:50], 2, axis=0)))
    assert np.isnan(g.twonn_dimension(Z[:2]))


def test_subspace_collapse(table, L_mm):
    S = table.S()
    groups = g.support_groups(S)
    assert groups and all(len(gr) >= 2 for gr in groups)
    for gr in groups:  # same support column for every member
        assert (S[:, gr] == S[:, gr[:1]]).all()
    # H^mm: contexts with identical supports have identical columns (paper §1.6) → 0.
    _, H_mm, _ = factorize(L_mm)
    assert g.subspace_collapse(H_mm, S) < 1e-6
    # Random directions carry no support information: the ratio is near 1 (unbiased ≈ 1;
    # 5 contexts in 2 groups here, so a loose band).
    H = np.random.default_rng(7).normal(size=(50, table.m))
    assert 0.4 < g.subspace_collapse(H, S) < 1.3
    # By hand: two groups {0, 1}, {2, 3} in ℝ²; each group's two directions ±θ around its mean.
    S4 = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    t = 0.1
    H4 = np.array([[np.cos(t), np.cos(t), -np.sin(t), np.sin(t)],
                   [np.sin(t), -np.sin(t), np.cos(t), np.cos(t)]])
    within = 4 * np.sin(t) ** 2
    total = within + 4 * (np.cos(t) ** 2 / 2)  # the group means (cos t, 0), (0, cos t)
    assert g.subspace_collapse(H4, S4) == pytest.approx(within / total, rel=1e-12)
    assert np.isnan(g.subspace_collapse(H4, np.eye(4, dtype=bool)))  # no shared support


# -- one checkpoint, one run ----------------------------------------------------------------------
def fake_run(table, L_mm, rhos=(0.5, 2.0, 8.0), d=12):
    """A training store whose checkpoints are exactly ρ L^mm, factored as √ρ W^mm R, √ρ Rᵀ H^mm
    (R a partial isometry into d dimensions): every distance to L^mm is 0, every similarity 1."""
    import xarray as xr

    W_mm, H_mm, _ = factorize(L_mm)
    R = rotation(d, 8)[: W_mm.shape[1]]            # r × d, R Rᵀ = I
    W = np.array([np.sqrt(r) * W_mm @ R for r in rhos])
    H = np.array([np.sqrt(r) * R.T @ H_mm for r in rhos])
    return xr.Dataset(
        {"W": (("step", "token", "dim"), W), "H": (("step", "dim", "context"), H),
         "logits": (("step", "token", "context"), np.einsum("svd,sdm->svm", W, H))},
        coords={"step": [0, 10, 100], "token": np.array(table.tokens, dtype=object),
                "context": np.array(table.contexts, dtype=object)},
        attrs={"model": "ufm"})


def test_a_run_on_the_max_margin_direction_scores_perfectly(table, L_mm):
    ds = run_geometry(fake_run(table, L_mm), table, reference_dataset(table),
                        {"scs": svm_dataset(table, L_mm, "scs")}, knn_k=3)
    mm = ds.sel(target="scs")
    for var in ("dist_L", "dist_L_perp", "dist_gram_W", "dist_gram_H"):
        np.testing.assert_allclose(mm[var], 0, atol=1e-7, err_msg=var)
    for var in ("corr_cos_W", "corr_cos_H", "cka_W", "cka_H", "rsa_W", "rsa_H", "knn_W"):
        np.testing.assert_allclose(mm[var], 1, atol=1e-7, err_msg=var)
    # Ties among collapsed contexts make k-NN of H ambiguous; only ask it to be high.
    assert (mm["knn_H"] > 0.6).all()
    # L^mm ≠ S̄ for this table; the distance is the solution's own (the report's number).
    np.testing.assert_allclose(ds["dist_L"].sel(target="S_bar"),
                               reldir(L_mm, centered_support(table.S())), atol=1e-8)
    assert (ds["dist_L"].sel(target="S").isnull()).all()
    assert ds["collapse_H"].max() < 1e-6
    np.testing.assert_allclose(ds["norm_L"], np.array([0.5, 2, 8]) * np.linalg.norm(L_mm),
                               rtol=1e-12)
    assert int(ds["target_rank"].sel(target="scs")) == int(ds["rank_L"][0])


def test_trained_ufm_follows_the_theory(table, L_mm):
    """A real (fixture) UFM run: CE − H and ‖P_F L − L*‖ fall, L's direction approaches L^mm
    more closely than S̄ (baselines.md saw the same ordering at every step)."""
    train = train_ufm(table, steps=3000, d=16, seed=0)
    ds = run_geometry(train, table, reference_dataset(table),
                        {"scs": svm_dataset(table, L_mm, "scs")})
    # Recomputed from the logits, CE − H matches what training recorded (same float64 loss).
    np.testing.assert_allclose(ds["ce_minus_entropy"], train["ce_minus_entropy"], atol=1e-12)
    np.testing.assert_allclose(ds["norm_W"], train["norm_W"], rtol=1e-12)
    assert ds["ce_minus_entropy"][-1] < 1e-3
    assert ds["in_support_error"][-1] < 1e-2 * ds["in_support_error"][0]
    last = ds.isel(step=-1)
    assert last["dist_L_perp"].sel(target="scs") < last["dist_L_perp"].sel(target="S_bar")
    assert last["dist_L"].sel(target="scs") < 0.5 * ds["dist_L"].sel(target="scs")[0]
    assert last["corr_cos_H"].sel(target="scs") > 0.8
    assert ds["trace_ce_minus_entropy"].sizes["trace_step"] == 3001


def test_mismatched_labels_are_a_user_error(table, L_mm):
    train = fake_run(table, L_mm).assign_coords(token=[f"x{i}" for i in range(table.V)])
    with pytest.raises(UserError, match="labels differ"):
        run_geometry(train, table, reference_dataset(table),
                       {"scs": svm_dataset(table, L_mm, "scs")})


# -- one vocabulary -------------------------------------------------------------------------------
def test_every_store_speaks_the_one_vocabulary(table, L_mm):
    """Geometry, grid-point and linear-run variables are all names of VOCABULARY (with its long
    name), and the README's vocabulary table lists each name exactly once."""
    import re
    from pathlib import Path

    from ntpgeom.metrics.vocabulary import CHANCE, VOCABULARY
    from ntpgeom.studies.grid import parse_grid
    from ntpgeom.studies.grid_points import run_points
    from ntpgeom.studies.linear import RUN_METRICS

    geo = run_geometry(fake_run(table, L_mm), table, reference_dataset(table),
                       {"scs": svm_dataset(table, L_mm, "scs")}, knn_k=3)
    spec = parse_grid("g", {"axes": {"d": [4]}, "fixed": {"epochs": 3, "checkpoints": 2}},
                      datasets=["t"])
    (point,) = run_points(table, L_mm, [spec.point("d~4")])
    for ds in (geo, point):
        names = [str(n) for n in ds.data_vars if not str(n).startswith("trace_")]
        known = {**VOCABULARY, **CHANCE}
        assert set(names) <= set(known), set(names) - set(known)
        for n in names:
            assert ds[n].attrs["long_name"] == known[n][0], n
    assert set(RUN_METRICS) <= set(VOCABULARY)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    readme = readme.split("### The metric vocabulary", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z_]+)` \| [^|]+ \| [^|]+ \| ", readme, flags=re.M)
    assert sorted(rows) == sorted(VOCABULARY)
