# Helpers of the report stage (rules/report.smk), apart from its rules (snakemake --lint).


CAPTIONS = str(Path(workflow.basedir) / "report")


def report_targets():
    return ["results/report.html"] if report_datasets() else []


def report_datasets():
    """Datasets with training runs (the others have no figures)."""
    return [d for d in DATASETS if train_runs(d)]


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


def report_inputs(wildcards):
    """Every path of report_paths, flattened (the rule's inputs)."""
    files = []
    for paths in report_paths().values():
        for value in paths.values():
            files += [value] if isinstance(value, str) else value
    return files
