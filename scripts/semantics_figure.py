"""Rules fig_semantics_<name>: a semantics store → results/{dataset}/figures/semantics/…/<name>."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.figio import save  # noqa: E402
from ntpgeom.plots.semantics_figures import SEMANTICS_FIGURES  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def main() -> None:
    draw = SEMANTICS_FIGURES[snakemake.params.name]
    save(draw(open_store(snakemake.input.store)), snakemake.output.png, snakemake.output.pdf)


script_main(main)
