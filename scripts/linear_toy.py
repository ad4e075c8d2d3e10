"""Rule fig_linear_toy: the NeurIPS 2-D toy → results/figures/linear_toy.png, .pdf."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.linear_figures import render_toy  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    render_toy(png=snakemake.output.png, pdf=snakemake.output.pdf, seed=snakemake.params.seed)


script_main(main)
