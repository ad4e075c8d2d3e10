"""The one-hot regime (semantics.md §6): the attribute toy's table, and its metrics against
closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from ntpgeom.data.build import make_table
from ntpgeom.data.synthetic import attribute_table
from ntpgeom.data.table import load
from ntpgeom.errors import UserError


def test_attribute_table_is_one_hot_with_its_attributes():
    t = make_table({"source": "synthetic", "synthetic": {"kind": "attributes",
                                                         "attribute_sizes": [3, 4]}}, {})
    assert (t.m, t.V, t.context_length) == (12, 12, 2)
    # k = 1 and the token order is the context order: S = I, balanced π, entropy 0.
    np.testing.assert_array_equal(t.S(), np.eye(12, dtype=bool))
    np.testing.assert_array_equal(t.pi, np.full(12, 1 / 12))
    assert t.entropy == 0.0
    assert t.attributes == ["colour", "shape"]
    np.testing.assert_array_equal(t.context_label, list(itertools.product(range(3), range(4))))
    # The context's words are its attribute values: context j is read from its labels.
    assert t.contexts[0] == "red circle" and t.contexts[5] == "blue square"
    # Contexts sharing an attribute share an input token, and only those.
    for i, j in itertools.combinations(range(12), 2):
        shares = (t.context_label[i] == t.context_label[j]).any()
        assert shares == bool(set(t.context_ids[i]) & set(t.context_ids[j]))


def test_context_label_round_trips_and_is_validated(tmp_path):
    t = attribute_table([2, 2, 3])
    back = load(t.save(tmp_path / "table.zarr"))
    np.testing.assert_array_equal(back.context_label, t.context_label)
    assert back.attributes == ["colour", "shape", "size"]
    ds = xr.open_zarr(tmp_path / "table.zarr", consolidated=False)
    assert ds["context_label"].dims == ("context", "attribute")
    # A table without labels has none (optional variable).
    from ntpgeom.data.synthetic import ksubset_table
    plain = load(ksubset_table(5, 1).save(tmp_path / "plain.zarr"))
    assert plain.context_label is None and plain.attributes == []
    # A corrupted label is refused in one line naming the variable.
    from ntpgeom.data.table import validate_dataset
    bad = ds.load().copy()
    bad["context_label"] = bad["context_label"] * 0 - 1
    with pytest.raises(UserError, match="context_label"):
        validate_dataset(bad, "t.zarr")
    with pytest.raises(UserError, match="context_label.*dims"):
        validate_dataset(bad.assign(context_label=(("attribute", "context"),
                                                   ds["context_label"].values.T)), "t.zarr")


@pytest.mark.parametrize("sizes", [[1, 4], [9], [2, 2, 2, 2, 2]])
def test_bad_attribute_sizes_are_user_errors(sizes):
    with pytest.raises(UserError, match="synthetic.attribute_sizes"):
        attribute_table(sizes)


# -- metrics --------------------------------------------------------------------------------------
from ntpgeom.metrics.chance import onehot_chance  # noqa: E402
from ntpgeom.metrics.core import attribute_gap, etf_distance  # noqa: E402


def test_etf_distance_is_zero_on_a_rotated_shifted_simplex_etf():
    rng = np.random.default_rng(0)
    m, d = 7, 10
    E = np.eye(m) - 1 / m                            # columns: a simplex ETF in ℝ^m
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    H = 3.0 * Q[:, :m] @ E + rng.standard_normal((d, 1))   # rotated, scaled, common mean added
    assert etf_distance(H) == pytest.approx(0.0, abs=1e-12)
    # Orthonormal contexts centre to the ETF too; and the gap of an ETF is 0 (all cosines equal).
    assert etf_distance(np.eye(m)) == pytest.approx(0.0, abs=1e-12)
    labels = attribute_table([2, 4]).context_label
    assert attribute_gap(np.eye(8) - 1 / 8, labels) == pytest.approx(0.0, abs=1e-12)


def test_etf_distance_closed_form_of_two_antipodal_clusters():
    # h = (1, 1, −1, −1) in d = 1: G = vvᵀ with ‖G‖ = 4 and ⟨G, E⟩ = vᵀEv = 4, ‖E‖ = √3, so the
    # distance is √(2 − 2/√3).
    assert etf_distance(np.array([[1.0, 1.0, -1.0, -1.0]])) == pytest.approx(
        np.sqrt(2 - 2 / np.sqrt(3)), rel=1e-12)
    assert np.isnan(etf_distance(np.ones((3, 4))))  # all contexts equal: no Gram direction


def test_attribute_gap_of_summed_attribute_embeddings_is_one_half():
    # h = e_colour + e_shape: pairs sharing one attribute have cosine 1/2, pairs sharing none 0.
    t = attribute_table([3, 4])
    lab = t.context_label
    H = np.zeros((7, t.m))
    H[lab[:, 0], np.arange(t.m)] = 1.0
    H[3 + lab[:, 1], np.arange(t.m)] = 1.0
    assert attribute_gap(H, lab) == pytest.approx(0.5, abs=1e-12)
    assert attribute_gap(-H, lab) == pytest.approx(0.5, abs=1e-12)   # cosines are sign-free
    # Brute force over pairs for a random H.
    rng = np.random.default_rng(1)
    R = rng.standard_normal((5, t.m))
    cos = lambda i, j: R[:, i] @ R[:, j] / np.linalg.norm(R[:, i]) / np.linalg.norm(R[:, j])  # noqa: E731
    share = [cos(i, j) for i, j in itertools.combinations(range(t.m), 2)
             if (lab[i] == lab[j]).any()]
    none = [cos(i, j) for i, j in itertools.combinations(range(t.m), 2)
            if not (lab[i] == lab[j]).any()]
    assert attribute_gap(R, lab) == pytest.approx(np.mean(share) - np.mean(none), rel=1e-12)
    assert np.isnan(attribute_gap(R[:, :4], lab[:4]))   # one colour: every pair shares it


def test_gap_chance_band_matches_its_closed_form():
    lab = attribute_table([4, 4]).context_label
    share = sum((lab[i] == lab[j]).any() for i, j in itertools.combinations(range(16), 2))
    none = 120 - share                                       # 48 and 72 pairs
    d = 32
    out = onehot_chance(lab, d, draws=4000)
    sigma = np.sqrt((1 / share + 1 / none) / d)
    # 4000 draws: the σ estimate's relative standard error is ≈ 1/√(2·4000) ≈ 1.1 %; the mean's
    # standard error σ/√4000 ≈ 0.0005.
    assert out["attribute_gap_chance_std"] == pytest.approx(sigma, rel=0.05)
    assert abs(out["attribute_gap_chance"]) < 4 * sigma / np.sqrt(4000)
    assert 0 < out["etf_distance_chance"] < 2


# -- in the geometry store ------------------------------------------------------------------------
def test_geometry_store_has_the_one_hot_metrics_and_the_ufm_control_stays_in_its_band():
    """On the predicted end state (ρ L^mm = ρ S̄, factored into d dims) the ETF distance and the
    gap are 0; a free-H UFM trained on the toy keeps its gap within ±3σ of chance (semantics.md
    check 16). (Without a ridge its Gram stays ≈ 0.5 from the ETF after 3000 steps: d > m
    leaves the initialization's imprint, removed only at the max-margin rate 1/log t.)"""
    from fixture_stores import svm_dataset, train_ufm
    from test_geometry import fake_run

    from ntpgeom.metrics.geometry import run_geometry
    from ntpgeom.theory.reference import centered_support, reference_dataset

    t = attribute_table([4, 4])
    L_mm = centered_support(t.S())
    ref, svm = reference_dataset(t), {"closed": svm_dataset(t, L_mm, "closed")}
    ds = run_geometry(fake_run(t, L_mm, d=20), t, ref, svm, knn_k=3)
    np.testing.assert_allclose(ds["etf_distance"], 0, atol=1e-7)
    np.testing.assert_allclose(ds["attribute_gap"], 0, atol=1e-7)
    assert ds["attribute_gap"].dims == ("step",) and ds["attribute_gap_chance_std"].ndim == 0
    assert ds["attribute_gap"].attrs["units"] == "1"

    ufm = run_geometry(train_ufm(t, d=32, steps=3000), t, ref, svm, knn_k=3)
    band = 3 * float(ufm["attribute_gap_chance_std"])
    gap = ufm["attribute_gap"].values
    assert np.all(np.abs(gap - float(ufm["attribute_gap_chance"])) < band), (gap, band)
    assert float(ufm["ce_minus_entropy"][-1]) < 1e-4      # trained: a real control


# -- every layer ----------------------------------------------------------------------------------
def layered_run(t, L_mm, d=20):
    """fake_run's end-state checkpoints with an ``H_layer`` of 3 depths: random, half-way, and
    the final H itself (as a transformer's norm output is its H)."""
    from test_geometry import fake_run

    run = fake_run(t, L_mm, d=d)
    H = run["H"].values                                    # (step, d, m)
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(H.shape)
    HL = np.stack([noise, 0.5 * (noise + H), H], axis=1)   # (step, layer, d, m)
    return run.assign(H_layer=(("step", "layer", "dim", "context"), HL)).assign_coords(
        layer=np.array(["embed", "block1", "norm"], dtype=object))


def test_layer_metrics_last_layer_is_the_final_metric_and_figures_draw(tmp_path):
    from fixture_stores import svm_dataset
    from matplotlib.image import imread

    from ntpgeom.metrics.geometry import run_geometry
    from ntpgeom.plots.bundle import Bundle, Run
    from ntpgeom.plots.figio import save
    from ntpgeom.plots.figures import render
    from ntpgeom.theory.reference import centered_support, reference_dataset

    t = attribute_table([3, 3])
    L_mm = centered_support(t.S())
    ds = run_geometry(layered_run(t, L_mm), t, reference_dataset(t),
                      {"closed": svm_dataset(t, L_mm, "closed")}, knn_k=3)
    assert ds["corr_cos_H_layer"].dims == ("step", "layer", "target")
    assert list(ds["layer"].values) == ["embed", "block1", "norm"]
    for var in ("dist_gram_H", "corr_cos_H", "attribute_gap", "etf_distance"):
        np.testing.assert_array_equal(ds[f"{var}_layer"].sel(layer="norm").values,
                                      ds[var].values, err_msg=var)
    # The end state is exact at the last layer; random embeddings at the first are far off.
    np.testing.assert_allclose(ds["dist_gram_H_layer"].sel(layer="norm", target="closed"), 0,
                               atol=1e-7)
    assert (ds["etf_distance_layer"].sel(layer="embed") > 0.3).all()
    for name in ("layers", "onehot"):
        run = Run("toy", "transformer", "d20", geometry=ds)
        fig = render(name, Bundle(dataset="toy", runs=[run], svm={"closed": None}))
        save(fig, tmp_path / f"{name}.png")
        image = imread(tmp_path / f"{name}.png")
        assert image.shape[1] >= 600 and image[..., :3].std() > 0.05


# -- training keeps the layers --------------------------------------------------------------------
def _train_store(table, tmp_path, name, **kw):
    from ntpgeom.store import open_store
    from ntpgeom.train.config import TrainConfig
    from ntpgeom.train.stage import train

    config = TrainConfig(**{"model": "transformer", "d": 8, "epochs": 30, "lr": 1e-2,
                            "n_layers": 2, "n_heads": 2, "milestones": (), "device": "cpu",
                            "weight_decay": 0.0, **kw})
    out = tmp_path / f"{name}.zarr"
    train(table, config, out=out, progress=False)
    return open_store(out)


def test_transformer_store_keeps_every_layer_and_ufm_none(tmp_path):
    t = attribute_table([2, 3])
    ds = _train_store(t, tmp_path, "tf")
    assert ds["H_layer"].dims == ("step", "layer", "dim", "context")
    assert list(ds["layer"].values) == ["embed", "block1", "block2", "norm"]
    assert ds["H_layer"].shape == (ds.sizes["step"], 4, 8, t.m)
    # The final norm's state is H itself, bit for bit (the same float32 forward).
    np.testing.assert_array_equal(ds["H_layer"].sel(layer="norm").values, ds["H"].values)
    # The embedding layer is the last token's embedding: contexts ending in one shape coincide.
    emb = ds["H_layer"].sel(layer="embed").values[-1]
    same_shape = t.context_label[:, 1] == t.context_label[0, 1]
    np.testing.assert_array_equal(emb[:, same_shape], np.repeat(emb[:, :1], same_shape.sum(), 1))
    assert "H_layer" not in _train_store(t, tmp_path, "ufm", model="ufm")


@pytest.mark.parametrize("dataset", ["grammar", "ksubset"])
def test_default_datasets_layer_figure_and_last_layer_equals_final_metrics(dataset, tmp_path):
    """The default config's grammar and ksubset tables and transformer (d = 32, 4 layers; 40
    epochs instead of 600 to stay fast): the geometry store's last layer is the final-layer
    metric exactly, and the layers figure is drawn."""
    from pathlib import Path

    import yaml
    from fixture_stores import solve_mm, svm_dataset
    from matplotlib.image import imread

    from ntpgeom.metrics.geometry import run_geometry
    from ntpgeom.plots.bundle import Bundle, Run
    from ntpgeom.plots.figio import save
    from ntpgeom.plots.figures import render
    from ntpgeom.theory.reference import reference_dataset

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    t = make_table(cfg["datasets"][dataset], cfg["table"], progress=False)
    train = {k: v for k, v in cfg["train"].items() if k not in ("models", "d", "seeds")}
    ds = _train_store(t, tmp_path, dataset, **{**train, "d": cfg["train"]["d"][0],
                                               "n_layers": 4, "n_heads": 6, "epochs": 40,
                                               "milestones": (20,)})
    geo = run_geometry(ds, t, reference_dataset(t), {"scs": svm_dataset(t, solve_mm(t.S()),
                                                                        "scs")}, knn_k=3)
    assert list(geo["layer"].values) == ["embed", "block1", "block2", "block3", "block4", "norm"]
    for var in ("dist_gram_H", "corr_cos_H"):
        last = geo[f"{var}_layer"].sel(layer="norm").values
        np.testing.assert_array_equal(last, geo[var].values, err_msg=var)
        assert np.isfinite(geo[f"{var}_layer"].sel(target="scs").values).all()
    fig = render("layers", Bundle(dataset=dataset, runs=[Run(dataset, "transformer", "d32",
                                                             geometry=geo)], svm={"scs": None}))
    save(fig, tmp_path / "layers.png")
    image = imread(tmp_path / "layers.png")
    assert image.shape[1] >= 600 and image[..., :3].std() > 0.05
