# Stage 7: one self-contained HTML page with every figure, the key numbers and the config
# → results/report.html (ntpgeom.report). `snakemake --report` gives Snakemake's own report too.


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


# -----------------------------------------------------------------------------------------------
rule report:
    input:
        stores=report_inputs,
        code=src_files("reference", "geometry", "figio", "report"),
        captions=expand("{dir}/{name}.rst", dir=CAPTIONS, name=list(FIGURES)),
    output:
        html="results/report.html",
    log:
        "logs/report.log",
    params:
        datasets=report_paths,
        captions=CAPTIONS,
        config=config,
    localrule: True
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/report.py"
