"""ntpgeom.report: the HTML page built by the workflow, checked in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from fixture_stores import workflow_results

from ntpgeom.figures import FIGURES
from ntpgeom.reference import centered_support, reldir
from ntpgeom.report import dataset_numbers

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return workflow_results(tmp_path_factory)


@pytest.mark.slow
def test_report_holds_every_figure_the_numbers_and_the_config(root):
    page = (root / "results" / "report.html").read_text()
    images = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,", page)
    assert images == [f"rand: {name}" for name in FIGURES]
    assert "src='http" not in page and "<script" not in page  # self-contained
    assert '"knn_k": 3' in page  # the config
    for header in ("‖L^mm‖_*", "‖S̄‖_*", "rank L^mm", "CE − H (nats)", "dist L → scs"):
        assert header in page


def test_key_numbers_are_recomputed_from_the_stores(root):
    from ntpgeom.store import open_store
    from ntpgeom.table import load

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
    assert [r[0] for r in rows] == [f"rand: {name}" for name in FIGURES]
    for alt, complete, size in rows:
        width, height = map(int, size.split("x"))
        assert complete == "true" and width >= 600 and height >= 300, (alt, size)
