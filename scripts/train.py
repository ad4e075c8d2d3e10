"""Rule train: results/{dataset}/table.zarr → results/{dataset}/train/{model}/{run}.zarr.

Resumes from results/{dataset}/train/{model}/{run}.ckpt.pt when a previous attempt was killed.
"""

import sys

# Append: a resumed attempt keeps the log of the killed one above its own.
sys.stderr = open(snakemake.log[0], "a", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402
from ntpgeom.train.config import TrainConfig  # noqa: E402
from ntpgeom.train.stage import train  # noqa: E402


def main() -> None:
    # One thread: on the 2-core baseline machine two threads were slower than one (baselines.md).
    config = TrainConfig.from_dict(dict(snakemake.params.settings, threads=snakemake.threads))
    # train() writes the store itself: the write and the checkpoint's removal go together.
    train(load(snakemake.input.table), config, out=snakemake.output.store, progress=False)


script_main(main)
