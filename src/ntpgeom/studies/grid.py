"""Parameter grids: named axes over the point parameters and their expansion into batches.

A grid (``config.yaml`` → ``grids: {name: {axes: ..., fixed: ...}}``) is the Cartesian product of
its axes. Each point is one training run; points train in batches (a batch of one by default,
:func:`batch_names`), one store per batch (``results/grid/{grid}/batches/{batch}.zarr``, its points
on dim ``point``), and the aggregate stacks every point into one dataset with the axes as
dimensions (``results/grid/{grid}.zarr``, ``docs/artifacts.md``); running the points and the
aggregate are :mod:`ntpgeom.studies.grid_points`. This module is what the workflow imports at
parse time: no torch, no xarray.

Point paths use Snakemake's ``Paramspace`` format (``model~ufm/d~8/seed~0``), built here from the
axis values without Snakemake, so the expansion is pure and unit-tested and costs nothing per point
at parse time: the workflow only enumerates patterns when the aggregate's inputs are asked for.

One point's settings are a :class:`GridPoint`, which states their defaults (the same names as the
training stage's ``train:`` section, plus the table-level keys ``dataset``, ``count_model``,
``zipf_a`` and the source of L^mm, ``solver``); :data:`POINT_KEYS` says what values each may take.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ntpgeom.config import from_section, to_section
from ntpgeom.errors import UserError
from ntpgeom.theory.reference import RANK_RTOL

#: Separator between an axis name and its value, and between axes, in a point's path (Paramspace).
PARAM_SEP = "~"


@dataclass(frozen=True)
class GridPoint:
    """One grid point's settings: the defaults of ``$defs/point`` in ``schemas/grid.schema.yaml``
    (which documents the same values; ``tests/test_config_sections.py`` proves they agree).

    A grid's ``fixed`` entries override them and its axis values override those
    (:meth:`GridSpec.point`). Config keys are the field names except ``lambda``, a Python keyword:
    the field ``lambda_``.
    """

    dataset: str | None = None  # a name from `datasets:`; None = the first one (parse_grid)
    model: str = "ufm"
    d: int = 16
    optimizer: str = "gd"
    lr: float = 0.5
    lambda_: float = field(default=0.0, metadata={"key": "lambda"})  # the ridge λ; 0 = none
    seed: int = 0
    epochs: int = 2000
    checkpoints: int = 40
    count_model: str = "table"
    zipf_a: float = 1.0
    solver: str = "closed_form"
    rank_rtol: float = RANK_RTOL

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "grid point") -> GridPoint:
        """From a point's settings (missing keys: the defaults; unknown keys: refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        """The settings as config keys (``lambda``), in field order: a job's params and a
        point store's provenance."""
        return to_section(self)


#: What each point setting may be: (type, allowed values or None, meaning), by config key in
#: :class:`GridPoint`'s order (which states the defaults).
POINT_KEYS: dict[str, tuple[type | tuple[type, ...], tuple[Any, ...] | None, str]] = {
    "dataset": (str, None, "dataset name from `datasets:` (default: the first one)"),
    "model": (str, ("ufm", "transformer"), "the model trained at the point"),
    "d": (int, None, "embedding width d"),
    "optimizer": (str, ("gd", "adam", "adamw"),
                  "gd and adam add the ridge λ(‖W‖²+‖H‖²) to the loss; adamw decays by λ"),
    "lr": ((int, float), None, "step size"),
    "lambda": ((int, float), None, "ridge λ (explicit regularization; 0 = none)"),
    "seed": (int, None, "seed of the initialization"),
    "epochs": (int, None, "full-batch steps"),
    "checkpoints": (int, None, "log-spaced steps at which metrics are recorded"),
    "count_model": (str, ("table", "uniform", "zipf"),
                    "counts of each (context, token) pair: as in the table, all equal, or Zipf "
                    "by token popularity; the supports never change"),
    "zipf_a": ((int, float), None, "Zipf exponent of count_model=zipf"),
    "solver": (str, None,
               "where L^mm comes from: closed_form (S̄, exact for k-subset tables) or an svm "
               "stage solver whose store results/{dataset}/svm/{solver}.zarr is read"),
    "rank_rtol": ((int, float), None,
                  "singular values at or below rank_rtol × σ_1 count as zero in target_rank "
                  "(as geometry.rank_rtol)"),
}

#: Keys that fix the shapes of a training run; points equal in these train in one batched step.
#: (Each is also the name of its GridPoint field.)
SHAPE_KEYS = ("dataset", "model", "d", "epochs", "checkpoints", "count_model", "zipf_a", "solver")

#: Figures a grid can ask for (:mod:`ntpgeom.plots.grid_figures`); ``curves`` fits any grid.
FIGURES = ("curves", "d_sweep", "reg_path", "imbalance", "seeds")


@dataclass(frozen=True)
class GridSpec:
    """One grid: its name, its axes (in order) and the values fixed for every point.

    Attributes
    ----------
    name : str
        The grid's name (``results/grid/{name}.zarr``).
    axes : dict of str to list
        Axis name → values, in the order they become dimensions and path components.
    fixed : dict
        Point settings that are the same for every point (override ``defaults``).
    defaults : GridPoint
        :class:`GridPoint`'s defaults with the dataset default filled in.
    figure : str
        Which figure draws the aggregate (one of :data:`FIGURES`).
    batch : int
        At most this many equal-shape points train in one job (1 = a job per point).
    """

    name: str
    axes: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    defaults: GridPoint = field(default_factory=GridPoint)
    figure: str = "curves"  # the schema's default of a grid's `figure` (and parse_grid's)
    batch: int = 1  # the schema's default of a grid's `batch` (and parse_grid's)

    @classmethod
    def from_dict(cls, definition: Mapping[str, Any]) -> GridSpec:
        """From :meth:`definition` (a job's params): the inverse, ``defaults`` as a
        :class:`GridPoint`."""
        return from_section(cls, definition, f"grids.{definition.get('name')}")

    @property
    def size(self) -> int:
        """Number of points (the product of the axis lengths)."""
        return math.prod(len(v) for v in self.axes.values())

    def patterns(self) -> Iterable[str]:
        """Every point's path pattern, in C order over the axes (the last axis varies fastest)."""
        names = list(self.axes)
        for values in itertools.product(*self.axes.values()):
            yield "/".join(f"{k}{PARAM_SEP}{v}" for k, v in zip(names, values, strict=True))

    @cached_property
    def _index(self) -> dict[str, tuple[Any, ...]]:
        # Built once per grid, on the first lookup (when jobs are created), never at parse time.
        return dict(zip(self.patterns(), itertools.product(*self.axes.values()), strict=True))

    def point(self, pattern: str) -> GridPoint:
        """The settings of the point at ``pattern``: defaults ← fixed ← axis values.

        Raises
        ------
        UserError
            If ``pattern`` is not a point of this grid.
        """
        try:
            values = self._index[pattern]
        except KeyError:
            raise UserError(f"grids.{self.name}: no point '{pattern}'; points look like "
                            f"'{next(iter(self.patterns()))}'") from None
        return GridPoint.from_dict({**self.defaults.to_dict(), **self.fixed,
                                    **dict(zip(self.axes, values, strict=True))},
                                   where=f"grids.{self.name}")

    def definition(self) -> dict[str, Any]:
        """The grid as JSON-able data (stored in the aggregate's attrs; :meth:`from_dict` reads
        it back)."""
        return to_section(self)

    def batches(self) -> list[list[str]]:
        """The points' patterns in jobs of at most ``batch`` points of equal :func:`batch_key`.

        Points keep their grid order inside a batch; batches follow the first point of each.
        This walks every point, so the workflow calls it only for grids with ``batch > 1``.
        """
        groups: dict[tuple[Any, ...], list[list[str]]] = {}
        order: list[list[str]] = []
        for pattern in self.patterns():
            chunks = groups.setdefault(batch_key(self.point(pattern)), [])
            if not chunks or len(chunks[-1]) >= self.batch:
                chunks.append([])
                order.append(chunks[-1])
            chunks[-1].append(pattern)
        return order


def _check_value(where: str, key: str, value: Any, datasets: Sequence[str]) -> None:
    typ, allowed, _ = POINT_KEYS[key]
    # bool is an int subclass: `d: true` is a typo, not d=1.
    if isinstance(value, bool) or not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise UserError(f"{where}: {key} must be {names}; got {value!r}")
    if allowed is not None and value not in allowed:
        raise UserError(f"{where}: unknown {key} '{value}'; choose from {', '.join(allowed)}")
    if key == "dataset" and value not in datasets:
        raise UserError(f"{where}: unknown dataset '{value}'; choose from {', '.join(datasets)}")
    if key in ("d", "epochs", "checkpoints") and value < 1:
        raise UserError(f"{where}: {key} must be at least 1; got {value}")
    if key in ("lr", "zipf_a", "rank_rtol") and not value > 0:
        raise UserError(f"{where}: {key} must be positive; got {value}")
    if key == "lambda" and value < 0:
        raise UserError(f"{where}: lambda must be >= 0; got {value}")
    if isinstance(value, str) and ("/" in value or PARAM_SEP in value or not value):
        raise UserError(f"{where}: {key} value '{value}' may not be empty or contain '/' or "
                        f"'{PARAM_SEP}' (it becomes part of a path)")


def parse_grid(name: str, entry: Mapping[str, Any], *, datasets: Sequence[str]) -> GridSpec:
    """Validate one ``grids:`` entry and return its :class:`GridSpec`.

    Every mistake is one :class:`UserError` line naming the setting (``grids.<name>.axes.<axis>``).

    Parameters
    ----------
    name : str
        The grid's name.
    entry : mapping
        ``{"axes": {axis: [values]}, "fixed": {key: value}}``.
    datasets : sequence of str
        The configured dataset names (valid values of the ``dataset`` axis; the first is the
        default dataset).
    """
    where = f"grids.{name}"
    if not name or PARAM_SEP in name or "/" in name:
        raise UserError(f"{where}: a grid name may not be empty or contain '/' or '{PARAM_SEP}'")
    unknown = set(entry) - {"axes", "fixed", "figure", "batch", "description"}
    if unknown:
        raise UserError(f"{where}: unknown setting '{sorted(unknown)[0]}'; choose from axes, "
                        "fixed, figure, batch, description")
    batch = entry.get("batch", GridSpec.batch)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"{where}.batch: must be an integer >= 1 (points per job); got {batch!r}")
    figure = entry.get("figure", GridSpec.figure)
    if figure not in FIGURES:
        raise UserError(f"{where}.figure: unknown figure '{figure}'; choose from "
                        f"{', '.join(FIGURES)}")
    axes = entry.get("axes") or {}
    if not isinstance(axes, Mapping) or not axes:
        raise UserError(f"{where}.axes: a grid needs at least one axis, e.g. axes: {{d: [8, 16]}}")
    valid = ", ".join(POINT_KEYS)
    out: dict[str, list[Any]] = {}
    for axis, values in axes.items():
        at = f"{where}.axes.{axis}"
        if axis not in POINT_KEYS:
            raise UserError(f"{at}: unknown axis '{axis}'; choose from {valid}")
        if not isinstance(values, list) or not values:
            raise UserError(f"{at}: needs a non-empty list of values; got {values!r}")
        for v in values:
            _check_value(at, axis, v, datasets)
        # Two equal values would be one path: the aggregate could not tell them apart.
        labels = [str(v) for v in values]
        if len(set(labels)) != len(labels):
            raise UserError(f"{at}: values must be distinct; got {values}")
        out[axis] = list(values)
    fixed = dict(entry.get("fixed") or {})
    for key, value in fixed.items():
        at = f"{where}.fixed.{key}"
        if key not in POINT_KEYS:
            raise UserError(f"{at}: unknown setting '{key}'; choose from {valid}")
        if key in out:
            raise UserError(f"{at}: '{key}' is also an axis; keep one of the two")
        _check_value(at, key, value, datasets)
    defaults = GridPoint(dataset=datasets[0] if datasets else None)
    return GridSpec(name=name, axes=out, fixed=fixed, defaults=defaults, figure=figure,
                    batch=batch)


def batch_key(point: GridPoint | Mapping[str, Any]) -> tuple[Any, ...]:
    """Points with equal keys have equal shapes and can train in one batched step."""
    point = GridPoint.from_dict(point)
    return tuple(getattr(point, k) for k in SHAPE_KEYS)


def batch_names(spec: GridSpec) -> dict[str, list[str]]:
    """Batch name → the patterns of its points: the jobs of the grid and their stores.

    A batch of one is a batch: with ``batch: 1`` every point is its own batch, named by its
    pattern (``d~4_seed~0``); with ``batch > 1`` the batches of :meth:`GridSpec.batches` are
    named ``b0``, ``b1``, … in grid order.
    """
    if spec.batch == 1:
        return {p: [p] for p in spec.patterns()}
    return {f"b{i}": patterns for i, patterns in enumerate(spec.batches())}
