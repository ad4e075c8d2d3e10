# Helpers of the linear-model stage (rules/linear.smk): targets, inputs and params. Kept apart
# from the rules so that `snakemake --lint` finds no functions among rules.
from ntpgeom.plots.linear_figures import LINEAR_FIGURES


def linear_section(dataset):
    return dataset_section(dataset, "linear")


def linear_embeddings(dataset):
    return list(linear_section(dataset)["embeddings"])


def linear_optimizers(dataset):
    return list(linear_section(dataset)["optimizers"])


def linear_targets():
    """Per dataset and embedding: the reference, one run per optimizer, every linear figure;
    plus the 2-D toy when linear.toy is set."""
    targets = []
    for dataset in DATASETS:
        for emb in linear_embeddings(dataset):
            base = f"results/{dataset}/linear/{emb}"
            targets.append(f"{base}/reference.zarr")
            targets += [f"{base}/train/{o}.zarr" for o in linear_optimizers(dataset)]
            targets += [
                f"results/{dataset}/figures/linear/{emb}/{name}.{ext}"
                for name in LINEAR_FIGURES
                for ext in ("png", "pdf")
            ]
    if config.get("linear", {}).get("toy", False):
        targets += ["results/figures/linear_toy.png", "results/figures/linear_toy.pdf"]
    return targets


def linear_embedding_spec(wildcards):
    return linear_section(wildcards.dataset)["embeddings"][wildcards.embedding]


def linear_store(wildcards):
    """The store an embedding reads: a training run (source train) or an svm solution (svm)."""
    spec = linear_embedding_spec(wildcards)
    if spec["source"] == "train":
        return f"results/{wildcards.dataset}/train/{spec['model']}/{spec['run']}.zarr"
    if spec["source"] == "svm":
        return f"results/{wildcards.dataset}/svm/{spec['solver']}.zarr"
    return []


def linear_options(wildcards):
    """The dataset's linear section without the per-embedding and per-optimizer tables."""
    section = linear_section(wildcards.dataset)
    return {k: v for k, v in section.items() if k not in ("embeddings", "optimizers")}


def linear_reference_params(wildcards):
    return {
        "embedding": linear_embedding_spec(wildcards),
        "options": linear_options(wildcards),
        "config": {"linear": linear_section(wildcards.dataset)},
    }


def linear_train_params(wildcards):
    section = linear_section(wildcards.dataset)
    return {"spec": section["optimizers"][wildcards.optimizer], "options": linear_options(wildcards)}


def linear_train_stores(wildcards):
    base = f"results/{wildcards.dataset}/linear/{wildcards.embedding}/train"
    return [f"{base}/{o}.zarr" for o in linear_optimizers(wildcards.dataset)]


def linear_toy_seed(wildcards):
    return config.get("linear", {}).get("toy_seed", 0)
