"""Rule build_table: a dataset's corpus → results/{dataset}/table.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.build import TableConfig, build_table  # noqa: E402
from ntpgeom.store import script_main, write_store  # noqa: E402


def main() -> None:
    spec = snakemake.params.spec
    table = build_table(spec["dataset"], TableConfig.from_dict(spec["table"]),
                        name=snakemake.wildcards.dataset)
    write_store(table, snakemake.output.table)


script_main(main)
