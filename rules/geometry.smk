# Stage 5: a training run against the theory's predictions (L*, L^mm per solver, S̄, S), at every
# checkpoint → results/{dataset}/geometry/{model}/{run}.zarr (metrics: src/ntpgeom/metrics/).


include: "geometry_helpers.smk"


# -----------------------------------------------------------------------------------------------
rule geometry:
    input:
        train="results/{dataset}/train/{model}/{run}.zarr",
        table="results/{dataset}/table.zarr",
        reference="results/{dataset}/reference.zarr",
        svm=svm_stores,
        code=src_files("theory/reference", "metrics"),
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
