"""Rules fig_semantics_<name>: a semantics store → results/{dataset}/figures/semantics/…/<name>."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.semantics_figures import render_to  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    render_to(snakemake.params.name, store=snakemake.input.store, png=snakemake.output.png,
              pdf=snakemake.output.pdf)


script_main(main)
