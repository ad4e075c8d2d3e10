"""Rule grid_aggregate: every batch store of a grid → results/grid/{grid}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path  # noqa: E402

from ntpgeom.store import open_store, script_main, write_store  # noqa: E402
from ntpgeom.studies.grid import GridSpec, batch_names  # noqa: E402
from ntpgeom.studies.grid_points import aggregate, incomplete_batch  # noqa: E402


def main() -> None:
    spec = GridSpec.from_dict(snakemake.params.grid)
    paths = {name: Path(p) for name, p in zip(batch_names(spec), snakemake.input.batches,
                                              strict=True)}
    batches = {}
    for name, path in paths.items():
        # A write killed half-way leaves no zarr.json: such a store never counts as a batch.
        if not (path / "zarr.json").is_file():
            raise incomplete_batch(spec, path)
        batches[name] = open_store(path)
    write_store(aggregate(spec, batches, where=paths), snakemake.output.grid)


script_main(main)
