# Helpers of the figure stage (rules/figures.smk), apart from its rules (snakemake --lint).
from ntpgeom.figures import FIGURES


def figures_targets():
    """PNG and PDF of every figure, for every dataset that has training runs."""
    return [
        f"results/{dataset}/figures/{name}.{ext}"
        for dataset in DATASETS
        if train_runs(dataset)
        for name in FIGURES
        for ext in ("png", "pdf")
    ]


def run_paths(dataset, stage):
    """results/{dataset}/{stage}/{model}/{run}.zarr of every training run of the dataset."""
    return [f"results/{dataset}/{stage}/{m}/{r}.zarr" for m, r in train_runs(dataset)]


def train_stores(wildcards):
    return run_paths(wildcards.dataset, "train")


def geometry_stores(wildcards):
    return run_paths(wildcards.dataset, "geometry")


# What each kind of store named in FIGURES is, as a rule input.
FIGURE_INPUTS = {
    "train": train_stores,
    "geometry": geometry_stores,
    "reference": "results/{dataset}/reference.zarr",
    "svm": svm_stores,
    "table": "results/{dataset}/table.zarr",
}
