# Stage 1: corpus → results/{dataset}/table.zarr (π, P, support, entropy, context token ids).



# -----------------------------------------------------------------------------------------------
rule build_table:
    input:
        sources=table_sources,
        code=src_files("data"),
    output:
        table=directory(TABLE),
    log:
        "logs/{dataset}/table.log",
    benchmark:
        "logs/{dataset}/table.benchmark.tsv"
    params:
        spec=table_params,
    threads: 1
    resources:
        mem_mb=table_mem_mb,
        runtime=60,
    conda:
        "../envs/tables.yaml"
    script:
        "../scripts/build_table.py"
