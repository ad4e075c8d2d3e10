"""Rule semantics: a run + table + S̄ + L^mm → results/{dataset}/semantics/{model}/{run}.zarr."""

import dataclasses
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.metrics.semantics import SemanticsConfig, run_semantics  # noqa: E402
from ntpgeom.store import open_store, script_main, write_store  # noqa: E402


def main() -> None:
    svm = list(snakemake.input.svm)  # the dataset's first solver, or none
    ds = run_semantics(open_store(snakemake.input.train), load(snakemake.input.table),
                       open_store(snakemake.input.reference),
                       open_store(svm[0]) if svm else None,
                       **dataclasses.asdict(SemanticsConfig.from_dict(snakemake.params.options)))
    write_store(ds, snakemake.output.semantics)


script_main(main)
