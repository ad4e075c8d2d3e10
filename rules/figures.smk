# Stage 6: one rule per figure, fig_<name> → results/{dataset}/figures/<name>.png and .pdf, so
# `snakemake results/grammar/figures/loss.png` redraws just that figure (and builds what it needs).
# The figures and the stores each one reads are listed in ntpgeom.figures.FIGURES; the function
# that draws figure <name> is ntpgeom.figures.<name>, its caption report/<name>.rst.
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


# -----------------------------------------------------------------------------------------------
for _figure, (_, _needs) in FIGURES.items():

    rule:
        name:
            f"fig_{_figure}"
        input:
            **{kind: FIGURE_INPUTS[kind] for kind in _needs},
            code=src_files("reference", "geometry", "figures", "figio"),
        output:
            png=report(
                f"results/{{dataset}}/figures/{_figure}.png",
                caption=f"../report/{_figure}.rst",
                category="Figures",
                subcategory="{dataset}",
            ),
            pdf=f"results/{{dataset}}/figures/{_figure}.pdf",
        log:
            f"logs/{{dataset}}/figures/{_figure}.log",
        params:
            name=_figure,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/figure.py"
