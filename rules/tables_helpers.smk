# Helpers of the table stage (rules/tables.smk), apart from its rules so that `snakemake --lint`
# finds no functions among rules.


def table_targets():
    return expand("results/{dataset}/table.zarr", dataset=DATASETS)


def table_params(wildcards):
    """The dataset's source entry and its validated `table` section."""
    entry = {k: v for k, v in config["datasets"][wildcards.dataset].items() if k in SOURCE_KEYS}
    return {"dataset": canonical(entry),
            "table": canonical(dataset_section(wildcards.dataset, "table"))}


SOURCE_KEYS = ("source", "synthetic", "text", "huggingface")


def table_mem_mb(wildcards):
    """The streaming counter's budget plus room for the interpreter and the libraries."""
    return dataset_section(wildcards.dataset, "table")["memory_mb"] + 1024
