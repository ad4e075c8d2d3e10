# Helpers of the svm stage (rules/svm.smk): target lists, solver options and resources.
# Kept apart from the rules so that `snakemake --lint` finds no functions among rules.


wildcard_constraints:
    solver="admm|scs|mosek|auto|closed_form",


def svm_solvers(dataset):
    """The solvers listed for a dataset (config svm.solvers, after the dataset's override)."""
    return list(dataset_section(dataset, "svm")["solvers"])


def svm_targets():
    targets = expand("results/{dataset}/reference.zarr", dataset=DATASETS)
    for dataset in DATASETS:
        targets += expand(
            "results/{dataset}/svm/{solver}.zarr",
            dataset=dataset,
            solver=svm_solvers(dataset),
        )
    return targets


def svm_rank_rtol(wildcards):
    return dataset_section(wildcards.dataset, "svm")["rank_rtol"]


def svm_params(wildcards):
    """solve()'s keyword arguments for this solver, and the resolved section for provenance."""
    from ntpgeom.theory.svm import solve_options

    section = dataset_section(wildcards.dataset, "svm")
    return {"solve": solve_options(section, wildcards.solver), "config": {"svm": section}}


def _table_size(path):
    """(V, m) of a table store, from its zarr.json attributes (no zarr import in the DAG)."""
    import json

    with open(Path(path) / "zarr.json") as fh:
        attrs = json.load(fh).get("attributes", {})
    return int(attrs["V"]), int(attrs["m"])


def svm_mem_mb(wildcards, input, attempt):
    """admm: ~20 V×m float64 work arrays; cvxpy: the estimate solve() itself refuses on."""
    from ntpgeom.theory.svm.cvx import estimate_memory_mb

    if not (Path(input.table) / "zarr.json").exists():
        return 4096 * attempt  # a dry run before the table exists: a placeholder
    V, m = _table_size(input.table)
    if wildcards.solver in ("admm", "closed_form"):
        return int(1024 + 20 * 8 * V * m / 2**20) * attempt
    solver = "mosek" if wildcards.solver == "mosek" else "scs"
    return int(estimate_memory_mb(V, m, solver) * 1.25) * attempt


def svm_gpu(wildcards):
    """A GPU only when admm is told to use one (device auto takes one only if free anyway)."""
    section = dataset_section(wildcards.dataset, "svm")
    return int(wildcards.solver == "admm" and section["admm"]["device"] == "cuda")
