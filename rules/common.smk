# Everything the rules use besides the rules themselves, in reading order: config validation and
# per-dataset sections, the path of every result (defined here once), package sources as tracked
# inputs, the target list of `rule all`, then each stage's targets, input functions and params.
# Stage files (rules/<stage>.smk) hold rules only, so `snakemake --lint` finds no functions there.
import hashlib
import os
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from ntpgeom import config as _config
from ntpgeom.data.corpus import text_files
from ntpgeom.errors import UserError
from ntpgeom.plots.bundle import dataset_families
from ntpgeom.plots.figures import FIGURES, OVERLAYS
from ntpgeom.plots.linear_figures import LINEAR_FIGURES
from ntpgeom.plots.semantics_figures import SEMANTICS_FIGURES
from ntpgeom.studies.grid import batch_names, parse_grid
from ntpgeom.train.runs import expand_runs

SCHEMAS = Path(workflow.basedir) / "schemas"
PACKAGE = Path(workflow.basedir) / "src" / "ntpgeom"
# The sections a dataset entry may override (each has schemas/<section>.schema.yaml).
SECTIONS = ("table", "svm", "train", "geometry", "linear", "semantics")


def _refuse(err):
    """Stop on a config mistake with its one line and nothing else.

    A WorkflowError raised here would be printed with Snakemake's header and the .smk frames
    it passed through; a config mistake is the user's, not the workflow's, so it gets the same
    one line as a UserError on the command line (ntpgeom.cli) and exit status 1.
    """
    print(f"config: {err}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# The whole config first (unknown keys at every level, dataset entries), with one-line errors
# from ntpgeom.config instead of Snakemake's validate, which appends the whole schema.
try:
    # `--config grid_batch_gpu=false` arrives as the string "false" (Snakemake parses only False).
    _config.command_line_booleans(config, SCHEMAS / "config.schema.yaml")
    _config.validate(config, SCHEMAS / "config.schema.yaml")
except UserError as err:
    _refuse(err)

DATASETS = list(config["datasets"])
# Folders the workflow writes at the top of results/ beside the datasets' results/<name>/: a
# dataset so named would share them (a dataset `grid` beside a grid made rule outputs ambiguous).
RESERVED_DATASET_NAMES = ("figures", "grid", "report")
_reserved = [name for name in DATASETS if name.lower() in RESERVED_DATASET_NAMES]
if _reserved:
    _refuse(f"datasets.{_reserved[0]}: the name is reserved (results/{_reserved[0]}/ holds other "
            f"results; reserved: {', '.join(RESERVED_DATASET_NAMES)}); rename the dataset")


def _from_workflow_dir(path):
    """A relative corpus path as the user meant it, from the workflow folder (the repository
    root), written relative to the working directory so that it is unchanged (and the params
    stay the same) when snakemake runs from the root; an absolute path is kept."""
    if os.path.isabs(path):
        return path
    return os.path.relpath(Path(workflow.basedir) / path)


for _entry in config["datasets"].values():
    if "text" in _entry:
        _entry["text"]["path"] = _from_workflow_dir(_entry["text"]["path"])


wildcard_constraints:
    dataset="|".join(DATASETS) or "none",


def canonical(value):
    """The same value with every dict's keys sorted, recursively.

    Snakemake compares params as written, so reordering the keys of a config entry would
    otherwise rerun a rule and everything downstream of it. Only for params whose key order
    means nothing: some sections keep a declared order (e.g. `linear.optimizers`, the order of
    the report and the legends).
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


_SECTIONS = {}


def dataset_section(dataset, section):
    """config[section] overridden by config["datasets"][dataset][section], validated with defaults."""
    key = (dataset, section)
    if key not in _SECTIONS:
        try:
            merged = _config.dataset_section(config, dataset, section,
                                             SCHEMAS / f"{section}.schema.yaml")
        except UserError as err:
            _refuse(err)
        if section == "table" and merged["tokenizer"].get("path"):
            merged["tokenizer"]["path"] = _from_workflow_dir(merged["tokenizer"]["path"])
        _SECTIONS[key] = merged
    return _SECTIONS[key]


# Every dataset's sections now, so that a bad key fails the parse even when no job needs it.
for _dataset in DATASETS:
    for _section in SECTIONS:
        dataset_section(_dataset, _section)


# -- paths: the template of every result, defined once (docs/artifacts.md) ------------------------
TABLE = "results/{dataset}/table.zarr"
REFERENCE = "results/{dataset}/reference.zarr"
SVM = "results/{dataset}/svm/{solver}.zarr"
TRAIN = "results/{dataset}/train/{model}/{run}.zarr"
GEOMETRY = "results/{dataset}/geometry/{model}/{run}.zarr"
FIGURE = "results/{dataset}/figures/{name}.{ext}"
OVERLAY = "results/figures/{name}.{ext}"
REPORT = "results/report.html"
LINEAR_REFERENCE = "results/{dataset}/linear/{embedding}/reference.zarr"
LINEAR_TRAIN = "results/{dataset}/linear/{embedding}/train/{optimizer}.zarr"
LINEAR_FIGURE = "results/{dataset}/figures/linear/{embedding}/{name}.{ext}"
LINEAR_TOY = "results/figures/linear_toy.{ext}"
GRID = "results/grid/{grid}.zarr"
GRID_BATCH = "results/grid/{grid}/batches/{batch}.zarr"
GRID_FIGURE = "results/grid/figures/{grid}.png"
SEMANTICS = "results/{dataset}/semantics/{model}/{run}.zarr"
SEMANTICS_FIGURE = "results/{dataset}/figures/semantics/{model}/{run}/{name}.{ext}"


class _Keep(dict):
    def __missing__(self, key):
        return f"{{{key}}}"


def fill(template, **values):
    """``template`` with the given wildcards filled in and the others kept as ``{wildcard}``:
    ``fill(FIGURE, name="loss", ext="png")`` is ``results/{dataset}/figures/loss.png``."""
    return template.format_map(_Keep(values))



def src_files(*modules):
    """The package's sources a rule depends on, as inputs, so editing them reruns the rule.

    Snakemake tracks a rule's own script but not the modules it imports. The core modules every
    stage uses are always included; a name is a module path under ``src/ntpgeom`` without ``.py``
    (``data/table``) or a subpackage (``theory/svm``), whose modules are all included.
    """
    paths = []
    core = ("__init__", "errors", "store", "data/__init__", "data/table")
    for name in core + modules:
        source = PACKAGE / f"{name}.py"
        paths += [str(source)] if source.exists() else sorted(map(str, (PACKAGE / name).rglob("*.py")))
    return sorted(set(paths))


def all_targets():
    """The targets of the `all` rule: each stage contributes its <stage>_targets()."""
    targets = (
        table_targets()
        + svm_targets()
        + train_targets()
        + geometry_targets()
        + figures_targets()
        + report_targets()
        + grid_targets()
    )
    # The linear-model study only when the config has a `linear` section (rules/linear.smk), the
    # semantics stage only for datasets that ask for it (semantics_datasets()): the default run
    # stays as it was.
    return targets + (linear_targets() if "linear" in config else []) + semantics_targets()


# -- tables (rules/tables.smk) --------------------------------------------------------------------
def table_targets():
    return expand(TABLE, dataset=DATASETS)


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


# -- L*, S̄ and L^mm (rules/svm.smk) --------------------------------------------------------------
wildcard_constraints:
    solver="admm|scs|mosek|auto|closed_form",


def svm_solvers(dataset):
    """The solvers listed for a dataset (config svm.solvers, after the dataset's override)."""
    return list(dataset_section(dataset, "svm")["solvers"])


def svm_targets():
    targets = expand(REFERENCE, dataset=DATASETS)
    for dataset in DATASETS:
        targets += expand(SVM, dataset=dataset, solver=svm_solvers(dataset))
    return targets


def svm_rank_rtol(wildcards):
    return dataset_section(wildcards.dataset, "svm")["rank_rtol"]


def svm_params(wildcards):
    """The dataset's validated `svm` section (the script builds ntpgeom.theory.svm.SvmConfig
    from it; the store's provenance records it)."""
    return {"svm": dataset_section(wildcards.dataset, "svm")}


def _table_size(path):
    """(V, m) of a table store, from its zarr.json attributes (no zarr import in the DAG)."""
    import json

    with open(Path(path) / "zarr.json") as fh:
        attrs = json.load(fh).get("attributes", {})
    return int(attrs["V"]), int(attrs["m"])


def svm_mem_mb(wildcards, input, attempt):
    """admm: ~20 V×m float64 work arrays; cvxpy: the estimate solve() itself refuses on."""
    from ntpgeom.theory.svm.cvx import estimate_memory_mb

    if not (Path(input.table) / "zarr.json").exists():
        return 4096 * attempt  # a dry run before the table exists: a placeholder
    V, m = _table_size(input.table)
    if wildcards.solver in ("admm", "closed_form"):
        return int(1024 + 20 * 8 * V * m / 2**20) * attempt
    solver = "mosek" if wildcards.solver == "mosek" else "scs"
    return int(estimate_memory_mb(V, m, solver) * 1.25) * attempt


def svm_gpu(wildcards):
    """A GPU only when admm is told to use one (device auto takes one only if free anyway)."""
    section = dataset_section(wildcards.dataset, "svm")
    return int(wildcards.solver == "admm" and section["admm"]["device"] == "cuda")


# -- training (rules/train.smk) -------------------------------------------------------------------
_TRAIN_RUNS = {}


def _train_runs(dataset):
    """{(model, run): settings for ntpgeom.train.config.TrainConfig} of one dataset."""
    if dataset not in _TRAIN_RUNS:
        _TRAIN_RUNS[dataset] = expand_runs(dataset_section(dataset, "train"))
    return _TRAIN_RUNS[dataset]


def train_runs(dataset):
    """The (model, run) pairs trained on a dataset (their stores: :func:`run_paths`)."""
    return list(_train_runs(dataset))


def train_targets():
    return [p for dataset in DATASETS for p in run_paths(dataset, TRAIN)]


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


# -- geometry (rules/geometry.smk) ----------------------------------------------------------------
def geometry_targets():
    return [p for dataset in DATASETS for p in run_paths(dataset, GEOMETRY)]


def svm_paths(dataset):
    """Every solver's L^mm of the dataset (the first solver is the one single-solver figures show)."""
    return expand(SVM, dataset=dataset, solver=svm_solvers(dataset))


def svm_stores(wildcards):
    return svm_paths(wildcards.dataset)


def geometry_params(wildcards):
    """Keyword arguments of ntpgeom.metrics.geometry.run_geometry from the dataset's `geometry` section."""
    return dataset_section(wildcards.dataset, "geometry")


# -- figures (rules/figures.smk) ------------------------------------------------------------------
def figure_datasets():
    """The datasets with training runs (the others have no figures), in config order."""
    return [d for d in DATASETS if train_runs(d)]


def figures_targets():
    """PNG and PDF of every figure, for every dataset that has training runs; and the overlays
    (every run of every dataset on one figure) when there is any run."""
    per_dataset = expand(FIGURE, dataset=figure_datasets(), name=FIGURES, ext=("png", "pdf"))
    return per_dataset + (overlay_targets() if figure_datasets() else [])


def overlay_targets():
    return expand(OVERLAY, name=OVERLAYS, ext=("png", "pdf"))


def figure_families(wildcards=None):
    """dataset → colour family (ntpgeom.plots.bundle.dataset_families), from every dataset's source,
    so that a (dataset, model) has the same colours in its own figures and in the overlays."""
    return dataset_families({d: config["datasets"][d]["source"] for d in DATASETS})


def run_paths(dataset, template):
    """``template`` (TRAIN or GEOMETRY) for every training run of the dataset."""
    return [fill(template, dataset=dataset, model=m, run=r) for m, r in train_runs(dataset)]


def train_stores(wildcards):
    return run_paths(wildcards.dataset, TRAIN)


def geometry_stores(wildcards):
    return run_paths(wildcards.dataset, GEOMETRY)


# What each kind of store named in FIGURES is, as a rule input.
FIGURE_INPUTS = {
    "train": train_stores,
    "geometry": geometry_stores,
    "reference": REFERENCE,
    "svm": svm_stores,
    "table": TABLE,
}


def overlay_train_stores(wildcards):
    return [p for d in figure_datasets() for p in run_paths(d, TRAIN)]


def overlay_geometry_stores(wildcards):
    return [p for d in figure_datasets() for p in run_paths(d, GEOMETRY)]


def overlay_svm_stores(wildcards):
    return [p for d in figure_datasets() for p in svm_paths(d)]


# The same for the overlays (ntpgeom.plots.figures.OVERLAYS need train, geometry and svm stores only).
OVERLAY_INPUTS = {
    "train": overlay_train_stores,
    "geometry": overlay_geometry_stores,
    "svm": overlay_svm_stores,
}


# -- report (rules/report.smk) --------------------------------------------------------------------
CAPTIONS = str(Path(workflow.basedir) / "report")


def report_targets():
    return [REPORT] if report_datasets() or report_linear() or report_semantics() else []


def report_datasets():
    """Datasets with training runs (the others have no figures)."""
    return figure_datasets()


def report_paths(wildcards=None):
    """Per dataset: the stores the key numbers come from and the figure PNGs, in FIGURES order."""
    out = {}
    for d in report_datasets():
        out[d] = {
            "table": fill(TABLE, dataset=d),
            "reference": fill(REFERENCE, dataset=d),
            "svm": svm_paths(d),
            "geometry": run_paths(d, GEOMETRY),
            "figures": expand(FIGURE, dataset=d, name=FIGURES, ext="png"),
        }
    return out


def report_overlays(wildcards=None):
    """The PNGs of the figures across datasets (OVERLAYS order), shown before the datasets'."""
    return expand(OVERLAY, name=OVERLAYS, ext="png") if report_datasets() else []


def report_linear(wildcards=None):
    """"dataset/embedding" → the linear study's stores and figure PNGs (LINEAR_FIGURES order),
    when the config has a `linear` section (as linear_targets())."""
    if "linear" not in config:
        return {}
    out = {}
    for d in DATASETS:
        for emb in linear_embeddings(d):
            out[f"{d}/{emb}"] = {
                "reference": fill(LINEAR_REFERENCE, dataset=d, embedding=emb),
                "train": expand(LINEAR_TRAIN, dataset=d, embedding=emb,
                                optimizer=linear_optimizers(d)),
                "figures": expand(LINEAR_FIGURE, dataset=d, embedding=emb, name=LINEAR_FIGURES,
                                  ext="png"),
            }
    return out


def report_toy(wildcards=None):
    """The 2-D toy's PNG when linear.toy is set, else None."""
    return fill(LINEAR_TOY, ext="png") if linear_toplevel()["toy"] else None


def report_semantics(wildcards=None):
    """"dataset/model/run" → its semantics store and figure PNGs, when the config has a
    `semantics` section (as semantics_targets())."""
    return {
        f"{d}/{model}/{run}": {
            "store": fill(SEMANTICS, dataset=d, model=model, run=run),
            "figures": expand(SEMANTICS_FIGURE, dataset=d, model=model, run=run,
                              name=SEMANTICS_FIGURES, ext="png"),
        }
        for d in semantics_datasets()
        for model, run in train_runs(d)
    }


def report_captions():
    """Every caption in report/ (figures, and linear_<name> for the linear figures)."""
    return sorted(str(p) for p in Path(CAPTIONS).glob("*.rst"))


def report_inputs(wildcards):
    """Every path the report reads, flattened (the rule's inputs)."""
    files = []
    for paths in (list(report_paths().values()) + list(report_linear().values())
                  + list(report_semantics().values())):
        for value in paths.values():
            files += [value] if isinstance(value, str) else value
    return files + report_overlays() + ([report_toy()] if report_toy() else [])


# -- semantics (rules/semantics.smk) --------------------------------------------------------------
def semantics_datasets():
    """The datasets studied by the semantics stage: all with a top-level `semantics` section,
    else those whose own entry has one (so a named config can add a study without running it
    on the default datasets)."""
    return [d for d in DATASETS if "semantics" in config or "semantics" in config["datasets"][d]]


def semantics_targets():
    """Per training run of every studied dataset: its semantics store and every semantics
    figure."""
    targets = []
    for dataset in semantics_datasets():
        for model, run in train_runs(dataset):
            targets.append(fill(SEMANTICS, dataset=dataset, model=model, run=run))
            targets += expand(SEMANTICS_FIGURE, dataset=dataset, model=model, run=run,
                              name=SEMANTICS_FIGURES, ext=("png", "pdf"))
    return targets


def semantics_svm(wildcards):
    """The first solver's L^mm (the target L_mm)."""
    return svm_paths(wildcards.dataset)[:1]


def semantics_params(wildcards):
    """Keyword arguments of ntpgeom.metrics.semantics.run_semantics (the dataset's section)."""
    return canonical(dataset_section(wildcards.dataset, "semantics"))


# -- the linear model (rules/linear.smk) ----------------------------------------------------------
# The rules' params are plain mappings of the validated section; the scripts build
# ntpgeom.studies.linear.LinearConfig from them.
def linear_section(dataset):
    return dataset_section(dataset, "linear")


_LINEAR_TOPLEVEL = {}


def linear_toplevel():
    """The top-level `linear` section alone, validated with the schema's defaults: the 2-D toy
    (`toy`, `toy_seed`) is one figure for the whole run, read from here, not per dataset."""
    if not _LINEAR_TOPLEVEL:
        try:
            _LINEAR_TOPLEVEL.update(_config.validate(_config.merge({}, config.get("linear")),
                                                     SCHEMAS / "linear.schema.yaml",
                                                     where="linear"))
        except UserError as err:
            _refuse(err)
    return _LINEAR_TOPLEVEL


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
            targets.append(fill(LINEAR_REFERENCE, dataset=dataset, embedding=emb))
            targets += expand(LINEAR_TRAIN, dataset=dataset, embedding=emb,
                              optimizer=linear_optimizers(dataset))
            targets += expand(LINEAR_FIGURE, dataset=dataset, embedding=emb,
                              name=LINEAR_FIGURES, ext=("png", "pdf"))
    if linear_toplevel()["toy"]:
        targets += expand(LINEAR_TOY, ext=("png", "pdf"))
    return targets


def linear_embedding_spec(wildcards):
    return linear_section(wildcards.dataset)["embeddings"][wildcards.embedding]


def linear_store(wildcards):
    """The store an embedding reads: a training run (source train) or an svm solution (svm)."""
    spec = linear_embedding_spec(wildcards)
    if spec["source"] == "train":
        return fill(TRAIN, dataset=wildcards.dataset, model=spec["model"], run=spec["run"])
    if spec["source"] == "svm":
        return fill(SVM, dataset=wildcards.dataset, solver=spec["solver"])
    return []


def linear_reference_params(wildcards):
    """The dataset's whole `linear` section (the reference's provenance records it; the script
    takes the {embedding} entry from it)."""
    return {"linear": linear_section(wildcards.dataset)}


def linear_train_params(wildcards):
    """This run's part of the dataset's `linear` section: its options and its own `optimizers`
    entry, without the other entries and the embeddings (editing those reruns no other run)."""
    section = linear_section(wildcards.dataset)
    run = wildcards.optimizer
    options = {k: v for k, v in section.items() if k not in ("embeddings", "optimizers")}
    return {"linear": {**options, "optimizers": {run: section["optimizers"][run]}}}


def linear_train_stores(wildcards):
    return expand(LINEAR_TRAIN, dataset=wildcards.dataset, embedding=wildcards.embedding,
                  optimizer=linear_optimizers(wildcards.dataset))


def linear_toy_seed(wildcards):
    return linear_toplevel()["toy_seed"]


# -- parameter grids (rules/grid.smk) -------------------------------------------------------------
def _parse_grids():
    """Every `grids:` entry as a GridSpec; a bad entry is one line naming the setting."""
    grids = {}
    for name, entry in (config.get("grids") or {}).items():
        try:
            grids[name] = parse_grid(name, entry or {}, datasets=DATASETS)
        except UserError as err:
            _refuse(err)
    if grids:
        # set_default=False: the schema documents the point defaults, GridPoint states them.
        try:
            _config.validate({"grids": config["grids"]}, SCHEMAS / "grid.schema.yaml",
                             set_default=False)
        except UserError as err:
            _refuse(err)
    return grids


GRIDS = _parse_grids()


# Without this, `results/grid/{grid}.zarr` would also match a batch store (grid = "g/batches/...").
wildcard_constraints:
    grid="|".join(GRIDS) or "none",
    batch=".+",  # a pattern has slashes (model~ufm/d~8/seed~0)


def _code_digest(paths):
    """sha256 over the files' contents: one param that changes when any of them does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


# The package sources a point runs (every point trains through the `train` package's engine), as one
# digest param rather than ~10 inputs per point: Snakemake matches every input of every job against
# every rule's outputs, which made a 1,000-point dry-run 2x slower. Editing any of them changes the
# digest, and the `params` rerun trigger reruns every point.
GRID_POINT_CODE = _code_digest(src_files("studies/grid", "studies/grid_points", "metrics", "theory/reference", "train"))


def grid_targets():
    """Each grid's aggregate and figure."""
    return expand([GRID, GRID_FIGURE], grid=GRIDS)


# Every grid trains in batches, one job (rule grid_batch) and one store per batch; a batch of one
# is a batch. With `batch: 1` (the default) a batch is one point and is named by the point's
# pattern, so nothing walks the grid at parse time and editing one axis value reruns exactly the
# points that changed (`--rerun-triggers params`). With `batch > 1` equal-shape points train
# together (on a GPU one vmap-ed step, one CUDA graph) in batches named b0, b1, …: listing them
# walks every point, so only grids that ask for it pay, once.
def grid_batches(grid):
    """batch name → the patterns of its points (:func:`ntpgeom.studies.grid.batch_names`), or
    None for a grid of one point per batch, whose batch names are the point patterns."""
    spec = GRIDS[grid]
    if spec.batch == 1:
        return None
    if grid not in _GRID_BATCHES:
        _GRID_BATCHES[grid] = batch_names(spec)
    return _GRID_BATCHES[grid]


_GRID_BATCHES = {}


def grid_batch_patterns(wildcards):
    """The patterns of the batch's points."""
    batches = grid_batches(wildcards.grid)
    if batches is None:
        return [wildcards.batch]
    if wildcards.batch not in batches:
        raise WorkflowError(f"grid {wildcards.grid} has no batch {wildcards.batch}; its batches "
                            f"are b0 … b{len(batches) - 1}")
    return batches[wildcards.batch]


def grid_points(wildcards):
    """The batch's points as ntpgeom.studies.grid.GridPoint (defaults ← grid's fixed ← axis
    values)."""
    spec = GRIDS[wildcards.grid]
    return [spec.point(p) for p in grid_batch_patterns(wildcards)]


def grid_batch_points(wildcards):
    """The settings of the batch's points as plain mappings (the script builds each GridPoint
    from them)."""
    return [point.to_dict() for point in grid_points(wildcards)]


def grid_batch_input(wildcards):
    """The batch's table (from the table stage) and, unless L^mm is in closed form, its svm store
    (equal for every point of a batch: dataset and solver are shape keys)."""
    point = grid_points(wildcards)[0]
    inputs = {"table": fill(TABLE, dataset=point.dataset)}
    if point.solver != "closed_form":
        inputs["svm"] = fill(SVM, dataset=point.dataset, solver=point.solver)
    return inputs


def grid_batch_runtime(wildcards, attempt):
    """Minutes: ~1 s per 1,000 small UFM steps on one core, generously rounded, times the points
    trained one after the other (transformers; vmap-ed UFM points cost about one); doubled per
    retry."""
    points = grid_points(wildcards)
    serial = len(points) if points[0].model == "transformer" else 1
    return (5 + serial * points[0].epochs // 2000) * attempt


# Batched grids are meant for a GPU; `--config grid_batch_gpu=false` runs them on CPU cores.
GRID_BATCH_GPU = config["grid_batch_gpu"]  # validated: a bool, default from the schema


def grid_batch_gpu(wildcards):
    """A batch asks for a GPU when it trains transformers, or when it batches several points
    (unless grid_batch_gpu is false); single UFM points are tiny and run on a CPU core."""
    points = grid_points(wildcards)
    return int(points[0].model == "transformer" or len(points) > 1 and GRID_BATCH_GPU)


def grid_batch_stores(wildcards):
    """Every batch store of the grid, in grid order (the aggregate's inputs)."""
    batches = grid_batches(wildcards.grid)
    names = GRIDS[wildcards.grid].patterns() if batches is None else batches
    return expand(GRID_BATCH, grid=wildcards.grid, batch=list(names))


def grid_definition(wildcards):
    return GRIDS[wildcards.grid].definition()


def grid_mem_mb(wildcards, attempt):
    """The aggregate holds every point in memory: ~50 kB each for the default tables."""
    return (1024 + GRIDS[wildcards.grid].size // 10) * attempt
