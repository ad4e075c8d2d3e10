# Helpers of the figure stage (rules/figures.smk), apart from its rules (snakemake --lint).
from ntpgeom.plots.figures import FIGURES, OVERLAYS, dataset_families


def figure_datasets():
    """The datasets with training runs (the others have no figures), in config order."""
    return [d for d in DATASETS if train_runs(d)]


def figures_targets():
    """PNG and PDF of every figure, for every dataset that has training runs; and the overlays
    (every run of every dataset on one figure) when there is any run."""
    per_dataset = [
        f"results/{dataset}/figures/{name}.{ext}"
        for dataset in figure_datasets()
        for name in FIGURES
        for ext in ("png", "pdf")
    ]
    return per_dataset + (overlay_targets() if figure_datasets() else [])


def overlay_path(name, ext="png"):
    return f"results/figures/{name}.{ext}"


def overlay_targets():
    return [overlay_path(name, ext) for name in OVERLAYS for ext in ("png", "pdf")]


def figure_families(wildcards=None):
    """dataset → colour family (ntpgeom.plots.figures.dataset_families), from every dataset's source,
    so that a (dataset, model) has the same colours in its own figures and in the overlays."""
    return dataset_families({d: config["datasets"][d]["source"] for d in DATASETS})


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


def overlay_train_stores(wildcards):
    return [p for d in figure_datasets() for p in run_paths(d, "train")]


def overlay_geometry_stores(wildcards):
    return [p for d in figure_datasets() for p in run_paths(d, "geometry")]


def overlay_svm_stores(wildcards):
    return [p for d in figure_datasets() for p in svm_paths(d)]


# The same for the overlays (ntpgeom.plots.figures.OVERLAYS need train, geometry and svm stores only).
OVERLAY_INPUTS = {
    "train": overlay_train_stores,
    "geometry": overlay_geometry_stores,
    "svm": overlay_svm_stores,
}
