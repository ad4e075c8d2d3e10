"""Rules fig_<name>: the stores of one dataset → results/{dataset}/figures/<name>.png and .pdf.

Every figure rule runs this script; ``params.name`` picks the function of ntpgeom.plots.figures.
The rule's named inputs are the stores that figure needs (FIGURES): train, geometry, svm (lists),
reference, table.
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.plots.bundle import make_bundle  # noqa: E402
from ntpgeom.plots.figio import save  # noqa: E402
from ntpgeom.plots.figures import render  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def main() -> None:
    inputs = snakemake.input
    stores = {kind: [open_store(p) for p in inputs.get(kind, [])]
              for kind in ("train", "geometry", "svm")}
    reference, table = inputs.get("reference"), inputs.get("table")
    bundle = make_bundle(snakemake.wildcards.dataset, **stores,
                         reference=open_store(reference) if reference else None,
                         table=load(table) if table else None,
                         families=snakemake.params.families)
    save(render(snakemake.params.name, bundle), snakemake.output.png, snakemake.output.pdf)


script_main(main)
