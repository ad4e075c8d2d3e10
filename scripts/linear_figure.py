"""Rules fig_linear_<name>: linear stores → results/{dataset}/figures/linear/{embedding}/."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.linear_figures import render_to  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    render_to(snakemake.params.name, snakemake.wildcards.dataset, snakemake.wildcards.embedding,
              reference=snakemake.input.reference, train=list(snakemake.input.train),
              png=snakemake.output.png, pdf=snakemake.output.pdf)


script_main(main)
