"""Rules fig_overlay_<name>: every dataset's runs → results/figures/<name>.png and .pdf.

Every overlay rule runs this script; ``params.name`` picks the function of ntpgeom.plots.figures.
Its svm inputs are dependencies only: each run's geometry store names the solver it is drawn with.
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.bundle import make_overlay  # noqa: E402
from ntpgeom.plots.figio import save  # noqa: E402
from ntpgeom.plots.figures import render  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def main() -> None:
    inputs = snakemake.input
    bundle = make_overlay(train=[open_store(p) for p in inputs.get("train", [])],
                          geometry=[open_store(p) for p in inputs.get("geometry", [])],
                          families=snakemake.params.families)
    save(render(snakemake.params.name, bundle), snakemake.output.png, snakemake.output.pdf)


script_main(main)
