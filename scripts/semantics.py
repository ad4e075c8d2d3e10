"""Rule semantics: a run + table + S̄ + L^mm → results/{dataset}/semantics/{model}/{run}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.metrics.semantics import semantics_store  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    svm = list(snakemake.input.svm)
    semantics_store(train=snakemake.input.train, table=snakemake.input.table,
                    reference=snakemake.input.reference, svm=svm[0] if svm else None,
                    out=snakemake.output.semantics, config=snakemake.params.options,
                    **snakemake.params.options)


script_main(main)
