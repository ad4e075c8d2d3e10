"""Rule grid_aggregate: every batch store of a grid → results/grid/{grid}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.store import script_main, write_store  # noqa: E402
from ntpgeom.studies.grid import GridSpec, aggregate, batch_names  # noqa: E402


def main() -> None:
    spec = GridSpec(**snakemake.params.grid)
    stores = dict(zip(batch_names(spec), snakemake.input.batches, strict=True))
    write_store(aggregate(spec, stores), snakemake.output.grid)


script_main(main)
