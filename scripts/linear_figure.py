"""Rules fig_linear_<name>: linear stores → results/{dataset}/figures/linear/{embedding}/."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.linear_figures import render_linear  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def main() -> None:
    # Each run by its attr run, the name of its `linear.optimizers` entry (attr optimizer_name is
    # the update rule, which two entries, two gd steps say, can share).
    runs = {str(ds.attrs["run"]): ds for ds in map(open_store, snakemake.input.train)}
    render_linear(snakemake.params.name, snakemake.wildcards.dataset,
                  snakemake.wildcards.embedding, reference=open_store(snakemake.input.reference),
                  runs=runs, png=snakemake.output.png, pdf=snakemake.output.pdf)


script_main(main)
