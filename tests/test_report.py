"""ntpgeom.plots.report: the HTML page built by the workflow, checked in a real headless
Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from fixture_stores import workflow_results

from ntpgeom.plots.figures import FIGURES, OVERLAYS
from ntpgeom.plots.linear_figures import LINEAR_FIGURES
from ntpgeom.plots.numbers import dataset_numbers, linear_numbers
from ntpgeom.theory.reference import centered_support, reldir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Every image of the fixture's report, in page order: the overlays, the dataset's figures, the
#: linear study's (dataset rand, embedding random), the 2-D toy.
IMAGES = ([f"all datasets: {name}" for name in OVERLAYS] + [f"rand: {name}" for name in FIGURES]
          + [f"linear rand/random: {name}" for name in LINEAR_FIGURES] + ["linear: toy"])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return workflow_results(tmp_path_factory)


@pytest.mark.slow
def test_report_holds_every_figure_the_numbers_and_the_config(root):
    page = (root / "results" / "report.html").read_text()
    images = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,", page)
    assert [i for i in images if i.startswith("rand: ")] == [f"rand: {name}" for name in FIGURES]
    assert images == IMAGES
    # The overlays come before the per-dataset sections, the linear study after them.
    assert (page.index("<h2>Figures: all datasets</h2>") < page.index("<h2>Figures: rand</h2>")
            < page.index("Linear model: rand/random") < page.index("the 2-D toy"))
    assert "src='http" not in page and "<script" not in page  # self-contained
    assert '"knn_k": 3' in page  # the config
    for header in ("‖L^mm‖_*", "‖S̄‖_*", "rank L^mm", "CE − H (nats)", "dist L → scs"):
        assert header in page


def test_key_numbers_are_recomputed_from_the_stores(root):
    from ntpgeom.data.table import load
    from ntpgeom.store import open_store

    base = root / "results" / "rand"
    table = load(base / "table.zarr")
    svm = {"scs": open_store(base / "svm" / "scs.zarr")}
    geom = {"ufm/d16-seed0": open_store(base / "geometry" / "ufm" / "d16-seed0.zarr")}
    num = dataset_numbers(table, open_store(base / "reference.zarr"), svm, geom)
    assert (num["n"], num["m"], num["V"]) == (table.n, 14, 10)
    L_mm = svm["scs"]["L_mm"].values
    assert num["solvers"]["scs"]["dist_to_S_bar"] == pytest.approx(
        reldir(L_mm, centered_support(table.S())), rel=1e-12)
    # ‖L^mm‖_* ≤ ‖S̄‖_* (S̄ is feasible, paper §1.7), strictly for this table.
    assert num["solvers"]["scs"]["nuclear_norm"] < num["nuclear_norm_S_bar"]
    run = num["runs"]["ufm/d16-seed0"]
    assert run["step"] == 2000 and run["ce_minus_entropy"] < 1e-3
    assert run["dist_L:scs"] < run["dist_L:S_bar"]


# A script appended to a copy of the page: after load, record each image's decoded size.
PROBE = """<script>window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = Array.from(document.images).map(
    i => i.alt + '|' + i.complete + '|' + i.naturalWidth + 'x' + i.naturalHeight).join('\\n');
  document.body.appendChild(out); });</script></body>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_every_image_loads_in_headless_chromium(root, tmp_path):
    page = (root / "results" / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r"<pre id=\"probe\">(.*?)</pre>", done.stdout, re.S)
    assert match, done.stderr[-2000:]
    rows = [line.split("|") for line in match.group(1).strip().splitlines()]
    assert [r[0] for r in rows if r[0].startswith("rand: ")] == [f"rand: {name}"
                                                                  for name in FIGURES]
    assert [r[0] for r in rows] == IMAGES
    for alt, complete, size in rows:
        width, height = map(int, size.split("x"))
        assert complete == "true" and width >= 600 and height >= 300, (alt, size)


def test_linear_numbers_are_read_from_the_stores(root):
    """Recomputed from the stored matrices and trajectories, they match what the solves and the
    training loop recorded in attrs; on this separable fixture the theory's trends show."""
    from ntpgeom.store import open_store

    base = root / "results" / "rand" / "linear" / "random"
    ref = open_store(base / "reference.zarr")
    runs = {o: open_store(base / "train" / f"{o}.zarr") for o in ("gd", "adam")}
    assert {o: r.attrs["run"] for o, r in runs.items()} == {"gd": "gd", "adam": "adam"}
    num = linear_numbers(ref, runs)
    a = ref.attrs
    assert (num["d"], num["m"], num["V"]) == (16, 14, 10)
    assert num["rank_H_bar"] == a["rank_H_bar"] == 14 and num["overparameterized"]
    assert num["compatible"] and num["separable"] and num["margin"] == a["margin"] > 0
    assert num["compatibility_residual"] < 1e-8
    assert num["solver_agreement"] == pytest.approx(a["solver_agreement"], rel=1e-6, abs=1e-12)
    assert num["solver_agreement"] < 1e-5  # clarabel and fista, paper issue: ≤ 1e-5 rel.
    assert list(num["solvers"]) == ["clarabel", "fista"]
    assert num["norm_W_mm"] == pytest.approx(a["norm_W_mm"], rel=1e-12)
    for name, ds in runs.items():
        r = num["runs"][name]
        assert r["step"] == 150
        for key in ("ce_minus_entropy", "corr_W", "corr_W_offset", "in_support_error_W",
                    "norm_W"):
            assert r[key] == pytest.approx(ds.attrs[f"final_{key}"], rel=1e-9), (name, key)
        # Trending as Thm 2 says: CE − H and ‖P_F(W) − W*‖ fall, the correlation rises.
        assert r["ce_minus_entropy"] < ds["trace_ce_minus_entropy"].values[0] / 10
        assert r["corr_W"] > float(ds["corr_W"].values[0]) + 0.5
        assert r["in_support_error_W"] < float(ds["in_support_error_W"].values[0]) / 1.5
    assert runs["gd"].attrs["lr"] == pytest.approx(num["runs"]["gd"]["lr"])


@pytest.mark.slow
def test_report_has_the_linear_study(root):
    page = (root / "results" / "report.html").read_text()
    section = page[page.index("Linear model: rand/random"):page.index("the 2-D toy")]
    for text in ("d &gt; m and rank(H̄) = m", "NTP_H-compatible", "NTP-separable",
                 "d = 16, m = 14, rank(H̄) = 14", "W^mm solvers", "clarabel", "fista",
                 "Agreement", "‖P_F(W) − W*‖_F", "⟨Ŵ, Ŵ^mm⟩"):
        assert text in section, text
    assert ">NO<" not in section  # every check holds on this fixture
    rows = re.findall(r"<tr><td>(gd|adam)</td><td>(\w+)</td>", section)
    assert rows == [("gd", "gd"), ("adam", "adam")]


def test_a_non_separable_study_is_reported_as_such():
    """d = 2 < m: not separable; the page says NO with the best margin, and W^mm is absent."""
    from ntpgeom.data.synthetic import random_table
    from ntpgeom.plots.report import _linear_section
    from ntpgeom.studies.linear import linear_reference, random_embeddings

    table = random_table(V=6, m=8, max_support=3, seed=1)
    ref = linear_reference(table, random_embeddings(2, 8, seed=0), solvers=["clarabel"])
    num = linear_numbers(ref, {})
    assert not num["separable"] and not num["overparameterized"]
    assert num["margin"] <= 0 or num["stuck_constraints"] > 0
    assert np.isnan(num["norm_W_mm"]) and np.isnan(num["solver_agreement"])
    html = "".join(_linear_section("t/low", num, [], {}))
    assert "<td>NTP-separable (equal in-support logits, margin ≥ 1 off support)</td><td>NO</td>" \
        in html
    assert "best normalized margin γ*" in html


def test_every_function_a_caption_names_exists():
    """Captions name the functions that computed and drew each figure's numbers (a newcomer's way
    to the source): every ``ntpgeom.…`` name in report/*.rst resolves to an object."""
    import importlib
    import re
    from pathlib import Path

    names = set()
    for rst in (Path(__file__).resolve().parents[1] / "report").glob("*.rst"):
        names |= set(re.findall(r"``(ntpgeom(?:\.\w+)+)``", rst.read_text()))
    assert len(names) > 20
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            module = obj.__name__
            for attr in parts[cut:]:
                assert hasattr(obj, attr), name
                obj = getattr(obj, attr)
            # A function is named where it is defined, not where it is re-exported.
            if cut == len(parts) - 1 and callable(obj):
                assert obj.__module__ == module, f"{name} is defined in {obj.__module__}"
            break
