"""One test per claim of docs/paper.md §3 on trained runs, with thresholds that mean something
against a reference: the run's initial value, the chance level of random embeddings, or the
theory's limit. Then the verdicts of ntpgeom.metrics.claims (the report's claims table) on the
same runs, and on runs built to fail.

The runs are tiny UFMs trained in this process (tests/fixture_stores.train_ufm: full-batch Adam,
float64, NumPy), seconds each:

- ``grammar``: the default synthetic grammar (4 blocks of 2 contexts with identical supports,
  the other supports overlapping), 3000 steps from a small start (init 0.01; see train_ufm on
  why the start matters for collapse);
- ``ksubset``: every 2-subset of 5 tokens (L^mm = S̄), 10,000 steps at a constant step size;
- the linear model of NeurIPS 2402.18551 on the package's own trainer (GD, NGD, Adam).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fixture_stores import solve_mm, svm_dataset, train_ufm

from ntpgeom.data.build import make_table
from ntpgeom.data.synthetic import ksubset_table
from ntpgeom.metrics.claims import claim_rows, etf_error, linear_claims, run_claims, svm_claims
from ntpgeom.metrics.geometry import run_geometry
from ntpgeom.theory.reference import centered_support, factorize, reference_dataset

#: How far beyond chance a similarity must end: the band the figures draw is ± 2σ.
SIGMAS = 5


@pytest.fixture(scope="module")
def grammar():
    table = make_table({"source": "synthetic", "synthetic": {"kind": "grammar"}},
                       {"context_length": 5, "min_count": 2}, progress=False)
    svm = {"scs": svm_dataset(table, solve_mm(table.S()), "scs")}
    ref = reference_dataset(table)
    train = train_ufm(table, d=16, steps=3000, lr=0.05, init=1e-2)
    return {"table": table, "svm": svm, "reference": ref, "train": train,
            "geometry": run_geometry(train, table, ref, svm)}


@pytest.fixture(scope="module")
def ksubset():
    table = ksubset_table(5, 2)
    svm = {"closed_form": svm_dataset(table, centered_support(table.S()), "closed_form")}
    ref = reference_dataset(table)
    train = train_ufm(table, d=16, steps=10_000, lr=0.02, decay=False)
    return {"table": table, "svm": svm, "reference": ref,
            "geometry": run_geometry(train, table, ref, svm)}


# -- claim 1: CE → H ------------------------------------------------------------------------------
def test_claim1_ce_minus_entropy_falls_by_three_orders_of_magnitude(grammar):
    gap = grammar["geometry"]["trace_ce_minus_entropy"].values
    assert (gap > 0).all()                        # CE > H for every finite L
    assert gap[-1] <= 1e-3 * gap[0]
    # It keeps falling: each decade of steps ends lower than the one before.
    ends = gap[[10, 100, 1000, -1]]
    assert (np.diff(ends) < 0).all(), ends


# -- claim 2: ‖W‖, ‖H‖ keep growing ----------------------------------------------------------------
def test_claim2_norms_keep_growing(grammar):
    g = grammar["geometry"]
    for name in ("trace_norm_W", "trace_norm_H"):
        x = g[name].values
        # From a start of about 0.01 √(entries), and still growing over the second half (Adam
        # jitters from step to step, so at every sixth of the run).
        assert x[-1] > 10 * x[0]
        late = x[[len(x) // 2, 2 * len(x) // 3, 5 * len(x) // 6, -1]]
        assert (np.diff(late) > 0).all(), (name, late)


# -- claim 3: P_F(L) → L*, ‖L − L*‖/‖L‖ → 1 --------------------------------------------------------
def test_claim3_in_support_part_converges_and_the_rest_dominates(grammar):
    g = grammar["geometry"]
    err = g["in_support_error"].values
    assert err[-1] <= 1e-2 * err[0]
    off = g["relative_offset"].values
    assert off[-1] >= 0.999 and off[-1] > off[len(off) // 2]


# -- claim 4: direction → L^mm ---------------------------------------------------------------------
def test_claim4_ksubset_ufm_direction_reaches_L_mm(ksubset):  # noqa: N802
    g = ksubset["geometry"].sel(target="closed_form")
    d = float(g["dist_L_centered"].isel(step=-1))
    assert d < 0.05
    chance, sd = float(g["dist_L_centered_chance"]), float(g["dist_L_centered_chance_std"])
    assert d < chance - 10 * sd                   # chance ≈ √2: a random direction
    # The raw distance counts the column means softmax ignores: it stays well above.
    assert float(g["dist_L"].isel(step=-1)) > 1.5 * d
    assert d < 0.2 * float(g["dist_L_centered"].isel(step=0))


# -- claim 5: cosine geometry matches L^mm's factors -----------------------------------------------
@pytest.mark.parametrize("what", ["H", "W"])
def test_claim5_cosine_correlations_end_well_above_their_chance_band(grammar, what):
    g = grammar["geometry"].sel(target="scs")
    for var in (f"corr_cos_{what}", f"corr_cos_{what}_offdiag"):
        value = float(g[var].isel(step=-1))
        chance, sd = float(g[f"{var}_chance"]), float(g[f"{var}_chance_std"])
        assert value > chance + SIGMAS * sd, (var, value, chance, sd)
        assert value > float(g[var].isel(step=0)) + 0.3, var      # it rose over training
    # Off the diagonal chance is ≈ 0; on the whole matrix the shared ones lift it far above.
    assert abs(float(g[f"corr_cos_{what}_offdiag_chance"])) < 0.1
    assert float(g[f"corr_cos_{what}_chance"]) > 0.3


# -- claim 6: subspace collapse --------------------------------------------------------------------
def test_claim6_trained_ufm_h_collapses_within_identical_supports(grammar):
    g = grammar["geometry"]
    assert float(g["target_cos_within_groups_H"].sel(target="scs")) == pytest.approx(1, abs=1e-6)
    within = g["cos_within_groups_H"].values
    across = g["cos_across_groups_H"].values
    assert within[-1] >= 0.99
    assert across[-1] < 0.5                       # other blocks stay apart
    assert within[0] < 0.5                        # ... and it was not so at the start
    assert float(g["collapse_H"].isel(step=-1)) < 0.01


# -- claim 7: SDP sanity, k = 1 simplex ETF -------------------------------------------------------
@pytest.mark.parametrize("V", [3, 5, 8])
def test_claim7_k1_word_cosines_of_W_mm_are_a_simplex_etf(V):  # noqa: N802, N803
    from ntpgeom.theory.svm import solve

    table = ksubset_table(V, 1)
    ds = solve(table, solver="admm", device="cpu")
    W = ds["W_mm"].transpose("token", "rank").values
    C = W @ W.T / np.outer(np.linalg.norm(W, axis=1), np.linalg.norm(W, axis=1))
    off = C[~np.eye(V, dtype=bool)]
    np.testing.assert_allclose(off, -1 / (V - 1), atol=1e-8)
    assert etf_error(W) <= 1e-8
    # The same from the closed form S̄ = I − 11ᵀ/V.
    W_bar, _, _ = factorize(centered_support(table.S()))
    assert etf_error(W_bar) <= 1e-12
    [claim] = svm_claims(table, reference_dataset(table), {"admm": ds})
    assert claim.holds and claim.number == 7


# -- claim 8: the linear model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def linear_problem():
    from ntpgeom.data.synthetic import random_table
    from ntpgeom.studies.linear import linear_reference, random_embeddings

    table = random_table(8, 12, support_size=3, n=400, zipf_a=0.0, seed=3)
    H = random_embeddings(16, 12, seed=1)          # d = 16 > m = 12: separable (Lemma 1)
    return table, H, linear_reference(table, H, solvers=["fista"])


@pytest.mark.parametrize(("optimizer", "lr"), [("gd", "auto"), ("ngd", 0.05), ("adam", 0.02)])
def test_claim8_gd_ngd_adam_approach_W_mm_in_direction_and_W_star_on_F(  # noqa: N802
        linear_problem, optimizer, lr):
    from ntpgeom.studies.linear import LinearConfig, run_metrics, train_config
    from ntpgeom.train.engine import fit

    table, H, ref = linear_problem
    spec = {"optimizer": optimizer, "lr": lr}
    if optimizer == "adam":
        spec["betas"] = [0.9, 0.99]
    config = train_config(spec, d=16, L_smooth=ref.attrs["L_smooth"],
                          linear=LinearConfig(epochs=1000, seed=0, dtype="float64",
                                              checkpoints_per_decade=3, device="cpu"))
    # One thread (two oversubscribe a shared machine) and a sparse trace: seconds, not a minute.
    config = dataclasses.replace(config, threads=1, trace_every=10)
    traj = fit(table, config, features=H, progress=False)
    m = run_metrics(np.stack(traj.W), ref, table.S())
    corr, err = m["corr_W"], m["in_support_error_W"]
    # Several checkpoints, not one step: the direction gets closer to W^mm and the in-support
    # part closer to W* at every decade, from ⟨Ŵ, Ŵ^mm⟩ ≈ 0 (random start; a random direction
    # in V·d = 128 dimensions has correlation 0 ± 0.09).
    decades = [list(traj.step).index(s) for s in (0, 10, 100, 1000)]
    assert abs(corr[0]) < 0.3
    assert (np.diff(corr[decades]) > 0).all(), corr[decades]
    assert (np.diff(err[decades]) < 0).all(), err[decades]
    assert corr[-1] > 0.85
    assert err[-1] < 0.15 * float(np.linalg.norm(ref["W_star"].values))
    [claim] = linear_claims({"norm_W_star": float(np.linalg.norm(ref["W_star"].values)),
                             "runs": {optimizer: {"corr_W": corr[-1],
                                                  "in_support_error_W": err[-1]}}})
    assert claim.holds


# -- the claims table's verdicts -------------------------------------------------------------------
def test_run_claims_say_yes_on_the_trained_run(grammar):
    claims = run_claims(grammar["geometry"], "scs")
    assert [c.number for c in claims] == [1, 2, 3, 4, 5, 6]
    assert all(c.holds for c in claims), [(c.number, c.measured) for c in claims if not c.holds]
    rows = claim_rows(claims)
    assert rows[4][-1] == "yes" and "corr_cos_H_offdiag chance = " in rows[4][4]
    [c7] = svm_claims(grammar["table"], grammar["reference"], grammar["svm"])
    assert c7.holds and dict(c7.measured)["max constraint violation"] < 1e-6


def test_run_claims_say_no_on_a_run_that_has_not_trained(grammar):
    # The first two checkpoints only: nothing has converged; the verdicts must say so.
    early = grammar["geometry"].isel(step=slice(0, 2))
    early = early.drop_vars([v for v in early.data_vars if str(v).startswith("trace_")])
    verdicts = {c.number: c.holds for c in run_claims(early, "scs")}
    assert verdicts[1] is False and verdicts[3] is False and verdicts[6] is False


def test_claim6_does_not_apply_without_shared_supports(ksubset):
    claims = {c.number: c for c in run_claims(ksubset["geometry"], "closed_form")}
    assert claims[6].holds is None and "no two contexts" in claims[6].note
    # S̄'s word cosines for all 2-subsets are constant off the diagonal: cos(W) is not judged,
    # cos(H) is (and matches).
    assert claims[5].holds and "cos(W)" in claims[5].note
    assert [k for k, _ in claims[5].measured] == ["corr_cos_H, last step",
                                                   "corr_cos_H_offdiag, last step"]


def test_report_prints_the_claims_table_and_every_similarity_beside_chance(grammar):
    import re

    from ntpgeom.plots.numbers import SIMILARITIES, dataset_numbers
    from ntpgeom.plots.report import render_html

    num = dataset_numbers(grammar["table"], grammar["reference"], grammar["svm"],
                          {"ufm/d16-seed0": grammar["geometry"]})
    g = grammar["geometry"].sel(target="scs")
    value, chance, std = num["similarity"]["ufm/d16-seed0"]["scs"]["corr_cos_H"]
    assert (value, chance, std) == (float(g["corr_cos_H"].isel(step=-1)),
                                    float(g["corr_cos_H_chance"]),
                                    float(g["corr_cos_H_chance_std"]))
    assert set(num["similarity"]["ufm/d16-seed0"]["scs"]) == set(SIMILARITIES)
    page = render_html({"grammar": num}, {}, {}, {})
    assert "Claims of the paper" in page and "Similarities at the last checkpoint" in page
    # One row per claim: 1–6 for the run, 7 for the solver, 8 (not run: no linear section).
    claims = page[page.index("Claims of the paper"):]
    numbers = re.findall(r"<tr><td>grammar</td><td>[^<]*</td><td>(\d)</td>", claims)
    assert numbers == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert claims.count("<td>yes</td>") == 7 and claims.count("<td>n/a</td>") == 1
    # The value and its chance side by side, as the table prints them.
    assert f"{value:.4g} ({chance:.4g} ± {std:.4g})" in page
    assert "dist L̃ → scs" in page
