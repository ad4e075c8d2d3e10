# Helpers of the geometry stage (rules/geometry.smk), apart from its rules so that
# `snakemake --lint` finds no functions among rules.

SVM_STAGE = "svm_solvers" in globals()

if not SVM_STAGE:
    # Until the solver stage (rules/svm.smk) is included, L^mm and reference.zarr have no rule:
    # use the solutions already on disk, and build geometry only where they exist.
    def svm_solvers(dataset):
        found = Path("results", dataset, "svm").glob("*.zarr")
        return sorted(p.name.removesuffix(".zarr") for p in found)


def predictions_ready(dataset):
    """Whether L^mm and reference.zarr of the dataset exist or have a rule that makes them."""
    ready = Path("results", dataset, "reference.zarr").exists() and svm_solvers(dataset)
    return SVM_STAGE or bool(ready)


def geometry_targets():
    return [
        f"results/{dataset}/geometry/{model}/{run}.zarr"
        for dataset in DATASETS
        if predictions_ready(dataset)
        for model, run in train_runs(dataset)
    ]


def svm_paths(dataset):
    """Every solver's L^mm of the dataset (the first solver is the one single-solver figures show)."""
    return [f"results/{dataset}/svm/{s}.zarr" for s in svm_solvers(dataset)]


def svm_stores(wildcards):
    return svm_paths(wildcards.dataset)


def geometry_params(wildcards):
    """Keyword arguments of ntpgeom.geometry.run_geometry from the dataset's `geometry` section."""
    return dataset_section(wildcards.dataset, "geometry")
