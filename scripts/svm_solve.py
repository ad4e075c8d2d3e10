"""Rule svm_solve: results/{dataset}/table.zarr → results/{dataset}/svm/{solver}.zarr (L^mm)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch  # noqa: E402

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import script_main, write_store  # noqa: E402
from ntpgeom.theory.svm import SvmConfig, solve  # noqa: E402


def main() -> None:
    torch.set_num_threads(snakemake.threads)
    spec = snakemake.params.spec
    options = SvmConfig.from_dict(spec["svm"]).solve_options(snakemake.wildcards.solver)
    ds = solve(load(snakemake.input.table), **options, config={"svm": spec["svm"]})
    write_store(ds, snakemake.output.svm)


script_main(main)
