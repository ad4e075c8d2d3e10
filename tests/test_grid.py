"""Grid expansion, point parameters, count reweighting, training points through the engine and the
aggregate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.errors import UserError
from ntpgeom.metrics.core import rank_limited_distance
from ntpgeom.studies.grid import GridPoint, GridSpec, batch_key, batch_names, parse_grid
from ntpgeom.studies.grid_points import (
    aggregate,
    batch_dataset,
    incomplete_batch,
    max_margin_logits,
    point_config,
    reweight_counts,
    run_points,
    train_points,
)
from ntpgeom.theory.reference import centered_support
from ntpgeom.train.config import checkpoint_steps
from ntpgeom.train.engine import fit, fit_runs

DATASETS = ["k5", "other"]


def spec(**entry):
    return parse_grid("g", {"axes": {"d": [2, 8], "seed": [0, 1, 2]}, **entry}, datasets=DATASETS)


# -- expansion ----------------------------------------------------------------------------------
def test_patterns_match_snakemake_paramspace():
    import pandas as pd
    from snakemake.utils import Paramspace

    # Paramspace itself cannot take an axis named `lambda`: it reads rows with itertuples, which
    # renames Python keywords (`_0~0.0`); one reason the grid builds its own patterns.
    s = parse_grid("g", {"axes": {"lr": [0.5, 1e-05, 0.001], "optimizer": ["gd", "adam"]}},
                   datasets=DATASETS)
    rows = [dict(zip(s.axes, v, strict=True)) for v in
            __import__("itertools").product(*s.axes.values())]
    ps = Paramspace(pd.DataFrame(rows))
    assert list(s.patterns()) == list(ps.instance_patterns)
    assert s.size == 6


def test_point_merges_defaults_fixed_axes():
    s = spec(fixed={"epochs": 50, "dataset": "other"})
    p = s.point("d~8/seed~2")
    assert (p.d, p.seed, p.epochs, p.dataset, p.optimizer) == (8, 2, 50, "other", "gd")
    assert s.point("d~2/seed~0").dataset == "other"
    assert spec().point("d~2/seed~0").dataset == "k5"  # the first dataset by default
    # The rest are GridPoint's defaults; its settings are the jobs' params, in field order.
    assert dataclasses.replace(p, d=16, seed=0, epochs=2000, dataset=None) == GridPoint()
    assert list(p.to_dict()) == ["dataset", "model", "d", "optimizer", "lr", "lambda", "seed",
                                 "epochs", "checkpoints", "count_model", "zipf_a", "solver",
                                 "rank_rtol"]
    with pytest.raises(UserError, match=r"grids.g: no point 'd~3/seed~0'"):
        s.point("d~3/seed~0")


def test_thousand_points_expand_fast():
    import time

    s = parse_grid("big", {"axes": {"d": list(range(1, 11)), "seed": list(range(10)),
                                    "lr": [0.1 * k for k in range(1, 11)]}}, datasets=DATASETS)
    start = time.perf_counter()
    patterns = list(s.patterns())
    s.point(patterns[-1])
    assert len(patterns) == 1000 and len(set(patterns)) == 1000
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(("entry", "match"), [
    ({"axes": {"dd": [1]}}, r"grids.g.axes.dd: unknown axis 'dd'; choose from dataset, model"),
    ({"axes": {"d": []}}, r"grids.g.axes.d: needs a non-empty list of values"),
    ({"axes": {"d": 4}}, r"grids.g.axes.d: needs a non-empty list"),
    ({"axes": {}}, r"grids.g.axes: a grid needs at least one axis"),
    ({"axes": {"d": [4, 4]}}, r"grids.g.axes.d: values must be distinct"),
    ({"axes": {"d": [0]}}, r"grids.g.axes.d: d must be at least 1"),
    ({"axes": {"d": [True]}}, r"grids.g.axes.d: d must be int"),
    ({"axes": {"optimizer": ["sgdd"]}}, r"unknown optimizer 'sgdd'; choose from gd, adam, adamw"),
    ({"axes": {"dataset": ["nope"]}}, r"unknown dataset 'nope'; choose from k5, other"),
    ({"axes": {"lambda": [-1.0]}}, r"lambda must be >= 0"),
    ({"axes": {"solver": ["a/b"]}}, r"may not be empty or contain '/'"),
    ({"axes": {"d": [4]}, "fixed": {"d": 3}}, r"grids.g.fixed.d: 'd' is also an axis"),
    ({"axes": {"d": [4]}, "fixed": {"wd": 3}}, r"grids.g.fixed.wd: unknown setting 'wd'"),
    ({"axes": {"d": [4]}, "figure": "bars"}, r"grids.g.figure: unknown figure 'bars'"),
    ({"axes": {"d": [4]}, "axis": {}}, r"grids.g: unknown setting 'axis'"),
])
def test_bad_grid_is_one_line_naming_the_setting(entry, match):
    with pytest.raises(UserError, match=match) as err:
        parse_grid("g", entry, datasets=DATASETS)
    assert "\n" not in str(err.value)


def test_batch_key_groups_equal_shapes():
    s = parse_grid("g", {"axes": {"d": [2, 4], "seed": [0, 1], "lr": [0.1, 0.2]}},
                   datasets=DATASETS)
    keys = {batch_key(s.point(p)) for p in s.patterns()}
    assert len(keys) == 2  # seeds and step sizes batch together; d does not


# -- tables and L^mm ----------------------------------------------------------------------------
def test_reweight_counts_keeps_supports_and_L_mm():  # noqa: N802
    t = ksubset_table(6, 2)
    for model in ("uniform", "zipf"):
        r = reweight_counts(t, model, zipf_a=1.5)
        np.testing.assert_array_equal(r.S(), t.S())
        np.testing.assert_array_equal(max_margin_logits(r, "closed_form"),
                                      max_margin_logits(t, "closed_form"))
    u = reweight_counts(t, "uniform")
    np.testing.assert_allclose(u.P()[u.S()], 0.5)  # two tokens per support, equal counts
    z = reweight_counts(random_table(8, 12, seed=1), "zipf", zipf_a=1.0)
    popularity = np.bincount(z.indices, minlength=z.V)
    top = int(np.argmax(popularity))
    assert z.pair_count[z.indices == top].min() == 1000  # the most popular token: rank 1
    assert reweight_counts(t, "table") is t
    with pytest.raises(UserError, match="count_model: unknown 'zip'"):
        reweight_counts(t, "zip")


def test_closed_form_needs_a_ksubset_table():
    with pytest.raises(UserError, match="solver: closed_form needs a k-subset table"):
        max_margin_logits(random_table(6, 5), "closed_form")
    with pytest.raises(UserError, match="needs the svm stage's store"):
        max_margin_logits(random_table(6, 5), "scs")


def test_svm_L_mm_comes_from_the_opened_store():  # noqa: N802
    t = random_table(6, 5)
    L = np.arange(t.V * t.m, dtype=float).reshape(t.V, t.m)
    svm = xr.Dataset({"L_mm": (("context", "token"), L.T)})  # any dim order: read as (V, m)
    np.testing.assert_array_equal(max_margin_logits(t, "scs", svm), L)
    with pytest.raises(UserError, match=r"results/t/svm/scs.zarr: L_mm is \(5, 5\), the table"):
        max_margin_logits(t, "scs", svm.isel(token=slice(0, 5)),
                          where="results/t/svm/scs.zarr")


def test_rank_limited_distance_is_eckart_young():
    rng = np.random.default_rng(0)
    L = rng.normal(size=(7, 9))
    U, s, Vt = np.linalg.svd(L, full_matrices=False)
    for d in (1, 3, 7):
        Ld = (U[:, :d] * s[:d]) @ Vt[:d]
        want = np.linalg.norm(Ld / np.linalg.norm(Ld) - L / np.linalg.norm(L))
        assert rank_limited_distance(s, d) == pytest.approx(want, rel=1e-10)
    assert rank_limited_distance(s, 20) == 0.0


# -- training points -------------------------------------------------------------------------
def _point(**kw):
    base = parse_grid("g", {"axes": {"seed": [0]}}, datasets=["k5"]).point("seed~0")
    return GridPoint.from_dict({**base.to_dict(), **kw})


POINTS = [_point(seed=0, lr=0.5, optimizer="gd", epochs=30, checkpoints=6),
          _point(seed=1, lr=0.3, optimizer="gd", epochs=30, checkpoints=6, **{"lambda": 0.01}),
          _point(seed=2, lr=0.01, optimizer="adam", epochs=30, checkpoints=6,
                 **{"lambda": 0.001}),
          _point(seed=3, lr=0.01, optimizer="adamw", epochs=30, checkpoints=6,
                 **{"lambda": 0.1})]


def _same(a, b):
    assert a.step == b.step
    for name in ("metrics", "W", "H"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            assert torch.equal(torch.from_numpy(x), torch.from_numpy(y)), name


def test_batched_points_equal_the_training_stage_runs_bit_for_bit():
    """B points of mixed optimizer, LR, λ and seed in one vmap-ed step: each equals, bit for bit,
    the training stage's run of its settings (same initial draw, same trajectory), and the
    module backend (autograd through nn.Module, another reduction order) to float64 rounding."""
    t = ksubset_table(5, 2)
    batched = train_points(t, POINTS, device="cpu")
    steps = checkpoint_steps(30, count=6)
    for point, run in zip(POINTS, batched, strict=True):
        config = point_config(point, device="cpu")
        assert config.dtype == "float64" and config.milestones == ()
        _same(run, fit(t, config, progress=False, steps=steps))  # the training stage's engine
        (module,) = fit_runs(t, [config], progress=False, steps=steps, batched=False)
        np.testing.assert_allclose(run.W[-1], module.W[-1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(run.H[-1], module.H[-1], rtol=1e-12, atol=1e-14)


def test_grid_step_is_the_closed_form_gradient_step():
    """Independent reference of the math: one GD step of a point with ridge λ is
    W ← W − η(∇_L Hᵀ + 2λW), H ← H − η(Wᵀ∇_L + 2λH), ∇_L = (softmax(L) − P) diag(π) (NumPy),
    and the recorded loss is the paper code's per-sample mean CE plus λ(‖W‖² + ‖H‖²)."""
    from scipy.special import log_softmax, softmax

    t = ksubset_table(5, 2)
    lr, lam = 0.4, 0.03
    (run,) = train_points(t, [_point(lr=lr, optimizer="gd", epochs=1, checkpoints=2,
                                     **{"lambda": lam})], device="cpu")
    W0, H0 = run.W[0], run.H[0]
    L = W0 @ H0
    G = (softmax(L, axis=0) - t.P()) * t.pi
    np.testing.assert_allclose(run.W[1], W0 - lr * (G @ H0.T + 2 * lam * W0), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(run.H[1], H0 - lr * (W0.T @ G + 2 * lam * H0), rtol=1e-13,
                               atol=1e-15)
    rows, tokens = np.repeat(t.column, t.pair_count), np.repeat(t.indices, t.pair_count)
    per_sample = -log_softmax(L, axis=0)[tokens, rows].mean()  # the paper code's loss
    (ds,) = run_points(t, centered_support(t.S()), [_point(lr=lr, optimizer="gd", epochs=1,
                                                          checkpoints=2, **{"lambda": lam})])
    ridge = lam * ((W0 ** 2).sum() + (H0 ** 2).sum())
    assert ds["loss"].values[0] == pytest.approx(per_sample + ridge, rel=1e-13)


def test_batch_of_one_equals_its_row_in_a_batch():
    t = ksubset_table(5, 2)
    pts = [_point(seed=s, lr=0.5, d=3, epochs=20, checkpoints=2) for s in range(3)]
    together = train_points(t, pts, device="cpu")
    alone = train_points(t, pts[1:2], device="cpu")
    np.testing.assert_allclose(together[1].W, alone[0].W, rtol=1e-12)
    _same(together[1], alone[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_equals_eager():
    from ntpgeom.train.config import TrainConfig

    t = ksubset_table(6, 2)
    configs = [TrainConfig(d=8, epochs=50, optimizer="adam", lr=0.01, weight_decay=0.0,
                           milestones=(), seed=s, device="cuda", dtype="float64")
               for s in range(8)]
    graph = fit_runs(t, configs, progress=False)
    eager = fit_runs(t, [TrainConfig(**{**c.to_dict(), "graph": "off", "betas": c.betas,
                                        "milestones": ()}) for c in configs], progress=False)
    assert graph[0].graph and not eager[0].graph
    for g, e in zip(graph, eager, strict=True):
        np.testing.assert_allclose(g.W[-1], e.W[-1], rtol=1e-10)


def test_checkpoint_steps():
    s = checkpoint_steps(1000, count=5)
    assert s[0] == 0 and s[-1] == 1000 and (np.diff(s) > 0).all()
    assert list(checkpoint_steps(1, count=10)) == [0, 1]


# -- points and the aggregate -------------------------------------------------------------------
def _run_grid(tmp_path, s: GridSpec):
    """Every batch of the grid (batch_names) trained and written as the grid_batch rule does."""
    t = ksubset_table(5, 2)
    L_mm = centered_support(t.S())
    from ntpgeom.store import write_store

    stores = {}
    for name, patterns in batch_names(s).items():
        points = run_points(t, L_mm, [s.point(p) for p in patterns])
        stores[name] = write_store(batch_dataset(points, patterns), tmp_path / f"{name}.zarr")
    return stores


def _aggregate(s: GridSpec, stores):
    """aggregate() of batch store paths as scripts/grid_aggregate.py calls it: each store refused
    unless complete (zarr.json), then opened; the paths name the batches in error messages."""
    from ntpgeom.store import open_store

    batches = {}
    for name, path in stores.items():
        if not (path / "zarr.json").is_file():
            raise incomplete_batch(s, path)
        batches[name] = open_store(path)
    return aggregate(s, batches, where=stores)


def test_aggregate_has_axes_as_dims_in_declared_order(tmp_path):
    s = parse_grid("g", {"axes": {"d": [8, 2], "optimizer": ["gd", "adam"]},
                         "fixed": {"epochs": 20, "checkpoints": 5, "lr": 0.05}},
                   datasets=["k5"])
    stores = _run_grid(tmp_path, s)
    agg = _aggregate(s, stores)
    assert list(agg["ce_minus_entropy"].dims) == ["d", "optimizer", "step"]
    assert list(agg["d"].values) == [8, 2] and list(agg["optimizer"].values) == ["gd", "adam"]
    from ntpgeom.store import open_store

    one = open_store(stores["d~2/optimizer~adam"]).sel(point="d~2/optimizer~adam")
    np.testing.assert_array_equal(agg["ce_minus_entropy"].sel(d=2, optimizer="adam").values,
                                  one["ce_minus_entropy"].values)
    # S̄ of 2-subsets of 5 tokens has rank 4
    assert agg["target_rank"].sel(d=2, optimizer="gd", target="L_mm").item() == 4
    assert agg.attrs["grid"] == "g"


def test_rank_rtol_of_a_grid_reaches_target_rank():
    """grids.<g>.fixed.rank_rtol cuts the targets' ranks, as geometry.rank_rtol cuts rank(L_k)."""
    t = random_table(V=6, m=12, support_size=3, n=200, seed=1)
    L_mm = centered_support(t.S())
    sigma = np.linalg.svd(L_mm, compute_uv=False)
    rtol = float(np.sqrt(sigma[0] * sigma[-2]) / sigma[0])  # between σ_{r-1} and σ_1
    want = int((sigma > rtol * sigma[0]).sum())
    assert 0 < want < int((sigma > 1e-6 * sigma[0]).sum())
    s = parse_grid("g", {"axes": {"d": [2]}, "fixed": {"epochs": 2, "checkpoints": 2,
                                                        "rank_rtol": rtol}}, datasets=["t"])
    (ds,) = run_points(t, L_mm, [s.point("d~2")])
    assert ds["target_rank"].sel(target="L_mm").item() == want
    assert ds.attrs["rank_rtol"] == rtol
    (default,) = run_points(t, L_mm, [parse_grid("g", {"axes": {"d": [2]}, "fixed": {
        "epochs": 2, "checkpoints": 2}}, datasets=["t"]).point("d~2")])
    assert default["target_rank"].sel(target="L_mm").item() == int((sigma > 1e-6 * sigma[0]).sum())
    with pytest.raises(UserError, match="grids.g.fixed.rank_rtol: rank_rtol must be positive"):
        parse_grid("g", {"axes": {"d": [2]}, "fixed": {"rank_rtol": 0.0}}, datasets=["t"])


def test_aggregate_of_a_single_axis(tmp_path):
    s = parse_grid("g", {"axes": {"d": [4, 2]}, "fixed": {"epochs": 5, "checkpoints": 3}},
                   datasets=["k5"])
    agg = _aggregate(s, _run_grid(tmp_path, s))
    assert list(agg["loss"].dims) == ["d", "step"] and list(agg["d"].values) == [4, 2]
    assert "point" not in agg.dims and "point" not in agg.coords


def test_batches_group_equal_shapes_in_order():
    s = parse_grid("g", {"axes": {"d": [2, 4], "seed": [0, 1, 2]}, "batch": 2},
                   datasets=DATASETS)
    assert s.batches() == [["d~2/seed~0", "d~2/seed~1"], ["d~2/seed~2"],
                           ["d~4/seed~0", "d~4/seed~1"], ["d~4/seed~2"]]
    with pytest.raises(UserError, match=r"grids.g.batch: must be an integer >= 1"):
        parse_grid("g", {"axes": {"d": [2]}, "batch": 0}, datasets=DATASETS)


def test_aggregate_never_takes_a_half_written_point(tmp_path):
    s = parse_grid("g", {"axes": {"seed": [0, 1]}, "fixed": {"epochs": 5, "checkpoints": 3}},
                   datasets=["k5"])
    stores = _run_grid(tmp_path, s)
    (stores["seed~1"] / "zarr.json").unlink()  # as a write killed half-way would leave it
    with pytest.raises(UserError, match=r"batch store .*seed~1.zarr is incomplete"):
        _aggregate(s, stores)
    with pytest.raises(UserError, match="1 batches have no store"):
        _aggregate(s, {"seed~0": stores["seed~0"]})


def test_a_batch_of_several_points_aggregates_as_points_alone(tmp_path):
    """batch: 3 → batches b0, b1 (equal shapes only) whose stores hold their points on dim
    `point`; the aggregate equals that of the same grid trained one point per batch, bit for bit
    (UFM points train in the engine's vmap backend either way)."""
    axes = {"d": [2, 4], "seed": [0, 1]}
    fixed = {"epochs": 10, "checkpoints": 3, "lr": 0.05}
    one = parse_grid("g", {"axes": axes, "fixed": fixed}, datasets=["k5"])
    three = parse_grid("g", {"axes": axes, "fixed": fixed, "batch": 3}, datasets=["k5"])
    assert batch_names(three) == {"b0": ["d~2/seed~0", "d~2/seed~1"],
                                  "b1": ["d~4/seed~0", "d~4/seed~1"]}
    assert batch_names(one) == {p: [p] for p in one.patterns()}
    alone = _aggregate(one, _run_grid(tmp_path / "one", one))
    together = _aggregate(three, _run_grid(tmp_path / "three", three))
    xr.testing.assert_identical(alone.drop_attrs(), together.drop_attrs())
    stores = _run_grid(tmp_path / "swap", three)
    stores["b0"], stores["b1"] = stores["b1"], stores["b0"]
    with pytest.raises(UserError, match="holds points"):
        _aggregate(three, stores)
    from ntpgeom.store import open_store

    opened = {name: open_store(path) for name, path in stores.items()}
    with pytest.raises(UserError, match="batch store 'b0' holds points"):
        aggregate(three, opened)  # no paths given: the batch is named


def test_transformer_points_train_through_the_training_stage():
    from ntpgeom.train.config import TrainConfig

    t = ksubset_table(5, 2)
    s = parse_grid("g", {"axes": {"model": ["transformer"]},
                         "fixed": {"d": 12, "epochs": 3, "lr": 0.01, "optimizer": "adam",
                                   "lambda": 0.01}}, datasets=["k5"])
    (ds,) = run_points(t, centered_support(t.S()), [s.point("model~transformer")])
    cfg = TrainConfig(model="transformer", d=12, epochs=3, optimizer="adam", lr=0.01,
                      weight_decay=0.0, ridge=0.01, milestones=(), seed=0, device="cpu",
                      dtype="float64")
    traj = fit(t, cfg, progress=False)
    want = np.stack(traj.W)[-1] @ np.stack(traj.H)[-1]
    np.testing.assert_allclose(ds["L_final"].values, want, rtol=1e-5)
    np.testing.assert_array_equal(ds["L_final"].values, want)  # the same run, bit for bit
    assert np.isfinite(ds["ce_minus_entropy"]).all() and ds["step"].values[-1] == 3


# -- the workflow -------------------------------------------------------------------------------
def _dry_jobs(workdir, *extra):
    from gridrun import snakemake

    proc, _ = snakemake(workdir, "-n", "--cores", "1", "results/grid/tiny.zarr", "--configfile",
                        "tests/configs/grid_tiny.yaml", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_workflow_reruns_exactly_the_changed_points(tmp_path):
    import yaml
    from gridrun import project_copy, snakemake

    work = project_copy(tmp_path)
    proc, _ = snakemake(work, "--cores", "2", "results/grid/figures/tiny.png", "--configfile",
                        "tests/configs/grid_tiny.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "results/grid/figures/tiny.png").stat().st_size > 10_000
    assert _dry_jobs(work) == {}  # nothing to do

    cfg_path = work / "tests/configs/grid_tiny.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    # sort_keys=False: a grid's axes keep their declared order (the aggregate's dimension order).
    cfg["grids"]["tiny"]["axes"]["d"] = [2, 4]  # d=2 points stay, d=4 points are new
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _dry_jobs(work)["grid_batch"] == 2

    cfg["grids"]["tiny"]["axes"]["d"] = [2, 8]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _dry_jobs(work) == {}
    # an edit of the package code the points import reruns every point
    with open(work / "src/ntpgeom/train/engine.py", "a") as f:
        f.write("\n# edited\n")
    assert _dry_jobs(work)["grid_batch"] == 4


@pytest.mark.slow
def test_workflow_bad_grid_is_one_line(tmp_path):
    import yaml
    from gridrun import project_copy, snakemake

    work = project_copy(tmp_path)
    bad = {"grids": {"g": {"axes": {"dd": [1, 2]}}}}
    (work / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc, _ = snakemake(work, "-n", "--cores", "1", "--configfile", "bad.yaml")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config: grids.g.axes.dd: unknown axis 'dd'; choose from dataset, model" in out


def test_metrics_against_closed_forms():
    from scipy.special import log_softmax

    from ntpgeom.metrics.trajectory import run_metrics
    from ntpgeom.theory.reference import in_support_logits

    t = ksubset_table(6, 2)
    S, P, pi = t.S(), t.P(), t.pi
    L_star, S_bar = in_support_logits(S, P), centered_support(S)
    L = L_star + 5.0 * S_bar  # S̄ is constant on each support, so P_F(L) = L*
    run = {"step": np.array([7]), "loss": np.array([0.0]), "W": L[None], "H": np.eye(t.m)[None]}
    m = run_metrics(run, S=S, P=P, pi=pi, entropy=t.entropy, L_star=L_star,
                    targets={"L_mm": S_bar, "S_bar": S_bar})
    ce = -(P * pi[None, :] * np.where(S, log_softmax(L, axis=0), 0.0)).sum()
    assert m["ce_minus_entropy"][0] == pytest.approx(ce - t.entropy, rel=1e-12)
    assert m["in_support_error"][0] == pytest.approx(0.0, abs=1e-12)
    want = np.linalg.norm(L / np.linalg.norm(L) - S_bar / np.linalg.norm(S_bar))
    assert m["dist_L"][0, 0] == pytest.approx(want, rel=1e-12)
    assert m["dist_L"][0, 1] == pytest.approx(want, rel=1e-12)
    assert m["norm_H"][0] == pytest.approx(np.sqrt(t.m))
    np.testing.assert_allclose(m["L_final"], L)
