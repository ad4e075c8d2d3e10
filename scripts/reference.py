"""Rule reference: results/{dataset}/table.zarr → results/{dataset}/reference.zarr (L*, S̄, W̄, H̄)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import script_main, write_store  # noqa: E402
from ntpgeom.theory.reference import reference_dataset  # noqa: E402


def main() -> None:
    table = load(snakemake.input.table)
    rtol = snakemake.params.rank_rtol
    ds = reference_dataset(table, {"svm": {"rank_rtol": rtol}}, rtol=rtol)
    write_store(ds, snakemake.output.reference)


script_main(main)
