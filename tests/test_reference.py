"""Tests of ntpgeom.theory.reference: L*, P_F, S̄ and the factors, each against its defining
equations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.theory.reference import (
    centered_support,
    constraint_violation,
    factorize,
    in_support_logits,
    nuclear_norm,
    project_F,
    reference_dataset,
)


@pytest.fixture(scope="module")
def table():
    return random_table(15, 40, seed=4)


def test_L_star_solves_its_defining_equations(table):  # noqa: N802
    """L*_zj − L*_z'j = log(P_zj / P_z'j) for z, z' ∈ S_j, and L* ∈ F (§1.4)."""
    S, P = table.S(), table.P()
    L = in_support_logits(S, P)
    for j in range(table.m):
        for z, w in itertools.combinations(np.flatnonzero(S[:, j]), 2):
            assert math.isclose(L[z, j] - L[w, j], math.log(P[z, j] / P[w, j]), abs_tol=1e-12)
    assert np.all(L[~S] == 0)
    np.testing.assert_allclose(np.where(S, L, 0).sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(project_F(L, S), L, atol=1e-12)


def test_project_F_is_an_orthogonal_projection(table):  # noqa: N802
    S = table.S()
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(2, *S.shape))
    PA = project_F(A, S)
    np.testing.assert_allclose(project_F(PA, S), PA, atol=1e-12)  # idempotent
    assert math.isclose((PA * B).sum(), (A * project_F(B, S)).sum(), abs_tol=1e-10)  # self-adjoint


def test_S_bar_is_feasible_with_margin_one(table):  # noqa: N802
    S = table.S()
    S_bar = centered_support(S)
    assert constraint_violation(S_bar, S) == (0.0, 0.0)
    margin = np.where(S, S_bar, np.inf).min(0) - np.where(~S, S_bar, -np.inf).max(0)
    np.testing.assert_allclose(margin[np.isfinite(margin)], 1.0, atol=1e-12)
    np.testing.assert_allclose(S_bar.sum(axis=0), 0, atol=1e-12)  # (I − 11ᵀ/V) S


def test_factorize_identities(table):
    L = centered_support(table.S())
    W, H, sigma = factorize(L)
    np.testing.assert_allclose(W @ H, L, atol=1e-12)
    assert math.isclose((W**2).sum() + (H**2).sum(), 2 * nuclear_norm(L), rel_tol=1e-12)
    U, s, Vt = np.linalg.svd(L)
    r = len(sigma)
    np.testing.assert_allclose(W @ W.T, (U[:, :r] * s[:r]) @ U[:, :r].T, atol=1e-12)


def test_constraint_violation_detects_violations():
    S = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    L = np.array([[1.0, -1.0], [1.2, 0.0], [0.5, 0.0]])
    spread, shortfall = constraint_violation(L, S)
    assert math.isclose(spread, 0.2) and math.isclose(shortfall, 1.0 - (1.0 - 0.5))


def test_reference_dataset_contract():
    ds = reference_dataset(ksubset_table(6, 2))
    for name, dims in (("L_star", ("token", "context")), ("S_bar", ("token", "context")),
                       ("W_bar", ("token", "rank")), ("H_bar", ("rank", "context")),
                       ("S_bar_singular_values", ("rank",))):
        assert ds[name].dims == dims
    assert ds.attrs["rank"] == 5
    np.testing.assert_allclose(ds["W_bar"].values @ ds["H_bar"].values, ds["S_bar"].values,
                               atol=1e-12)
