"""What a figure reads: a :class:`Bundle` of one dataset's opened stores (or every dataset's, for
the overlays), its runs (:class:`Run`), and the colours the paper gives them.

The figure scripts (``scripts/figure.py``, ``scripts/figure_overlay.py``) open the stores and call
:func:`make_bundle` / :func:`make_overlay`: runs are matched across their training and geometry
stores by the identity each records in its attrs (:func:`ntpgeom.store.run_identity`), each
NTP-SVM solution is named by its attr ``solver_name`` (:func:`ntpgeom.store.solver_name`),
so nothing here reads a path.

Colours follow the paper: a run's colour is fixed by its dataset's colour family, its model and
its place among the runs of that (dataset, model). The families are the paper's (§2.5): synthetic
data gold (UFM) / dark orange (TF), real text deep sky blue (UFM) / steel blue (TF); further
datasets get greens and reds (:func:`dataset_families`, computed once from the config, so a
dataset keeps its colours in its own figures and in the overlays).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ntpgeom.store import run_identity, solver_name

#: Colour families per (family, model): paper §2.5's gold/darkorange (family 0, "Synthetic") and
#: deepskyblue/steelblue (family 1, "Simplified TinyStories"); families 2 and 3 (greens, reds) are
#: ours, for a third and fourth dataset. Further runs of a (dataset, model) take the next shade.
PALETTES = {
    (0, "ufm"): ["gold", "goldenrod", "darkkhaki", "olive"],
    (0, "transformer"): ["darkorange", "orangered", "chocolate", "saddlebrown"],
    (1, "ufm"): ["deepskyblue", "dodgerblue", "lightseagreen", "teal"],
    (1, "transformer"): ["steelblue", "navy", "slateblue", "midnightblue"],
    (2, "ufm"): ["yellowgreen", "olivedrab", "darkseagreen", "darkolivegreen"],
    (2, "transformer"): ["seagreen", "darkgreen", "mediumseagreen", "forestgreen"],
    (3, "ufm"): ["lightcoral", "indianred", "rosybrown", "brown"],
    (3, "transformer"): ["crimson", "darkred", "firebrick", "maroon"],
}
#: The family the paper gives each kind of data source: synthetic gold/orange, real text blue.
SOURCE_FAMILY = {"synthetic": 0, "text": 1, "huggingface": 1}
MODEL_NAMES = {"ufm": "UFM", "transformer": "TF"}
#: The label of the overlays' pseudo-dataset (the suptitles of figures drawn from every dataset).
ALL_DATASETS = "all datasets"


@dataclass
class Run:
    """One training run: its stores and how it is labelled."""

    dataset: str
    model: str
    run: str
    train: Any = None      # xarray.Dataset: results/{dataset}/train/{model}/{run}.zarr
    geometry: Any = None   # xarray.Dataset: results/{dataset}/geometry/{model}/{run}.zarr
    color: str = "black"
    #: The NTP-SVM solver whose L^mm the run is compared with (its dataset's first); None: the
    #: bundle's first solver.
    solver: str | None = None

    @property
    def label(self) -> str:
        return f"{MODEL_NAMES.get(self.model, self.model)} {self.run}"


@dataclass
class Bundle:
    """Everything a figure of one dataset may plot (loaded by
    :func:`make_bundle`).

    ``reference`` is ``reference.zarr``, ``svm`` maps solver names to ``svm/{solver}.zarr``,
    ``table`` is the :class:`ntpgeom.data.table.Table`; any of them may be missing when the figure's
    rule does not need it.
    """

    dataset: str
    runs: list[Run] = field(default_factory=list)
    reference: Any = None
    svm: dict[str, Any] = field(default_factory=dict)
    table: Any = None
    #: dataset → colour family (:func:`dataset_families`); empty: by order of appearance.
    families: dict[str, int] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        """The datasets of the runs, in order of appearance (several in an overlay)."""
        return list(dict.fromkeys(r.dataset for r in self.runs))

    def run_label(self, run: Run) -> str:
        """The run's legend label; prefixed with its dataset when runs of several are drawn."""
        return f"{run.dataset}, {run.label}" if len(self.datasets) > 1 else run.label


def dataset_families(sources: Mapping[str, str]) -> dict[str, int]:
    """The colour family of each dataset (``{dataset: source}``, in config order).

    A dataset takes the family the paper gives its source (:data:`SOURCE_FAMILY`: synthetic 0,
    real text 1) if no earlier dataset has it; the others then take the free families in order
    (after the four of :data:`PALETTES`, families repeat). So the default config's two synthetic
    datasets are gold/orange and blue, and a TinyStories dataset added to them is blue while the
    second synthetic one moves to green.
    """
    out: dict[str, int] = {}
    for name, source in sources.items():
        family = SOURCE_FAMILY.get(source)
        if family is not None and family not in out.values():
            out[name] = family
    n_families = len({f for f, _ in PALETTES})
    free = (f for f in range(10**6) if f not in out.values())
    for name in sources:
        if name not in out:
            out[name] = next(free) % n_families
    return {name: out[name] for name in sources}


def assign_colors(runs: Sequence[Run], families: Mapping[str, int] | None = None) -> None:
    """Fix each run's colour from its dataset's family, its model and its place in that
    (dataset, model). Without ``families``, datasets take families 0, 1, … in order of
    appearance."""
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    if not families or any(d not in families for d in datasets):
        families = {d: i for i, d in enumerate(datasets)}
    n_families = len({f for f, _ in PALETTES})
    seen: dict[tuple[str, str], int] = {}
    for r in runs:
        shades = PALETTES.get((families[r.dataset] % n_families, r.model),
                              ["black", "dimgray", "grey", "darkgray"])
        key = (r.dataset, r.model)
        r.color = shades[seen.get(key, 0) % len(shades)]
        seen[key] = seen.get(key, 0) + 1


def match_runs(train: Iterable[Any] = (), geometry: Iterable[Any] = ()) -> list[Run]:
    """The runs of the given training and geometry datasets, each matched by (dataset, model,
    run) from its attrs, in order of first appearance."""
    runs: dict[tuple[str, str, str], Run] = {}
    for kind, stores in (("train", train), ("geometry", geometry)):
        for ds in stores:
            key = run_identity(ds)
            setattr(runs.setdefault(key, Run(*key)), kind, ds)
    return list(runs.values())


def make_bundle(dataset: str, *, train: Iterable[Any] = (), geometry: Iterable[Any] = (),
                reference: Any = None, svm: Iterable[Any] = (), table: Any = None,
                families: Mapping[str, int] | None = None) -> Bundle:
    """One dataset's opened stores as a :class:`Bundle`.

    ``svm``: ``svm/{solver}.zarr`` datasets in config order (the first is the one
    single-solver figures show). ``families``: dataset → colour family
    (:func:`dataset_families`).
    """
    return Bundle(dataset=dataset, runs=match_runs(train, geometry), reference=reference,
                  svm={solver_name(ds): ds for ds in svm}, table=table,
                  families=dict(families or {}))


def make_overlay(*, train: Iterable[Any] = (), geometry: Iterable[Any] = (),
                 families: Mapping[str, int] | None = None) -> Bundle:
    """The runs of every dataset in one :class:`Bundle` (dataset :data:`ALL_DATASETS`).

    Each run is compared with its own dataset's first solver, which its geometry store names
    (attr ``solvers``, in config order): the geometry stores hold the comparisons, so the svm
    stores themselves are not needed.
    """
    runs = match_runs(train, geometry)
    for r in runs:
        if r.geometry is not None:
            r.solver = str(r.geometry.attrs["solvers"][0])
    return Bundle(dataset=ALL_DATASETS, runs=runs, families=dict(families or {}))
