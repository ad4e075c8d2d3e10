"""Rule geometry: a run + table + L*, S̄, L^mm → results/{dataset}/geometry/{model}/{run}.zarr."""

import dataclasses
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.metrics.geometry import GeometryConfig, run_geometry  # noqa: E402
from ntpgeom.store import open_store, script_main, solver_name, write_store  # noqa: E402


def main() -> None:
    options = GeometryConfig.from_dict(snakemake.params.options)
    svm = [open_store(p) for p in snakemake.input.svm]
    ds = run_geometry(open_store(snakemake.input.train), load(snakemake.input.table),
                      open_store(snakemake.input.reference), {solver_name(s): s for s in svm},
                      **dataclasses.asdict(options))
    write_store(ds, snakemake.output.geometry)


script_main(main)
