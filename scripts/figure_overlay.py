"""Rules fig_overlay_<name>: every dataset's runs → results/figures/<name>.png and .pdf.

Every overlay rule runs this script; ``params.name`` picks the function of ntpgeom.plots.figures.
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.figio import render_overlay_to  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    stores = {k: v for k, v in snakemake.input.items() if k != "code"}
    render_overlay_to(snakemake.params.name, png=snakemake.output.png, pdf=snakemake.output.pdf,
                      families=snakemake.params.families, **stores)


script_main(main)
