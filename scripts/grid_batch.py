"""Rules grid_batch_<grid>_<i>: equal-shape grid points trained together → one store per point."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import script_main, write_store  # noqa: E402
from ntpgeom.studies.grid import max_margin_logits, reweight_counts, run_points  # noqa: E402


def main() -> None:
    points = snakemake.params.points
    first = points[0]
    table = reweight_counts(load(snakemake.input.table), first["count_model"],
                            zipf_a=first["zipf_a"])
    svm = snakemake.input.svm[0] if snakemake.input.svm else None
    L_mm = max_margin_logits(table, first["solver"], svm)
    stores = run_points(table, L_mm, points, threads=snakemake.threads)
    for ds, out in zip(stores, snakemake.output.points, strict=True):
        write_store(ds, out)


script_main(main)
