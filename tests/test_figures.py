"""ntpgeom.plots.figures: every figure target builds through Snakemake from fixture stores."""

from __future__ import annotations

import numpy as np
import pytest
from fixture_stores import snakemake, workflow_results

from ntpgeom.plots.bundle import Bundle, Run, assign_colors, dataset_families
from ntpgeom.plots.figures import FIGURES, OVERLAYS
from ntpgeom.plots.linear_figures import LINEAR_FIGURES
from ntpgeom.plots.style import SBAR


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return workflow_results(tmp_path_factory)


def _check_figure(png, log):
    from matplotlib.image import imread

    image = imread(png)
    # Real content: at least 600 px wide, and not a blank canvas.
    assert image.shape[1] >= 600 and image[..., :3].std() > 0.05
    pdf = png.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_target_is_built(root, name):
    _check_figure(root / "results" / "rand" / "figures" / f"{name}.png",
                  root / "logs" / "rand" / "figures" / f"{name}.log")


@pytest.mark.slow
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_target_is_built(root, name):
    _check_figure(root / "results" / "figures" / f"{name}.png",
                  root / "logs" / "figures" / f"{name}.log")


@pytest.mark.slow
@pytest.mark.parametrize("name", [*LINEAR_FIGURES, "toy"])
def test_every_linear_figure_target_is_built(root, name):
    if name == "toy":
        _check_figure(root / "results" / "figures" / "linear_toy.png",
                      root / "logs" / "figures" / "linear_toy.log")
    else:
        _check_figure(root / "results" / "rand" / "figures" / "linear" / "random" / f"{name}.png",
                      root / "logs" / "rand" / "figures" / "linear" / "random" / f"{name}.log")


def _jobs(done) -> list[str]:
    """The rules of the jobs a Snakemake run scheduled, from its output."""
    out = done.stdout + done.stderr
    return [line.split()[1].rstrip(":") for line in out.splitlines()
            if line.startswith(("rule ", "localrule "))]


@pytest.mark.slow
def test_one_figure_is_one_target(root):
    """Removing one PNG reruns that figure's rule and nothing else; the same for an overlay,
    whose target does not rebuild the dataset's figure of the same name."""
    figures = root / "results" / "rand" / "figures"
    (figures / "loss.png").unlink()
    (root / "results" / "figures" / "loss.png").unlink()
    done = snakemake(root, "results/figures/loss.png")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _jobs(done) == ["fig_overlay_loss"], done.stderr[-3000:]
    assert (root / "results" / "figures" / "loss.png").exists()
    assert not (figures / "loss.png").exists()
    done = snakemake(root, "results/rand/figures/loss.png")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _jobs(done) == ["fig_loss"], done.stderr[-3000:]
    assert (figures / "loss.png").exists()


def test_geometry_stores_follow_the_contract(root):
    from ntpgeom.store import open_store

    g = open_store(root / "results" / "rand" / "geometry" / "ufm" / "d16-seed0.zarr")
    assert list(g["target"].values) == ["admm", "scs", "S_bar", "S"]
    assert g.attrs["knn_k"] == 3  # from the test config's geometry section
    for name in ("dist_L", "in_support_error", "corr_cos_H", "singular_values_L"):
        assert "long_name" in g[name].attrs and "units" in g[name].attrs
    assert g["ce_minus_entropy"].values[-1] < 1e-3
    # The run's identity is carried over from its training store (figures match runs by it).
    from ntpgeom.store import run_identity

    assert run_identity(g) == ("rand", "ufm", "d16-seed0")
    assert g.attrs["solvers"] == ["admm", "scs"]  # named by each svm store's solver_name


def test_colours_are_fixed_per_model_and_dataset():
    runs = [Run("a", "ufm", "r0"), Run("a", "transformer", "r0"), Run("a", "ufm", "r1"),
            Run("b", "ufm", "r0")]
    assign_colors(runs)
    assert [r.color for r in runs] == ["gold", "darkorange", "goldenrod", "deepskyblue"]
    # With the config's families, a dataset has its colours whatever else is on the axes.
    families = {"a": 0, "b": 1, "c": 2}
    alone = [Run("b", "transformer", "r0")]
    assign_colors(alone, families)
    assert alone[0].color == "steelblue"
    runs = [Run("c", "ufm", "r0"), Run("b", "transformer", "r0"), Run("c", "ufm", "r1")]
    assign_colors(runs, families)
    assert [r.color for r in runs] == ["yellowgreen", "steelblue", "olivedrab"]


def test_dataset_families_follow_the_papers_palette():
    # Synthetic gold/orange (0), real text blue (1), first come first served; the rest in order.
    assert dataset_families({"grammar": "synthetic", "ksubset": "synthetic"}) == {
        "grammar": 0, "ksubset": 1}
    assert dataset_families({"grammar": "synthetic", "ksubset": "synthetic",
                             "tinystories": "text"}) == {"grammar": 0, "ksubset": 2,
                                                         "tinystories": 1}
    assert dataset_families({"ts": "huggingface", "g": "synthetic"}) == {"ts": 1, "g": 0}
    many = dataset_families({f"d{i}": "synthetic" for i in range(6)})
    assert list(many.values()) == [0, 1, 2, 3, 0, 1]


def test_overlay_draws_every_dataset_with_its_own_colours_and_solver(root, tmp_path):
    """Two datasets' runs on one F1 and one F7: colours per (dataset, model) from the config's
    families, dataset-prefixed labels, and each run compared with its own dataset's L^mm."""
    from ntpgeom.plots.bundle import make_overlay
    from ntpgeom.plots.figures import render
    from ntpgeom.store import open_store, write_store

    # A second dataset "ts": rand's stores renamed (the identity is in the attrs) and with its
    # own solver list, scs only (as the geometry stage records the dataset's solvers).
    for kind in ("train", "geometry"):
        for p in (root / "results" / "rand" / kind).glob("*/*.zarr"):
            g = open_store(p)
            g.attrs["dataset"] = "ts"
            if kind == "geometry":
                g.attrs["solvers"] = ["scs"]
                # The fixture's solvers share one L^mm; make ts's scs comparison differ, to see
                # which is drawn.
                g["corr_cos_H"].loc[{"target": "scs"}] = 0.5 * g["corr_cos_H"].sel(target="scs")
            write_store(g, tmp_path / "results" / "ts" / kind / p.parent.name / p.name)
    stores = {kind: [open_store(p) for base in (root, tmp_path)
                     for p in sorted((base / "results" / ("rand" if base == root else "ts")
                                      / kind).glob("*/*.zarr"))]
              for kind in ("train", "geometry")}
    families = dataset_families({"rand": "synthetic", "ts": "text"})
    bundle = make_overlay(**stores, families=families)
    fig = render("loss", bundle)
    colors = {(r.dataset, r.model): r.color for r in bundle.runs}
    assert colors == {("rand", "ufm"): "gold", ("rand", "transformer"): "darkorange",
                      ("ts", "ufm"): "deepskyblue", ("ts", "transformer"): "steelblue"}
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == sorted(f"{r.dataset}, {r.label}" for r in bundle.runs)
    assert {r.dataset: r.solver for r in bundle.runs} == {"rand": "admm", "ts": "scs"}

    fig = render("structural_correlation", bundle)
    ax = fig.axes[0]  # cos(H_k) vs L^mm factors
    assert "admm, scs" in ax.get_title()
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    for r in bundle.runs:
        expected = r.geometry["corr_cos_H"].sel(target=r.solver).values
        np.testing.assert_array_equal(lines[f"{r.dataset}, {r.label}"], expected)
    ts = next(r for r in bundle.runs if r.dataset == "ts").geometry["corr_cos_H"]
    assert not np.array_equal(ts.sel(target="admm").values, ts.sel(target="scs").values)
    assert fig._suptitle.get_text().startswith("F7  all datasets")


def test_combining_overlines_are_drawn_as_mathtext(root):
    """S̄ with a combining overline is dropped by matplotlib's text layout (it reads as S): every
    figure text uses mathtext instead. Checked on the figures that name S̄ and W^mm."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser
    from matplotlib.text import Text

    from ntpgeom.plots.bundle import make_bundle
    from ntpgeom.plots.figures import render
    from ntpgeom.plots.linear_figures import LinearBundle, toy
    from ntpgeom.store import open_store
    from ntpgeom.studies.linear import linear_reference, toy_problem

    base = root / "results" / "rand"
    runs = [open_store(p) for p in sorted((base / "geometry").glob("*/*.zarr"))]
    svm = [open_store(base / "svm" / f"{s}.zarr") for s in ("admm", "scs")]
    ref = open_store(base / "linear" / "random" / "reference.zarr")
    lin = LinearBundle("rand", "random", ref,
                       {p.stem: open_store(p) for p in (base / "linear" / "random" / "train")
                        .glob("*.zarr")})
    table, H = toy_problem(0)
    t = linear_reference(table, H, solvers=["clarabel"])
    figures = [render(name, make_bundle("rand", geometry=runs, svm=svm))
               for name in ("direction_distance", "structural_correlation", "representation")]
    figures += [LINEAR_FIGURES["optimizers"](lin), toy(table, H, t["W_mm"].values,
                                                       t["W_star"].values)]
    texts = [t.get_text() for fig in figures for t in fig.findobj(Text)]
    parser = MathTextParser("path")
    for t in texts:
        if "$" in t:  # parses as mathtext (an odd "$" or a bad command would fail the drawing)
            assert parser.parse(t, dpi=72, prop=FontProperties()) is not None, t
    assert not [t for t in texts if "\u0304" in t or "\u0305" in t]
    assert any(SBAR in t for t in texts) and any(r"\bar{h}" in t for t in texts)
    assert not [t for t in texts if "^mm" in t and "$" not in t]


def test_a_dataset_without_runs_is_a_user_error():
    from ntpgeom.errors import UserError
    from ntpgeom.plots.figures import render

    with pytest.raises(UserError, match="no training runs"):
        render("loss", Bundle(dataset="x"))
    with pytest.raises(ValueError, match="unknown figure"):
        render("nope", Bundle(dataset="x", runs=[Run("x", "ufm", "r")]))
