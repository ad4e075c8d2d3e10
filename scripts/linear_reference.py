"""Rule linear_reference: table → results/{dataset}/linear/{embedding}/reference.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.store import script_main  # noqa: E402
from ntpgeom.studies.linear import reference_files  # noqa: E402


def main() -> None:
    spec = snakemake.params.spec
    store = snakemake.input.get("store") or None
    reference_files(table=snakemake.input.table, out=snakemake.output.reference,
                    store=store if isinstance(store, str) else None, **spec)


script_main(main)
