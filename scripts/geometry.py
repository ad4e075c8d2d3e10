"""Rule geometry: a run + table + L*, S̄, L^mm → results/{dataset}/geometry/{model}/{run}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.metrics.geometry import GeometryConfig, geometry_store  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    geometry_store(train=snakemake.input.train, table=snakemake.input.table,
                   reference=snakemake.input.reference, svm=snakemake.input.svm,
                   out=snakemake.output.geometry,
                   options=GeometryConfig.from_dict(snakemake.params.options))


script_main(main)
