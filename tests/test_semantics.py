"""Learning order and orthant clustering (ntpgeom.metrics.semantics) on the hierarchy toy of
docs/semantics.md §4.3, against closed forms, brute force and a plain gradient-descent reference
trajectory (full-batch GD on the UFM's CE, written out here independently of ntpgeom.train)."""

from __future__ import annotations

import numpy as np
import pytest

from ntpgeom.data.synthetic import hierarchy_table
from ntpgeom.metrics import semantics as sem
from ntpgeom.theory.reference import centered_support

TOY = hierarchy_table()
S_BAR = centered_support(TOY.S())
U, SIGMA, V = sem.spectrum(S_BAR)
BLOCKS = sem.degenerate_blocks(SIGMA)


def gd_ufm(init: float, lr: float, steps: int, d: int = 16, seed: int = 0,
           keep: tuple[int, ...] | None = None, start: tuple | None = None):
    """Full-batch GD on CE(W H) = −Σ_j π_j Σ_z P_zj log softmax(W h_j)_z from W, H ~ init·N(0, 1).

    ∂CE/∂L = (softmax(L) − P) diag(π): the reference dynamics of semantics.md §2.3. Returns the
    steps kept and W (steps, V, d), H (steps, d, m) there (every step when ``keep`` is None).
    """
    rng = np.random.default_rng(seed)
    W = init * rng.standard_normal((TOY.V, d))
    H = init * rng.standard_normal((d, TOY.m))
    if start is not None:  # the initial W, H of another implementation
        W, H = (np.array(x, dtype=np.float64) for x in start)
    P, pi = TOY.P(), TOY.pi
    kept, Ws, Hs = [], [], []
    for t in range(steps + 1):
        if keep is None or t in keep:
            kept.append(t)
            Ws.append(W.copy())
            Hs.append(H.copy())
        L = W @ H
        E = np.exp(L - L.max(axis=0))
        G = (E / E.sum(axis=0) - P) * pi
        W, H = W - lr * G @ H.T, H - lr * W.T @ G
    return np.array(kept), np.array(Ws), np.array(Hs)


# -- degeneracy guard (check 13) ----------------------------------------------------------------
def test_the_guard_flags_the_toys_equal_singular_values():
    np.testing.assert_allclose(SIGMA, [7 ** .5, 3 ** .5, 3 ** .5, 1, 1, 1, 1], atol=1e-12)
    assert BLOCKS.tolist() == [0, 1, 1, 2, 2, 2, 2]
    k_used, degenerate = sem.whole_blocks(BLOCKS, 7)
    assert k_used.tolist() == [1, 3, 3, 7, 7, 7, 7]
    assert degenerate.tolist() == [False] + [True] * 6


def test_the_guard_uses_the_relative_gap():
    # 1e-7 relative apart: one block; 1e-5 apart: two (the threshold is 1e-6).
    assert sem.degenerate_blocks(np.array([2.0, 2.0 * (1 - 1e-7), 1.0])).tolist() == [0, 0, 1]
    assert sem.degenerate_blocks(np.array([2.0, 2.0 * (1 - 1e-5), 1.0])).tolist() == [0, 1, 2]


# -- mode strength and learning steps (checks 4, 5) ----------------------------------------------
def test_mode_strength_of_the_target_itself_is_its_spectrum():
    # u_kᵀ (c S̄) v_k = c σ_k exactly, and block means of equal σ are σ.
    got = sem.mode_strength(np.stack([S_BAR, 3 * S_BAR]), U, V, BLOCKS)
    np.testing.assert_allclose(got, [SIGMA, 3 * SIGMA], atol=1e-12)


def test_mode_strength_does_not_depend_on_the_basis_inside_a_block():
    rng = np.random.default_rng(1)
    L = rng.standard_normal((2, TOY.V, TOY.m))
    R = np.eye(7)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    R[3:, 3:] = Q                                   # rotate the 4-fold block σ = 1
    R[1:3, 1:3] = [[0.6, -0.8], [0.8, 0.6]]         # and the 2-fold block σ = √3
    signs = np.diag([-1, 1, -1, 1, 1, -1, 1])       # flip u_k and v_k together
    np.testing.assert_allclose(sem.mode_strength(L, U @ R @ signs, V @ R @ signs, BLOCKS),
                               sem.mode_strength(L, U, V, BLOCKS), atol=1e-12)
    # Brute force: the mean of u_iᵀ L v_i over the block, mode by mode.
    raw = np.array([[U[:, i] @ Lt @ V[:, i] for i in range(7)] for Lt in L])
    np.testing.assert_allclose(sem.mode_strength(L, U, V, BLOCKS)[:, 3], raw[:, 3:].mean(1))


def test_learn_steps_is_the_first_stored_step_at_theta_or_nan():
    steps = [0, 1, 2, 5, 10]
    a = np.array([[0, 0, 0], [.2, .1, 0], [.5, .3, 0], [.9, .49, 0], [1, .7, .1]])
    out = sem.learn_steps(steps, a, theta=0.5)
    assert out[:2].tolist() == [2.0, 10.0] and np.isnan(out[2])


@pytest.mark.parametrize("lr", [2.0, 0.5])
@pytest.mark.parametrize("init", [1e-2, 1e-3, 1e-4])
def test_modes_are_learned_in_the_order_of_their_singular_values(init, lr):
    steps, W, H = gd_ufm(init, lr, int(900 / lr))
    t = sem.learn_steps(steps, sem.mode_strength(W @ H, U, V, BLOCKS))
    assert not np.isnan(t).any()
    assert (np.diff(t) >= 0).all()                    # non-decreasing as σ decreases
    t1, t2, t3 = t[0], t[1], t[3]                     # one per block
    assert t1 < t2 < t3
    assert 0.35 <= t1 / t3 <= 0.5                      # §5 check 4 (σ₃/σ₁ = 0.378 + log term)


def test_learn_steps_scale_with_log_init_and_inverse_lr():
    # §5 check 5: t_k grows ≈ linearly in log(1/init) and in 1/η.
    def t(init, lr):
        steps, W, H = gd_ufm(init, lr, int(1500 / lr))
        return sem.learn_steps(steps, sem.mode_strength(W @ H, U, V, BLOCKS))[[0, 1, 3]]

    a, b, c = t(1e-2, 2.0), t(1e-3, 2.0), t(1e-4, 2.0)
    assert ((c - b) / (b - a) > 0.7).all() and ((c - b) / (b - a) < 1.4).all()
    ratio = t(1e-3, 0.5) / b
    assert ((ratio > 3.5) & (ratio < 4.5)).all()      # 4× smaller η: ~4× later


def test_share_of_norm_would_invert_the_order():
    # The criterion §5 check 4 rules out: σ_k(L_t)/‖L_t‖ reaching half its final share. From
    # small init the first step already has every mode ∝ σ_k, so small modes "finish" first.
    steps, W, H = gd_ufm(1e-3, 2.0, 600)
    a = np.abs(sem.mode_strength(W @ H, U, V, np.arange(7)))[:, [0, 1, 3]]
    share = a / np.linalg.norm(W @ H, axis=(1, 2))[:, None]
    first = np.argmax(share >= share[-1] / 2, axis=0)
    assert first[0] > first[2]


# -- orthant clustering (checks 8, 9, 11) --------------------------------------------------------
def test_coordinates_are_the_factors_of_the_centred_logits():
    rng = np.random.default_rng(2)
    W, H = rng.standard_normal((8, 5)), rng.standard_normal((5, 15))
    Y, X, s = sem.concept_coordinates(W, H, 4)
    Uc, sc, Vct = np.linalg.svd(W @ H - (W @ H).mean(0), full_matrices=False)
    # Up to the sign of each singular pair: |Y| = |U√Σ|, and Y Xᵀ = the rank-4 truncation.
    np.testing.assert_allclose(np.abs(Y), np.abs(Uc[:, :4] * np.sqrt(sc[:4])), atol=1e-10)
    np.testing.assert_allclose(Y @ X.T, (Uc[:, :4] * sc[:4]) @ Vct[:4], atol=1e-10)
    np.testing.assert_allclose(s, sc[:4], atol=1e-12)


def test_target_clusters_are_the_tree():
    # S̄'s own factors, exact zeros off each concept's scope (§3): k = 1 plants | animals; the
    # block σ = √3 taken whole (k = 2 → 3 directions) the four groups; k = 4 → 7 the leaves.
    W_bar, H_bar = U * np.sqrt(SIGMA), (V * np.sqrt(SIGMA)).T
    Y, X, _ = sem.concept_coordinates(W_bar, H_bar, 7)
    k_used, _ = sem.whole_blocks(BLOCKS, 7)
    ids = sem.orthant_clusters(Y, k_used)
    ari = sem.adjusted_rand(ids, TOY.token_label)
    np.testing.assert_allclose(ari[[0, 1, 3], [0, 1, 2]], 1.0)
    # Spectral k-means on the same coordinates with as many clusters: ARI 1 too (check 11).
    n = np.array([len(set(r)) for r in ids])
    km = sem.kmeans_clusters(Y, k_used, n)
    np.testing.assert_allclose(sem.adjusted_rand(km, TOY.token_label)[[0, 1, 3], [0, 1, 2]], 1.0)
    # Poles name the concepts: the root split's poles are the plants and the animals.
    pos, neg = sem.pole_names(Y, TOY.tokens, top=4)
    assert {frozenset(pos[0].split(", ")), frozenset(neg[0].split(", "))} == {
        frozenset({"oak", "pine", "rose", "tulip"}), frozenset({"dog", "cat", "trout", "shark"})}


@pytest.mark.parametrize("init", [1e-2, 1e-3])
def test_trained_clusters_are_the_top_split_and_then_the_second_level(init):
    # Done means: k = 1 = the tree's top split, and with the block σ = √3 taken whole, its
    # second level (ARI 1), at every snapshot from the second block's learning step on while
    # the leaves are unlearned (in the trained L's own basis), and at every one in S̄'s basis.
    keep = (40, 60, 80, 100, 150, 1000, 5000)
    steps, W, H = gd_ufm(init, 2.0, 5000, keep=keep)
    dense, Wd, Hd = gd_ufm(init, 2.0, 200)
    learned = sem.learn_steps(dense, sem.mode_strength(Wd @ Hd, U, V, BLOCKS))[[0, 1, 3]]
    k_used, _ = sem.whole_blocks(BLOCKS, 7)
    for t, Wt, Ht in zip(steps, W, H, strict=True):
        if t < learned[1]:
            continue
        if t <= 100:
            Y, _, _ = sem.concept_coordinates(Wt, Ht, 7)
            ari = sem.adjusted_rand(sem.orthant_clusters(Y[:, :3], k_used[:2]), TOY.token_label)
            assert ari[0, 0] == pytest.approx(1.0) and ari[1, 1] == pytest.approx(1.0), t
        Y, _, _ = sem.concept_coordinates(Wt, Ht, 7, basis=(U, SIGMA, V))
        ari = sem.adjusted_rand(sem.orthant_clusters(Y, k_used), TOY.token_label)
        resolved = [0, 1] + ([2] if t >= learned[2] else [])   # levels whose block is learned
        np.testing.assert_allclose(ari[[0, 1, 3], [0, 1, 2]][resolved], 1.0, err_msg=str(t))


def test_clusters_are_unchanged_by_rotations_and_sign_flips_but_raw_coordinates_are_not():
    # Check 8: W → WQ, H → QᵀH (Q orthogonal) leaves L and so the clusters unchanged; the sign
    # patterns of raw W coordinates change (so the basis step is necessary).
    _, W, H = gd_ufm(1e-3, 2.0, 100, keep=(100,))
    W, H = W[0], H[0]
    Q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((16, 16)))
    k_used, _ = sem.whole_blocks(BLOCKS, 7)
    Y, X, _ = sem.concept_coordinates(W, H, 7)
    Yq, Xq, _ = sem.concept_coordinates(W @ Q, Q.T @ H, 7)
    np.testing.assert_array_equal(sem.orthant_clusters(Yq, k_used), sem.orthant_clusters(Y, k_used))
    np.testing.assert_array_equal(sem.orthant_clusters(Xq, k_used), sem.orthant_clusters(X, k_used))
    flipped = Y * np.array([-1, 1, -1, 1, -1, 1, 1])
    np.testing.assert_array_equal(sem.orthant_clusters(flipped, k_used),
                                  sem.orthant_clusters(Y, k_used))
    raw = sem.orthant_clusters(W[:, :3], k_used[:2])
    raw_q = sem.orthant_clusters((W @ Q)[:, :3], k_used[:2])
    assert not np.array_equal(raw, raw_q)


def test_zero_coordinates_are_their_own_symbol():
    Y = np.array([[1.0, 0.5], [1.0, 1e-12], [-1.0, -0.5], [-1.0, 0.0]])
    np.testing.assert_array_equal(sem.sign_patterns(Y), [[1, 1], [1, 0], [-1, -1], [-1, 0]])
    assert sem.orthant_clusters(Y, np.array([2])).tolist() == [[0, 1, 2, 3]]


# -- the store ------------------------------------------------------------------------------------
def toy_run(init: float = 1e-3, lr: float = 2.0, steps: int = 1000):
    """A training store (W, H, logits per checkpoint) of the GD reference on the toy."""
    import xarray as xr

    keep = tuple(range(0, 201)) + (500, steps)
    kept, W, H = gd_ufm(init, lr, steps, keep=keep)
    return xr.Dataset(
        {"W": (("step", "token", "dim"), W), "H": (("step", "dim", "context"), H),
         "logits": (("step", "token", "context"), W @ H)},
        coords={"step": kept, "token": np.array(TOY.tokens, dtype=object),
                "context": np.array(TOY.contexts, dtype=object)},
        attrs={"model": "ufm", "seed": 0})


def test_semantics_store_on_the_toy(tmp_path):
    from fixture_stores import svm_dataset

    from ntpgeom.metrics.vocabulary import VOCABULARY
    from ntpgeom.store import open_store, write_store
    from ntpgeom.theory.reference import reference_dataset

    # L^mm = S̄ on the toy (semantics.md check 3), so the fixture's L^mm is S̄ itself.
    ds = sem.run_semantics(toy_run(), TOY, reference_dataset(TOY), svm_dataset(TOY, S_BAR, "x"),
                           max_k=7)
    assert list(ds["target"].values) == ["S_bar", "L_mm"]
    for name in ds.data_vars:
        assert ds[name].attrs["long_name"] == VOCABULARY[name][0], name
    t = ds["learn_step"].sel(target="S_bar").values
    assert (np.diff(t) >= 0).all() and t[0] < t[1] < t[3]
    np.testing.assert_array_equal(t, ds["learn_step"].sel(target="L_mm").values)
    np.testing.assert_allclose(ds["sigma"].sel(target="S_bar"), SIGMA, atol=1e-12)
    assert ds["k_used"].values.tolist() == [1, 3, 3, 7, 7, 7, 7]
    assert ds["degenerate"].values.tolist() == [False] + [True] * 6
    diag = ([0, 1, 3], [0, 1, 2])                      # (k, level) pairs: 1–1, 2–2 (block), 4–3
    np.testing.assert_allclose(ds["ari_target_W"].values[:, diag[0], diag[1]], 1.0)
    np.testing.assert_allclose(ds["ari_W_in_S_bar"].values[diag], 1.0)
    assert ds["ari_W"].values[0, 0] == pytest.approx(1.0)
    assert ds["ari_kmeans_W"].values[0, 0] == pytest.approx(1.0)
    # Every checkpoint from the first learning step on has the root split (check 9).
    after = ds["step"].values >= t[0]
    np.testing.assert_allclose(ds["ari_W_steps"].values[after, 0, 0], 1.0)
    # Check 10, broad before fine: the levels are resolved in order.
    r = ds["resolve_step"].values
    assert not np.isnan(r).any() and r[0] < r[1] < r[2]
    poles = {ds["pole_pos_W"].values[0], ds["pole_neg_W"].values[0]}
    assert any("oak" in p for p in poles) and any("dog" in p for p in poles)
    write_store(ds, tmp_path / "s.zarr")
    back = open_store(tmp_path / "s.zarr")
    np.testing.assert_array_equal(back["orthant_W"].values, ds["orthant_W"].values)


def test_figures_and_report_section_render(tmp_path):
    from fixture_stores import svm_dataset

    from ntpgeom.plots.figio import save
    from ntpgeom.plots.numbers import semantics_numbers
    from ntpgeom.plots.report import _semantics_section
    from ntpgeom.plots.semantics_figures import SEMANTICS_FIGURES
    from ntpgeom.store import open_store, write_store
    from ntpgeom.theory.reference import reference_dataset

    ds = sem.run_semantics(toy_run(steps=100), TOY, reference_dataset(TOY),
                           svm_dataset(TOY, S_BAR, "x"), max_k=3)
    write_store(ds, tmp_path / "s.zarr")
    for name in SEMANTICS_FIGURES:
        # as scripts/semantics_figure.py: the store read back, drawn, written
        save(SEMANTICS_FIGURES[name](open_store(tmp_path / "s.zarr")), tmp_path / f"{name}.png",
             tmp_path / f"{name}.pdf")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    num = semantics_numbers(ds)
    assert num["ordered"] and [b["size"] for b in num["blocks"]] == [1, 2, 4]
    # k = 3 (k_used 3): the four mid-level groups, two words each.
    assert {frozenset(c["words"]) for c in num["clusters"]} == {
        frozenset(p) for p in (("oak", "pine"), ("rose", "tulip"), ("cat", "dog"),
                               ("shark", "trout"))}
    page = "".join(_semantics_section("toy/ufm/r", num, [], {}))
    assert "oak, pine" in page or "pine, oak" in page
    assert "non-decreasing as σ decreases: yes" in page


# -- small initialisation through the training engine --------------------------------------------
def engine_run(model: str, init: float, epochs: int, **extra):
    from ntpgeom.train.config import TrainConfig
    from ntpgeom.train.engine import fit_runs

    config = TrainConfig(model=model, d=16, epochs=epochs, optimizer="gd", lr=2.0,
                         weight_decay=0.0, milestones=(), init_scale=init, dtype="float64",
                         device="cpu", threads=1, **extra)
    (traj,) = fit_runs(TOY, [config], steps=list(range(epochs + 1)), progress=False)
    return np.array(traj.step), np.stack(traj.W), np.stack(traj.H)


@pytest.mark.parametrize("init", [1e-2, 1e-3])
def test_engine_small_init_learns_the_modes_in_order(init):
    steps, W, H = engine_run("ufm", init, 100 if init == 1e-2 else 130)
    # init_scale is the RMS of W's and H's entries at step 0 (N(0, init²) draws of 128 and 240).
    assert np.sqrt((W[0] ** 2).mean()) == pytest.approx(init, rel=0.25)
    assert np.sqrt((H[0] ** 2).mean()) == pytest.approx(init, rel=0.25)
    # The engine's GD is the reference GD (float64, from the engine's own initial draw).
    _, W_ref, H_ref = gd_ufm(init, 2.0, len(steps) - 1, start=(W[0], H[0]))
    np.testing.assert_allclose(W @ H, W_ref @ H_ref, rtol=1e-9, atol=1e-12)
    t = sem.learn_steps(steps, sem.mode_strength(W @ H, U, V, BLOCKS))
    assert not np.isnan(t).any() and (np.diff(t) >= 0).all() and t[0] < t[1] < t[3]


def test_transformer_small_init_scales_its_factors():
    import torch

    from ntpgeom.train.config import TrainConfig
    from ntpgeom.train.model import init_model

    config = TrainConfig(model="transformer", d=16, n_layers=1, n_heads=4, init_scale=1e-3,
                         device="cpu", dtype="float64")
    model = init_model(TOY, config, torch.device("cpu"))
    with torch.no_grad():
        W, H = model.W.numpy(), model.H().numpy()
    assert np.sqrt((W ** 2).mean()) == pytest.approx(1e-3, rel=0.25)
    # h = RMSNorm(x)·g with g = init_scale: each context's h has RMS g / √(1 + ε / mean(x²)),
    # ε = 1e-5 against x's mean square of a few 1e-4 here, so within a few % of init_scale.
    np.testing.assert_allclose(np.sqrt((H ** 2).mean(0)), 1e-3, rtol=0.05)
    default = init_model(TOY, TrainConfig(model="transformer", d=16, n_layers=1, n_heads=4,
                                          device="cpu"), torch.device("cpu"))
    assert float(default.norm.weight.detach().mean()) == 1.0   # null keeps llama2.c's draw


def test_init_scale_is_validated():
    from ntpgeom.errors import UserError
    from ntpgeom.train.config import TrainConfig

    with pytest.raises(UserError, match="init_scale"):
        TrainConfig.from_dict({"init_scale": -1.0})
    assert "init_scale" not in TrainConfig().hyperparameters()   # default run unchanged
    assert TrainConfig(init_scale=1e-3).hyperparameters()["init_scale"] == 1e-3


# -- the stage end to end -------------------------------------------------------------------------
@pytest.mark.slow
def test_workflow_semantics_stage(tmp_path):
    """config → table → S̄, L^mm → a small-init UFM run → semantics store and its figures, with
    the run named by its init_scale; the store shows the toy's learning order."""
    from fixture_stores import snakemake

    from ntpgeom.store import open_store, run_identity, solver_name

    (tmp_path / "config.yaml").write_text(
        "datasets:\n"
        "  toy:\n"
        "    source: synthetic\n"
        "    synthetic: {kind: hierarchy}\n"
        "    semantics: {max_k: 3}\n"
        "svm: {solvers: [admm]}\n"
        "train: {models: [ufm], d: [16], init_scale: [1.0e-2], optimizer: gd, lr: 2.0,\n"
        "        weight_decay: 0.0, milestones: [], epochs: 150, checkpoints_per_decade: 30,\n"
        "        device: cpu}\n")
    run = "results/toy/semantics/ufm/d16-init0.01-seed0.zarr"
    figs = [f"results/toy/figures/semantics/ufm/d16-init0.01-seed0/{n}.png"
            for n in ("strength", "order", "clusters")]
    done = snakemake(tmp_path, run, *figs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ds = open_store(tmp_path / run)
    t = ds["learn_step"].sel(target="S_bar").values
    assert (np.diff(t) >= 0).all() and t[0] < t[1] < t[3]
    assert ds["ari_W"].values[0, 0] == pytest.approx(1.0)
    assert all((tmp_path / f).stat().st_size > 0 for f in figs)
    # Each store records the identity its path spells, and the names ran under (figures and the
    # report read these, not paths).
    identity = ("toy", "ufm", "d16-init0.01-seed0")
    train = open_store(tmp_path / "results/toy/train/ufm/d16-init0.01-seed0.zarr")
    assert run_identity(train) == identity
    assert (ds.attrs["dataset"], ds.attrs["model"], ds.attrs["run"]) == identity
    assert solver_name(open_store(tmp_path / "results/toy/svm/admm.zarr")) == "admm"
    assert open_store(tmp_path / "results/toy/table.zarr").attrs["dataset"] == "toy"


# -- semantics.md checks 2 and 3 on the toy --------------------------------------------------------
def test_initial_gradient_is_minus_s_bar_over_n():
    # Check 2: each support pair once ⇒ ∇_L CE(0) = −S̄/n exactly (torch autograd of the CE).
    import torch

    L = torch.zeros(TOY.V, TOY.m, dtype=torch.float64, requires_grad=True)
    P, pi = torch.from_numpy(TOY.P()), torch.from_numpy(TOY.pi)
    ce = -(pi * (P * torch.log_softmax(L, dim=0)).sum(0)).sum()
    ce.backward()
    np.testing.assert_allclose(L.grad.numpy(), -S_BAR / TOY.n, atol=1e-15)


def test_l_mm_is_s_bar_on_the_toy():
    # Check 3: the certified ADMM solution has ‖L^mm‖_* = ‖S̄‖_* = √7 + 2√3 + 4 = 10.10985 and
    # the same direction (normalised distance < 1e-6).
    from ntpgeom.theory.reference import reldir
    from ntpgeom.theory.svm import solve

    ds = solve(TOY, solver="admm", device="cpu")
    L = ds["L_mm"].transpose("token", "context").values
    assert np.linalg.svd(L, compute_uv=False).sum() == pytest.approx(7 ** .5 + 2 * 3 ** .5 + 4,
                                                                     rel=1e-6)
    assert reldir(L, S_BAR) < 1e-6
