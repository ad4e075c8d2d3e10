"""ntpgeom.figures: every figure target builds through Snakemake from fixture stores."""

from __future__ import annotations

import pytest
from fixture_stores import snakemake, workflow_results

from ntpgeom.figures import FIGURES, Bundle, Run, assign_colors


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return workflow_results(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_target_is_built(root, name):
    from matplotlib.image import imread

    png = root / "results" / "rand" / "figures" / f"{name}.png"
    image = imread(png)
    # Real content: at least 600 px wide, and not a blank canvas.
    assert image.shape[1] >= 600 and image[..., :3].std() > 0.05
    pdf = png.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    assert "Traceback" not in (root / "logs" / "rand" / "figures" / f"{name}.log").read_text()


@pytest.mark.slow
def test_one_figure_is_one_target(root):
    """Removing one PNG reruns that figure's rule and nothing else."""
    (root / "results" / "rand" / "figures" / "loss.png").unlink()
    dry = snakemake(root, "results/rand/figures/loss.png", extra=("-n",))
    assert dry.returncode == 0, dry.stderr[-3000:]
    out = dry.stdout + dry.stderr
    jobs = [line.split()[1].rstrip(":") for line in out.splitlines()
            if line.startswith(("rule ", "localrule "))]
    assert jobs == ["fig_loss"], out
    assert snakemake(root, "results/rand/figures/loss.png").returncode == 0


def test_geometry_stores_follow_the_contract(root):
    from ntpgeom.store import open_store

    g = open_store(root / "results" / "rand" / "geometry" / "ufm" / "d16-seed0.zarr")
    assert list(g["target"].values) == ["admm", "scs", "S_bar", "S"]
    assert g.attrs["knn_k"] == 3  # from the test config's geometry section
    for name in ("dist_L", "in_support_error", "corr_cos_H", "singular_values_L"):
        assert "long_name" in g[name].attrs and "units" in g[name].attrs
    assert g["ce_minus_entropy"].values[-1] < 1e-3


def test_colours_are_fixed_per_model_and_dataset():
    runs = [Run("a", "ufm", "r0"), Run("a", "transformer", "r0"), Run("a", "ufm", "r1"),
            Run("b", "ufm", "r0")]
    assign_colors(runs)
    assert [r.color for r in runs] == ["gold", "darkorange", "goldenrod", "deepskyblue"]


def test_a_dataset_without_runs_is_a_user_error():
    from ntpgeom.errors import UserError
    from ntpgeom.figures import render

    with pytest.raises(UserError, match="no training runs"):
        render("loss", Bundle(dataset="x"))
    with pytest.raises(ValueError, match="unknown figure"):
        render("nope", Bundle(dataset="x", runs=[Run("x", "ufm", "r")]))
