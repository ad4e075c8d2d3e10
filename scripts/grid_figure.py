"""Rule grid_figure: results/grid/{grid}.zarr → results/grid/figures/{grid}.png."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.grid_figures import grid_figure  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402
from ntpgeom.studies.grid import GridSpec  # noqa: E402


def main() -> None:
    spec = GridSpec.from_dict(snakemake.params.grid)
    fig = grid_figure(open_store(snakemake.input.grid), spec)
    fig.savefig(snakemake.output.png, dpi=120)


script_main(main)
