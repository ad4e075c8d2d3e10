# Helpers of the geometry stage (rules/geometry.smk), apart from its rules so that
# `snakemake --lint` finds no functions among rules.

def geometry_targets():
    return [
        f"results/{dataset}/geometry/{model}/{run}.zarr"
        for dataset in DATASETS
        for model, run in train_runs(dataset)
    ]


def svm_paths(dataset):
    """Every solver's L^mm of the dataset (the first solver is the one single-solver figures show)."""
    return [f"results/{dataset}/svm/{s}.zarr" for s in svm_solvers(dataset)]


def svm_stores(wildcards):
    return svm_paths(wildcards.dataset)


def geometry_params(wildcards):
    """Keyword arguments of ntpgeom.metrics.geometry.run_geometry from the dataset's `geometry` section."""
    return dataset_section(wildcards.dataset, "geometry")
