# Helpers of the report stage (rules/report.smk), apart from its rules (snakemake --lint).


CAPTIONS = str(Path(workflow.basedir) / "report")


def report_targets():
    return (["results/report.html"] if report_datasets() or report_linear()
            or report_semantics() else [])


def report_datasets():
    """Datasets with training runs (the others have no figures)."""
    return figure_datasets()


def report_paths(wildcards=None):
    """Per dataset: the stores the key numbers come from and the figure PNGs, in FIGURES order."""
    out = {}
    for d in report_datasets():
        out[d] = {
            "table": f"results/{d}/table.zarr",
            "reference": f"results/{d}/reference.zarr",
            "svm": svm_paths(d),
            "geometry": run_paths(d, "geometry"),
            "figures": [f"results/{d}/figures/{name}.png" for name in FIGURES],
        }
    return out


def report_overlays(wildcards=None):
    """The PNGs of the figures across datasets (OVERLAYS order), shown before the datasets'."""
    return [overlay_path(name) for name in OVERLAYS] if report_datasets() else []


def report_linear(wildcards=None):
    """"dataset/embedding" → the linear study's stores and figure PNGs (LINEAR_FIGURES order),
    when the config has a `linear` section (as linear_targets())."""
    if "linear" not in config:
        return {}
    out = {}
    for d in DATASETS:
        for emb in linear_embeddings(d):
            base = f"results/{d}/linear/{emb}"
            out[f"{d}/{emb}"] = {
                "reference": f"{base}/reference.zarr",
                "train": [f"{base}/train/{o}.zarr" for o in linear_optimizers(d)],
                "figures": [
                    f"results/{d}/figures/linear/{emb}/{name}.png" for name in LINEAR_FIGURES
                ],
            }
    return out


def report_toy(wildcards=None):
    """The 2-D toy's PNG when linear.toy is set, else None."""
    return "results/figures/linear_toy.png" if config.get("linear", {}).get("toy") else None


def report_semantics(wildcards=None):
    """"dataset/model/run" → its semantics store and figure PNGs, when the config has a
    `semantics` section (as semantics_targets())."""
    if "semantics" not in config:
        return {}
    return {
        f"{d}/{model}/{run}": {
            "store": semantics_store(d, model, run),
            "figures": [semantics_figure(d, model, run, name) for name in SEMANTICS_FIGURES],
        }
        for d in DATASETS
        for model, run in train_runs(d)
    }


def report_captions():
    """Every caption in report/ (figures, and linear_<name> for the linear figures)."""
    return sorted(str(p) for p in Path(CAPTIONS).glob("*.rst"))


def report_inputs(wildcards):
    """Every path the report reads, flattened (the rule's inputs)."""
    files = []
    for paths in (list(report_paths().values()) + list(report_linear().values())
                  + list(report_semantics().values())):
        for value in paths.values():
            files += [value] if isinstance(value, str) else value
    return files + report_overlays() + ([report_toy()] if report_toy() else [])
