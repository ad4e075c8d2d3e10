"""Rule linear_train: → results/{dataset}/linear/{embedding}/train/{optimizer}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch  # noqa: E402

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402
from ntpgeom.studies.linear import LinearConfig, train_linear  # noqa: E402


def main() -> None:
    torch.set_num_threads(snakemake.threads)
    linear = LinearConfig.from_dict(snakemake.params.spec["linear"])  # with this run's entry only
    run = snakemake.wildcards.optimizer
    reference = snakemake.input.reference
    # The store is written by the training stage, with its resume checkpoint: no write_store here.
    train_linear(load(snakemake.input.table), open_store(reference), out=snakemake.output.train,
                 spec=linear.optimizers[run], linear=linear, run=run, where=str(reference))


script_main(main)
