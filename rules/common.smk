# Helpers shared by every stage: config validation, per-dataset config sections, package
# sources as tracked inputs, and the one place where target lists are built.
import copy
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
# Folders the workflow writes at the top of results/ beside the datasets' results/<name>/: a
# dataset so named would share them (a dataset `grid` beside a grid made rule outputs ambiguous).
RESERVED_DATASET_NAMES = ("figures", "grid", "report")
_reserved = [name for name in DATASETS if name.lower() in RESERVED_DATASET_NAMES]
if _reserved:
    # One line and exit 1, like every config mistake (no Snakemake header or .smk frames).
    print(f"config: datasets.{_reserved[0]}: the name is reserved (results/{_reserved[0]}/ "
          f"holds other results; reserved: {', '.join(RESERVED_DATASET_NAMES)}); rename the "
          "dataset", file=sys.stderr, flush=True)
    raise SystemExit(1)
SCHEMAS = Path(workflow.basedir) / "schemas"
PACKAGE = Path(workflow.basedir) / "src" / "ntpgeom"


wildcard_constraints:
    dataset="|".join(DATASETS) or "none",


def _merge(base, override):
    """Deep-merge override into a copy of base (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
        merged = _merge(config.get(section, {}), config["datasets"][dataset].get(section, {}))
        try:
            validate(merged, schema=str(SCHEMAS / f"{section}.schema.yaml"))
        except Exception as err:  # a schema failure names the dataset and section
            raise WorkflowError(f"config: datasets.{dataset}.{section} / {section}: {err}")
        _SECTIONS[key] = merged
    return _SECTIONS[key]


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
