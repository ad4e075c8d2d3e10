"""Rule grid_batch: a batch of grid points (one by default) → its store under results/grid/."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import open_store, script_main, write_store  # noqa: E402
from ntpgeom.studies.grid import GridPoint  # noqa: E402
from ntpgeom.studies.grid_points import (  # noqa: E402
    batch_dataset,
    max_margin_logits,
    reweight_counts,
    run_points,
)


def main() -> None:
    where = f"grids.{snakemake.wildcards.grid}"
    points = [GridPoint.from_dict(p, where=where) for p in snakemake.params.points]
    first = points[0]  # dataset, solver and count model are shape keys: equal in a batch
    table = reweight_counts(load(snakemake.input.table), first.count_model, zipf_a=first.zipf_a)
    svm = snakemake.input.get("svm")  # only for a solver other than closed_form
    L_mm = max_margin_logits(table, first.solver, open_store(svm) if svm else None,
                             where=str(svm))
    stores = run_points(table, L_mm, points, threads=snakemake.threads)
    write_store(batch_dataset(stores, snakemake.params.patterns), snakemake.output.batch)


script_main(main)
