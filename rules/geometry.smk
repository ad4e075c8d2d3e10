# Stage 5: a training run against the theory's predictions (L*, L^mm per solver, S̄, S), at every
# checkpoint → results/{dataset}/geometry/{model}/{run}.zarr (metrics: src/ntpgeom/geometry.py).

if "svm_solvers" not in globals():
    # Until the solver stage (rules/svm.smk) is included: the solutions already on disk.
    def svm_solvers(dataset):
        return sorted(p.name.removesuffix(".zarr") for p in Path("results", dataset, "svm").glob("*.zarr"))


if "train_runs" not in globals():
    # Until the training stage (rules/train.smk) is included: the runs already on disk.
    def train_runs(dataset):
        found = Path("results", dataset, "train").glob("*/*.zarr")
        return sorted((p.parent.name, p.name.removesuffix(".zarr")) for p in found)


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
    """Keyword arguments of ntpgeom.geometry.run_geometry from the dataset's `geometry` section."""
    return dataset_section(wildcards.dataset, "geometry")


# -----------------------------------------------------------------------------------------------
rule geometry:
    input:
        train="results/{dataset}/train/{model}/{run}.zarr",
        table="results/{dataset}/table.zarr",
        reference="results/{dataset}/reference.zarr",
        svm=svm_stores,
        code=src_files("reference", "geometry"),
    output:
        geometry=directory("results/{dataset}/geometry/{model}/{run}.zarr"),
    log:
        "logs/{dataset}/geometry/{model}/{run}.log",
    benchmark:
        "logs/{dataset}/geometry/{model}/{run}.benchmark.tsv"
    params:
        options=geometry_params,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=30,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/geometry.py"
