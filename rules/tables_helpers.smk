# Helpers of the table stage (rules/tables.smk), apart from its rules so that `snakemake --lint`
# finds no functions among rules.
from ntpgeom.data.corpus import text_files
from ntpgeom.errors import UserError


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


def table_sources(wildcards):
    """Every file the table is read from, as inputs, so that editing one rebuilds the table and
    what follows: a text corpus (a folder: each of its *.txt files, so adding or removing one
    counts too) and a tokenizer's `path`. Synthetic and Hugging Face data have no local file.
    A path that does not exist is left out: the builder then refuses it in one line in the
    rule's log, naming the setting (Snakemake's missing-input error would not).
    """
    entry = config["datasets"][wildcards.dataset]
    files = []
    if entry.get("source") == "text":
        try:
            files += [str(f) for f in text_files(entry["text"]["path"])]
        except UserError:
            pass
    tokenizer = dataset_section(wildcards.dataset, "table")["tokenizer"].get("path")
    return files + ([tokenizer] if tokenizer and Path(tokenizer).is_file() else [])
