"""Rule grid_point: one grid point's table (+ L^mm) → results/grid/{grid}/points/{point}.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import script_main, write_store  # noqa: E402
from ntpgeom.studies.grid import max_margin_logits, reweight_counts, run_points  # noqa: E402


def main() -> None:
    point = snakemake.params.point
    table = reweight_counts(load(snakemake.input.table), point["count_model"],
                            zipf_a=point["zipf_a"])
    L_mm = max_margin_logits(table, point["solver"], snakemake.input.get("svm"))
    (ds,) = run_points(table, L_mm, [point], threads=snakemake.threads)
    write_store(ds, snakemake.output.point)


script_main(main)
