# Helpers shared by every stage: config validation, per-dataset config sections, package
# sources as tracked inputs, and the one place where target lists are built.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from ntpgeom import config as _config
from ntpgeom.errors import UserError

SCHEMAS = Path(workflow.basedir) / "schemas"
PACKAGE = Path(workflow.basedir) / "src" / "ntpgeom"
# The sections a dataset entry may override (each has schemas/<section>.schema.yaml).
SECTIONS = ("table", "svm", "train", "geometry", "linear")


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
    # The linear-model study only when the config has a `linear` section (rules/linear.smk).
    return targets + (linear_targets() if "linear" in config else [])
