# Stage 5: a training run against the theory's predictions (L*, L^mm per solver, S̄, S), at every
# checkpoint → results/{dataset}/geometry/{model}/{run}.zarr (metrics: src/ntpgeom/metrics/).



# -----------------------------------------------------------------------------------------------
rule geometry:
    input:
        train=rules.train.output.store,
        table=rules.build_table.output.table,
        reference=rules.reference.output.reference,
        svm=svm_stores,
        code=src_files("theory/reference", "metrics"),
    output:
        geometry=directory(GEOMETRY),
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
