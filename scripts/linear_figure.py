"""Rules fig_linear_<name>: linear stores → results/{dataset}/figures/linear/{embedding}/."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path  # noqa: E402

from ntpgeom.plots.linear_figures import render_linear  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def main() -> None:
    train = snakemake.input.train
    paths = [train] if isinstance(train, str) else list(train)
    # Runs are named by their `linear.optimizers` entry, the {optimizer} of the store's path: the
    # store's attr optimizer_name is the update rule, which two entries (two gd steps) can share.
    runs = {Path(p).name.removesuffix(".zarr"): open_store(p) for p in paths}
    render_linear(snakemake.params.name, snakemake.wildcards.dataset,
                  snakemake.wildcards.embedding, reference=open_store(snakemake.input.reference),
                  runs=runs, png=snakemake.output.png, pdf=snakemake.output.pdf)


script_main(main)
