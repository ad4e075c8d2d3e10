# Helpers of the semantics stage (rules/semantics.smk), apart from its rules (snakemake --lint).
from ntpgeom.plots.semantics_figures import SEMANTICS_FIGURES


def semantics_store(dataset, model, run):
    return f"results/{dataset}/semantics/{model}/{run}.zarr"


def semantics_figure(dataset, model, run, name, ext="png"):
    return f"results/{dataset}/figures/semantics/{model}/{run}/{name}.{ext}"


def semantics_targets():
    """Per training run of every dataset: its semantics store and every semantics figure
    (only with a `semantics` section in the config: all_targets() checks)."""
    targets = []
    for dataset in DATASETS:
        for model, run in train_runs(dataset):
            targets.append(semantics_store(dataset, model, run))
            targets += [
                semantics_figure(dataset, model, run, name, ext)
                for name in SEMANTICS_FIGURES
                for ext in ("png", "pdf")
            ]
    return targets


def semantics_svm(wildcards):
    """The first solver's L^mm (the target L_mm)."""
    return svm_paths(wildcards.dataset)[:1]


def semantics_params(wildcards):
    """Keyword arguments of ntpgeom.metrics.semantics.run_semantics (the dataset's section)."""
    return canonical(dataset_section(wildcards.dataset, "semantics"))
