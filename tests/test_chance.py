"""The softmax-invariant and off-diagonal metrics of ntpgeom.metrics.core, and metrics.chance,
against closed forms and independent re-computations, then their place in the geometry store."""

from __future__ import annotations

import numpy as np
import pytest
from fixture_stores import solve_mm, svm_dataset
from test_geometry import fake_run

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.metrics import chance, core
from ntpgeom.metrics.core import COMPARE_METRICS, compare, cosine_matrix
from ntpgeom.metrics.geometry import run_geometry
from ntpgeom.theory.reference import centered_support, factorize, reference_dataset, reldir


@pytest.fixture(scope="module")
def table():
    return random_table(V=10, m=14, max_support=3, seed=3)


@pytest.fixture(scope="module")
def L_mm(table):
    return solve_mm(table.S())


# -- centered distances -------------------------------------------------------------------------
def test_centering_removes_exactly_what_softmax_ignores():
    rng = np.random.default_rng(0)
    L = rng.standard_normal((7, 5))
    Lt = core.center_columns(L)
    np.testing.assert_allclose(Lt.sum(axis=0), 0, atol=1e-14)
    soft = lambda X: np.exp(X) / np.exp(X).sum(axis=0)  # noqa: E731
    np.testing.assert_allclose(soft(Lt), soft(L), rtol=1e-13)


def test_centered_distance_ignores_column_shifts_and_equals_raw_for_centered_matrices():
    rng = np.random.default_rng(1)
    T = centered_support(ksubset_table(6, 2).S())           # zero column sums
    L0 = core.center_columns(T + 0.1 * rng.standard_normal(T.shape))
    shift = np.ones((T.shape[0], 1)) * rng.standard_normal((1, T.shape[1])) * 10
    d0 = core.centered_reldir(L0, T)
    # For zero-column-sum L and T it is the paper's raw distance ...
    assert d0 == pytest.approx(reldir(L0, T), abs=1e-14)
    # ... and adding any per-column constant leaves it unchanged, while the raw one grows.
    assert core.centered_reldir(L0 + shift, T) == pytest.approx(d0, abs=1e-13)
    assert d0 < 0.3 and reldir(L0 + shift, T) > 1.0
    # Closed form: L = ρT + 1cᵀ is at centered distance 0 from T for any ρ > 0 and c.
    assert core.centered_reldir(3.0 * T + shift, T) == pytest.approx(0, abs=1e-14)


# -- off-diagonal correlation -------------------------------------------------------------------
def test_offdiag_correlation_is_pearson_of_the_upper_triangles_and_ignores_the_diagonal():
    rng = np.random.default_rng(2)
    A = cosine_matrix(rng.standard_normal((9, 4)))
    B = cosine_matrix(rng.standard_normal((9, 4)))
    iu = np.triu_indices(9, k=1)
    pearson = np.corrcoef(A[iu], B[iu])[0, 1]
    assert core.offdiag_correlation(A, B, c=0.0) == pytest.approx(pearson, abs=1e-12)
    B2 = B.copy()
    np.fill_diagonal(B2, -5.0)
    assert core.offdiag_correlation(A, B2) == core.offdiag_correlation(A, B)
    assert core.offdiag_correlation(A, A) == pytest.approx(1, abs=1e-12)
    with pytest.raises(ValueError, match="square"):
        core.offdiag_correlation(A, B[:, :4])


# -- group cosines ------------------------------------------------------------------------------
def test_group_cosines_by_hand():
    # Contexts 0, 1 share support {0}; 2, 3 share {1}; 4 is alone (not in any block).
    S = np.array([[1, 1, 0, 0, 1], [0, 0, 1, 1, 1]], dtype=bool)
    t = 0.3
    H = np.array([[1, np.cos(t), 0, 0, 1],
                  [0, np.sin(t), 1, 1, 1]])                   # d = 2, m = 5
    within, across = core.group_cosines(H, S)
    assert within == pytest.approx((np.cos(t) + 1) / 2, abs=1e-12)
    # Across: cos(h_0, h_2) = cos(h_0, h_3) = 0, cos(h_1, h_2) = cos(h_1, h_3) = sin t.
    assert across == pytest.approx(np.sin(t) / 2, abs=1e-12)
    assert all(np.isnan(core.group_cosines(H, np.eye(5, dtype=bool)[:2] | True)[1:]))
    assert np.isnan(core.group_cosines(np.eye(3), np.eye(3, dtype=bool))[0])


# -- chance levels ------------------------------------------------------------------------------
def test_chance_levels_are_the_mean_and_spread_of_the_seeded_draws():
    draws = list(chance.random_factors(5, 3, 4, draws=40, seed=7))
    assert all(np.allclose(L, W @ H) for L, W, H in draws)
    first = np.array([W[0, 0] for _, W, _ in draws])
    levels = chance.chance_levels(lambda L, W, H: {"w00": W[0, 0], "nan": np.nan}, 5, 3, 4,
                                  draws=40, seed=7)
    assert levels["w00"] == (pytest.approx(first.mean(), abs=0), pytest.approx(first.std(), abs=0))
    assert np.isnan(levels["nan"]).all()
    # Standard Gaussian entries: the mean of 40 is within 4/√40 of 0, the spread near 1.
    assert abs(levels["w00"][0]) < 4 / np.sqrt(40) and 0.6 < levels["w00"][1] < 1.4
    with pytest.raises(ValueError, match="at least 2"):
        chance.chance_levels(lambda L, W, H: {}, 2, 2, 2, draws=1)


def test_offdiag_chance_is_centred_on_zero_and_whole_matrix_chance_is_not(table, L_mm):
    """Random embeddings have no structure: their off-diagonal correlation with cos(H^mm) is 0 on
    average (within 4 standard errors); the whole-matrix one is pulled up by the shared diagonal
    of ones (the issue measured 0.64 ± 0.04 on the grammar data)."""
    W, H, _ = factorize(L_mm)
    target = {"L": L_mm, "W": W, "H": H}
    draws = 64
    lv = chance.chance_levels(lambda L, W_, H_: compare(L, W_, H_, target, S=table.S()),
                              table.V, 16, table.m, draws=draws)
    mean, std = lv["corr_cos_H_offdiag"]
    assert abs(mean) < 4 * std / np.sqrt(draws)
    assert lv["corr_cos_H"][0] > mean + 3 * std
    # Independent re-computation of the whole-matrix level from the same draws (np.cov, with
    # SSIM's stabilizer c = 1e-5 in numerator and denominator).
    def ssim_s(a, b, c=1e-5):
        cov = np.cov(a, b, ddof=0)
        return (cov[0, 1] + c) / (np.sqrt(cov[0, 0] * cov[1, 1]) + c)

    ref = [ssim_s(cosine_matrix(Hr.T).ravel(), cosine_matrix(H.T).ravel())
           for _, _, Hr in chance.random_factors(table.V, 16, table.m, draws)]
    assert lv["corr_cos_H"] == (pytest.approx(np.mean(ref), abs=1e-12),
                                pytest.approx(np.std(ref), abs=1e-12))
    # A random L's direction is nearly orthogonal to any target: distance ≈ √2.
    assert lv["dist_L_centered"][0] == pytest.approx(np.sqrt(2), abs=4 * lv["dist_L_centered"][1])


def test_geometry_store_has_centered_distances_offdiag_and_chance(table, L_mm):
    ds = run_geometry(fake_run(table, L_mm), table, reference_dataset(table),
                      {"scs": svm_dataset(table, L_mm, "scs")}, knn_k=3)
    mm = ds.sel(target="scs")
    # ρ L^mm has zero column sums: centered distances are the raw ones, here 0.
    for var in ("dist_L_centered", "dist_L_perp_centered"):
        np.testing.assert_allclose(mm[var], 0, atol=1e-7, err_msg=var)
        assert ds[var].sel(target="S").isnull().all()
    np.testing.assert_allclose(mm["corr_cos_H_offdiag"], 1, atol=1e-7)
    for name in COMPARE_METRICS:
        for var in (f"{name}_chance", f"{name}_chance_std"):
            assert ds[var].dims == ("target",), var
            assert "random Gaussian" in ds[var].attrs["long_name"]
    assert float(ds["corr_cos_H_chance"].sel(target="scs")) < 0.9
    assert ds.attrs["chance_draws"] >= 32
    # Groups of identical support coincide in ρ H^mm: within-group cosine 1.
    np.testing.assert_allclose(ds["cos_within_groups_H"], 1, atol=1e-9)
    assert float(ds["target_cos_within_groups_H"].sel(target="scs")) == pytest.approx(1, abs=1e-9)
    assert (ds["cos_across_groups_H"] < 0.9).all()


def test_offdiag_correlation_is_undefined_for_a_simplex_etf_target():
    # k = 1: W^mm's word cosines are all −1/(V − 1) off the diagonal; SSIM's c would score any
    # matrix 1 against it. The whole-matrix value is defined but sees only the diagonal.
    V = 5
    W_etf, _, _ = factorize(centered_support(ksubset_table(V, 1).S()))
    A = cosine_matrix(W_etf)
    B = cosine_matrix(np.random.default_rng(0).standard_normal((V, 3)))
    assert np.isnan(core.offdiag_correlation(A, B))
    assert np.isnan(core.offdiag_correlation(B, A))
    assert np.isfinite(core.offdiag_correlation(B, B))
