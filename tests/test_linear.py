"""The linear-model study (ntpgeom.studies.linear): W*, W^mm, the checks, W-only training, bad
input."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import xarray as xr

from ntpgeom.data.synthetic import random_table
from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.metrics.core import correlation
from ntpgeom.studies.linear import (
    LinearConfig,
    check_embeddings,
    linear_reference,
    linear_reference_for,
    make_embeddings,
    random_embeddings,
    require_separable,
    run_metrics,
    toy_problem,
    train_config,
    train_linear,
)
from ntpgeom.theory.linear import (
    in_support_solution,
    max_margin,
    project_dual,
    project_F_W,
    smoothness,
    solve_wmm_cvx,
    solve_wmm_fista,
)
from ntpgeom.train.config import TrainConfig
from ntpgeom.train.engine import fit


@pytest.fixture(scope="module")
def problem():
    """Overparameterized (d > m): compatible and separable by Lemma 1."""
    table = random_table(8, 12, support_size=3, n=400, zipf_a=0.0, seed=3)
    return table, random_embeddings(16, 12, seed=1)


def _one_hot_table(labels: list[int], V: int) -> Table:  # noqa: N803
    m = len(labels)
    return Table.from_pairs([(f"c{j}",) for j in range(m)], ctx_index=np.arange(m),
                            next_tokens=[f"t{i}" for i in range(V)],
                            next_index=np.array(labels), counts=np.ones(m, dtype=int))


# -- W* ------------------------------------------------------------------------------------------
def test_w_star_solves_the_compatibility_equations_and_lies_in_F(problem):  # noqa: N802
    table, H = problem
    S, P = table.S(), table.P()
    ins = in_support_solution(S, P, H)
    assert ins.compatible and ins.residual < 1e-10
    # Every pair z, z' of every support, not only the anchor pairs the solver used.
    for j in range(table.m):
        logits = ins.W_star @ H[:, j]
        for z, zp in itertools.permutations(np.flatnonzero(S[:, j]), 2):
            assert logits[z] - logits[zp] == pytest.approx(np.log(P[z, j] / P[zp, j]), abs=1e-10)
    # In F: a least-squares combination of the generators (e_z − e_z') h̄_jᵀ reproduces W*
    # exactly (generators built independently of difference_operator, over all pairs).
    gens = [np.outer(np.eye(table.V)[z] - np.eye(table.V)[zp], H[:, j]).ravel()
            for j in range(table.m) for z, zp in itertools.combinations(np.flatnonzero(S[:, j]), 2)]
    G = np.array(gens).T
    coef = np.linalg.lstsq(G, ins.W_star.ravel(), rcond=None)[0]
    assert np.linalg.norm(G @ coef - ins.W_star.ravel()) < 1e-10 * np.linalg.norm(ins.W_star)
    assert np.allclose(project_F_W(ins.W_star, ins.basis), ins.W_star, atol=1e-12)
    # Unique in F: any other solution adds a part orthogonal to F, so has a larger norm.
    rng = np.random.default_rng(0)
    N = rng.standard_normal(ins.W_star.shape)
    N -= project_F_W(N, ins.basis)
    assert np.allclose(project_F_W(ins.W_star + N, ins.basis), ins.W_star, atol=1e-10)


# -- W^mm ----------------------------------------------------------------------------------------
def test_w_mm_is_feasible_and_the_two_solvers_agree(problem):
    table, H = problem
    S = table.S()
    a = solve_wmm_cvx(S, H, solver="clarabel")
    b = solve_wmm_fista(S, H)
    assert a.status == "optimal" and b.status == "optimal"
    for sol in (a, b):
        L = sol.W @ H
        for j in range(table.m):
            inside, outside = L[S[:, j], j], L[~S[:, j], j]
            assert np.ptp(inside) < 1e-7  # equal logits on the support
            assert inside.min() - outside.max() >= 1 - 1e-7  # margin 1
    # Both are accurate to ≪ 1e-5 (Clarabel 1e-9, fista gap 1e-10): the bound is the issue's.
    assert np.linalg.norm(a.W - b.W) / np.linalg.norm(a.W) < 1e-5
    # The max-margin form of Def. 3: ‖W^mm‖ = 1/γ* and W^mm ∥ the SOCP's maximizer.
    mar = max_margin(S, H, solver="clarabel")
    assert mar.separable and 1 / mar.gamma == pytest.approx(np.linalg.norm(a.W), rel=1e-6)
    assert correlation(mar.W, a.W) == pytest.approx(1.0, abs=1e-8)


def test_scs_agrees_too(problem):
    table, H = problem
    a = solve_wmm_cvx(table.S(), H, solver="clarabel")
    c = solve_wmm_cvx(table.S(), H, solver="scs")
    assert np.linalg.norm(a.W - c.W) / np.linalg.norm(a.W) < 1e-5


def test_toy_w1_equals_w5_in_w_mm_but_not_in_w_star():
    table, H = toy_problem(0)
    ref = linear_reference(table, H, solvers=["clarabel", "fista"])
    W_mm, W_star = ref["W_mm"].values, ref["W_star"].values
    assert ref.attrs["separable"] and ref.attrs["compatible"]
    assert np.linalg.norm(W_mm[0] - W_mm[4]) < 1e-7 * np.linalg.norm(W_mm)
    assert np.linalg.norm(W_star[0] - W_star[4]) > 0.1 * np.linalg.norm(W_star)
    assert ref.attrs["solver_agreement"] < 1e-5


def test_one_hot_supports_give_the_multiclass_svm():
    """S_j = 1: NTP-SVM = hard-margin Crammer–Singer SVM, here solved in its dual form
    max Σα − ½‖Σ α_jv (e_yj − e_v) h_jᵀ‖², α ≥ 0 (an independent formulation)."""
    import cvxpy as cp

    V, m, d = 4, 9, 12
    labels = [j % V for j in range(m)]
    table = _one_hot_table(labels, V)
    H = random_embeddings(d, m, seed=5)
    pairs = [(j, v) for j in range(m) for v in range(V) if v != labels[j]]
    D = np.array([np.outer(np.eye(V)[labels[j]] - np.eye(V)[v], H[:, j]).ravel()
                  for j, v in pairs]).T  # (V·d, #pairs)
    alpha = cp.Variable(len(pairs), nonneg=True)
    cp.Problem(cp.Maximize(cp.sum(alpha) - 0.5 * cp.sum_squares(D @ alpha))).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    W_cs = (D @ alpha.value).reshape(V, d)
    for sol in (solve_wmm_cvx(table.S(), H), solve_wmm_fista(table.S(), H)):
        assert np.linalg.norm(sol.W - W_cs) / np.linalg.norm(W_cs) < 1e-6


def test_project_dual_matches_a_qp():
    import cvxpy as cp

    rng = np.random.default_rng(2)
    V, m = 7, 5
    S = rng.random((V, m)) < 0.4
    S[0] = True
    X = rng.standard_normal((V, m)) * 3
    Y = project_dual(X, S)
    for j in range(m):
        y = cp.Variable(V)
        cons = [cp.sum(y) == 0] + ([y[~S[:, j]] <= 0] if (~S[:, j]).any() else [])
        cp.Problem(cp.Minimize(cp.sum_squares(y - X[:, j])), cons).solve(solver=cp.CLARABEL)
        assert np.allclose(Y[:, j], y.value, atol=1e-7)


def test_smoothness_bounds_the_hessian():
    """L_smooth ≥ λ_max of the exact Hessian of CE(W) at random W (torch autograd)."""
    table = random_table(5, 6, support_size=2, n=60, zipf_a=0.0, seed=0)
    H = random_embeddings(3, 6, seed=0)
    Q = torch.zeros(6, 5, dtype=torch.float64)
    Q[table.column, table.indices] = torch.tensor(table.pi[table.column] * table.prob)
    Ht = torch.tensor(H)

    def ce(w):
        return -(Q * torch.log_softmax(Ht.T @ w.reshape(5, 3).T, dim=-1)).sum()

    bound = smoothness(H, table.pi)
    for seed in range(5):
        w = torch.randn(15, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        hess = torch.autograd.functional.hessian(ce, w)
        assert float(torch.linalg.eigvalsh(hess)[-1]) <= bound * (1 + 1e-12)


# -- training --------------------------------------------------------------------------------------
def test_gd_on_a_separable_case_approaches_h_and_w_mm(problem):
    table, H = problem
    ref = linear_reference(table, H, solvers=["fista"])
    config = train_config({"optimizer": "gd", "lr": "auto"}, d=H.shape[0],
                          L_smooth=ref.attrs["L_smooth"],
                          linear=LinearConfig(epochs=3000, seed=0, dtype="float64",
                                              checkpoints_per_decade=3, device="cpu"))
    assert config.lr == pytest.approx(1 / (2 * ref.attrs["L_smooth"]))
    traj = fit(table, config, features=H, progress=False)
    gap = np.array([t[0] for t in traj.trace]) - table.entropy
    assert (np.diff(gap) <= 1e-12).all()  # GD below 1/L decreases the loss monotonically
    assert gap[-1] < 0.05 * gap[0]
    metrics = run_metrics(np.stack(traj.W), ref, table.S())
    corr = metrics["corr_W"]
    assert corr[-1] > 0.9 and corr[-1] > corr[1] + 0.3
    assert metrics["in_support_error_W"][-1] < 0.5 * metrics["in_support_error_W"][1]


def test_run_metrics_on_the_ray_w_star_plus_t_w_mm(problem):
    """W_t = W* + t W^mm in closed form: W^mm has equal logits on every support, so it is ⟂ F
    (and so ⟂ W* ∈ F); P_F(W_t) = W*, and the correlations are those of two orthogonal parts."""
    table, H = problem
    ref = linear_reference(table, H, solvers=["clarabel"])
    W_star, W_mm = ref["W_star"].values, ref["W_mm"].values
    a, b = np.linalg.norm(W_star), np.linalg.norm(W_mm)
    assert abs(np.sum(W_star * W_mm)) < 1e-6 * a * b
    ts = np.array([0.0, 0.5, 3.0, 100.0])
    m = run_metrics(np.stack([W_star + t * W_mm for t in ts]), ref, table.S())
    want = ts * b / np.sqrt(a**2 + (ts * b) ** 2)
    np.testing.assert_allclose(m["corr_W"], want, atol=1e-6)
    np.testing.assert_allclose(m["corr_W_offset"][1:], 1.0, atol=1e-12)
    assert np.isnan(m["corr_W_offset"][0])  # W_0 − W* = 0 has no direction
    np.testing.assert_allclose(m["in_support_error_W"], 0.0, atol=1e-9 * a)
    np.testing.assert_allclose(m["dist_W"], np.sqrt(2 - 2 * want), atol=1e-6)
    assert np.isnan(run_metrics(np.zeros((1, *W_mm.shape)), ref, table.S())["dist_W"][0])


def test_ngd_moves_w_by_exactly_its_step(problem):
    table, H = problem
    config = TrainConfig(model="linear", d=H.shape[0], epochs=1, optimizer="ngd", lr=0.37,
                         milestones=(), dtype="float64", device="cpu")
    traj = fit(table, config, features=H, progress=False)
    assert np.linalg.norm(traj.W[-1].astype(float) - traj.W[0]) == pytest.approx(0.37, rel=1e-6)


def test_linear_study_run_is_the_engine_run_bit_for_bit(problem, tmp_path):
    """The study's runs (train_config + the training stage's train, as linear.train_linear calls
    them) are the engine's: trained alone or two optimizers in one vmap-ed batch, the same bits."""
    from ntpgeom.store import open_store
    from ntpgeom.train.engine import fit_runs
    from ntpgeom.train.stage import train

    table, H = problem
    linear = LinearConfig(epochs=40, seed=0, dtype="float64", checkpoints_per_decade=3,
                          device="cpu")
    configs = [train_config(spec, d=H.shape[0], L_smooth=2.0, linear=linear)
               for spec in ({"optimizer": "gd", "lr": "auto"},
                            {"optimizer": "adamw", "lr": 0.01, "weight_decay": 1e-4})]
    batched = fit_runs(table, configs, features=H, progress=False)
    for b, config in enumerate(configs):
        alone = fit(table, config, features=H, progress=False)
        assert alone.step == batched[b].step
        for x, y in zip(alone.W + alone.trace, batched[b].W + batched[b].trace, strict=True):
            assert torch.equal(torch.from_numpy(x), torch.from_numpy(y))
        ds = open_store(train(table, config, out=tmp_path / f"{b}.zarr", features=H,
                              progress=False) and tmp_path / f"{b}.zarr")
        np.testing.assert_array_equal(ds["W"].values, np.stack(alone.W).astype(np.float32))


# -- bad input ------------------------------------------------------------------------------------
def test_non_separable_embeddings_are_reported_with_the_best_margin():
    # Contexts 0 and 1 share their embedding but want other next tokens: no W separates them.
    table = _one_hot_table([0, 1, 2], 3)
    H = np.array([[1.0, 1.0, -1.0], [0.5, 0.5, 2.0]])
    ref = linear_reference(table, H, solvers=["clarabel", "fista"])
    assert not ref.attrs["separable"]
    assert abs(ref.attrs["margin"]) < 1e-6 and ref.attrs["stuck_constraints"] >= 2
    assert np.isnan(ref["W_mm"].values).all()
    with pytest.raises(UserError, match=r"not NTP-separable \(best normalized margin γ\* = "):
        require_separable(ref)


def test_embeddings_that_do_not_fit_the_table_are_one_line_errors(problem):
    table, H = problem
    with pytest.raises(UserError, match=r"linear.embeddings.d: 10 does not match .* width 16"):
        check_embeddings(H, table, d=10)
    with pytest.raises(UserError, match=r"11 contexts but the table has m = 12"):
        check_embeddings(H[:, :11], table)
    with pytest.raises(UserError, match="contexts differ from the table's"):
        check_embeddings(H, table, contexts=["x"] * 12)
    with pytest.raises(UserError, match="unknown source 'umf'"):
        make_embeddings(table, {"source": "umf"})
    with pytest.raises(UserError, match="source random needs d"):
        make_embeddings(table, {"source": "random"})
    with pytest.raises(UserError, match=r"^linear.embeddings: missing key `source`; allowed: "
                                        "random, train, svm$"):
        make_embeddings(table, {"d": 16})
    with pytest.raises(UserError, match="lr auto is for gd only"):
        train_config({"optimizer": "adam", "lr": "auto"}, d=16, L_smooth=1.0,
                     linear=LinearConfig(epochs=1, seed=0, dtype="float64",
                                         checkpoints_per_decade=3, device="cpu"))
    with pytest.raises(UserError, match=r"embeddings are 16 × 12 but d = 8"):
        fit(table, TrainConfig(model="linear", d=8, epochs=1, milestones=()), features=H)
    for err in (check_embeddings, ):
        try:
            err(H, table, d=3)
        except UserError as e:
            assert "\n" not in str(e)


def test_the_entry_points_take_the_loaded_table_and_reference(problem, tmp_path):
    """linear_reference_for is make_embeddings + linear_reference with the section's options;
    train_linear refuses a reference that does not fit, naming the run (out) and the reference
    (where) as the scripts pass them, before any training."""
    table, _ = problem
    spec = {"source": "random", "d": 16, "seed": 1}
    linear = LinearConfig(solvers=("clarabel",), eps=1e-9, fista_tol=1e-10, fista_max_iter=10,
                          rank_rtol=1e-6, epochs=1, seed=0, dtype="float64",
                          checkpoints_per_decade=3, device="cpu")
    ref = linear_reference_for(table, embedding=spec, linear=linear, config={"linear": {}})
    H, info = make_embeddings(table, spec)
    want = linear_reference(table, H, solvers=["clarabel"], embedding=info,
                            config={"linear": {}})
    xr.testing.assert_identical(ref.drop_attrs(), want.drop_attrs())
    timings = ("wall_seconds", "solve_seconds")
    assert ({k: v for k, v in ref.attrs.items() if k not in timings}
            == {k: v for k, v in want.attrs.items() if k not in timings})
    out = tmp_path / "gd.zarr"
    gd = {"optimizer": "gd", "lr": "auto"}
    other = ref.assign_coords(context=[f"x{j}" for j in range(table.m)])
    with pytest.raises(UserError, match=r"^results/r/linear/random/reference.zarr: the "
                                        "embeddings' contexts differ"):
        train_linear(table, other, out=out, spec=gd, linear=linear,
                     where="results/r/linear/random/reference.zarr")
    flat = ref.assign_attrs(separable=False)
    with pytest.raises(UserError, match=rf"^linear {re.escape(str(out))}: the embeddings are not "
                                        "NTP-separable"):
        train_linear(table, flat, out=out, spec=gd, linear=linear)
    assert not out.exists()


def test_random_table_with_fixed_supports_and_n_pairs():
    t = random_table(10, 50, support_size=6, n=5000, zipf_a=0.0, seed=0)
    assert t.n == 5000 and t.m == 50 and (t.support_size == 6).all()
    with pytest.raises(UserError, match="cannot cover the 300 support entries"):
        random_table(10, 50, support_size=6, n=100, zipf_a=0.0)


def test_toy_labels_are_apart_even_where_arrows_coincide():
    from ntpgeom.plots.linear_figures import _label_positions

    tips = np.array([[1.0, 0.0], [0.02, 0.01], [0.0, 0.0], [1.0, 0.0], [0.01, 0.02]])
    pos = _label_positions(tips, 0.1)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(5)
    assert dist.min() >= 0.1 - 1e-12
    np.testing.assert_allclose(pos[0], [1.1, 0.0])  # beyond the tip, along the arrow
