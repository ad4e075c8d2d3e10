# Helpers of the training stage (rules/train.smk), apart from its rules so that `snakemake --lint`
# finds no functions among rules.
import shutil


def _run_name(d, ridge, seed):
    """d32-seed0, or d32-ridge0.001-seed0 when the run has an explicit ridge."""
    return f"d{d}" + (f"-ridge{ridge:g}" if ridge else "") + f"-seed{seed}"


_TRAIN_RUNS = {}


def _train_runs(dataset):
    """{(model, run): settings for ntpgeom.train.config.TrainConfig} of one dataset."""
    if dataset not in _TRAIN_RUNS:
        section = dataset_section(dataset, "train")
        shared = {k: v for k, v in section.items() if k not in ("models", "d", "seeds", "ridge")}
        runs = {}
        for model in section["models"]:
            for d in section["d"]:
                for ridge in section["ridge"]:
                    for seed in section["seeds"]:
                        runs[(model, _run_name(d, ridge, seed))] = dict(
                            shared, model=model, d=d, ridge=float(ridge), seed=seed
                        )
        _TRAIN_RUNS[dataset] = runs
    return _TRAIN_RUNS[dataset]


def train_runs(dataset):
    """The (model, run) pairs trained on a dataset; downstream stages find the stores with
    f"results/{dataset}/train/{model}/{run}.zarr" (or train_store below)."""
    return list(_train_runs(dataset))


def train_store(dataset, model, run):
    return f"results/{dataset}/train/{model}/{run}.zarr"


def train_targets():
    return [
        train_store(dataset, model, run)
        for dataset in DATASETS
        for model, run in train_runs(dataset)
    ]


def train_params(wildcards):
    """The run's settings (validated again by TrainConfig in the script)."""
    runs = _train_runs(wildcards.dataset)
    key = (wildcards.model, wildcards.run)
    if key not in runs:
        raise WorkflowError(
            f"train: no run {wildcards.model}/{wildcards.run} for dataset {wildcards.dataset}; "
            f"configured: {', '.join(f'{m}/{r}' for m, r in runs)}"
        )
    return runs[key]


def train_gpu(wildcards):
    """1 for runs that will use a GPU (counted against --resources gpu=N; the SLURM profile maps
    it to a GPU request), 0 for CPU runs. `auto` asks for one when this host has an NVIDIA driver."""
    device = train_params(wildcards)["device"]
    if device == "auto":
        return int(shutil.which("nvidia-smi") is not None)
    return int(device.startswith("cuda"))


def train_runtime(wildcards):
    """Minutes: generous for CPU (the paper's transformer needs hours there), ~minutes on GPU."""
    settings = train_params(wildcards)
    per_step_s = 0.5 if settings["model"] == "transformer" else 0.01
    return max(10, int(settings["epochs"] * per_step_s / 60 * 2) + 5)
