# Stage 1: corpus → results/{dataset}/table.zarr (π, P, support, entropy, context token ids).


def table_targets():
    return expand("results/{dataset}/table.zarr", dataset=DATASETS)


def table_params(wildcards):
    """The dataset's source entry and its validated `table` section."""
    entry = {k: v for k, v in config["datasets"][wildcards.dataset].items() if k in SOURCE_KEYS}
    return {"dataset": entry, "table": dataset_section(wildcards.dataset, "table")}


SOURCE_KEYS = ("source", "synthetic", "text", "huggingface")


def table_mem_mb(wildcards):
    """The streaming counter's budget plus room for the interpreter and the libraries."""
    return dataset_section(wildcards.dataset, "table")["memory_mb"] + 1024


# -----------------------------------------------------------------------------------------------
rule build_table:
    input:
        code=src_files("build", "corpus", "ngrams", "tokenize"),
    output:
        table=directory("results/{dataset}/table.zarr"),
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
