"""Rule linear_train: → results/{dataset}/linear/{embedding}/train/{optimizer}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch  # noqa: E402

from ntpgeom.store import script_main  # noqa: E402
from ntpgeom.studies.linear import train_files  # noqa: E402


def main() -> None:
    torch.set_num_threads(snakemake.threads)
    train_files(table=snakemake.input.table, reference=snakemake.input.reference,
                out=snakemake.output.train, **snakemake.params.spec)


script_main(main)
