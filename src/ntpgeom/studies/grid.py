"""Parameter grids: named axes over the point parameters, their expansion, and their aggregate.

A grid (``config.yaml`` → ``grids: {name: {axes: ..., fixed: ...}}``) is the Cartesian product of
its axes. Each point is one training run; points train in batches (a batch of one by default,
:func:`batch_names`), one store per batch (``results/grid/{grid}/batches/{batch}.zarr``, its points
on dim ``point``), and the aggregate stacks every point into one dataset with the axes as
dimensions (``results/grid/{grid}.zarr``, ``docs/artifacts.md``).

Point paths use Snakemake's ``Paramspace`` format (``model~ufm/d~8/seed~0``), built here from the
axis values without Snakemake, so the expansion is pure and unit-tested and costs nothing per point
at parse time: the workflow only enumerates patterns when the aggregate's inputs are asked for.

One point's settings are a :class:`GridPoint`, which states their defaults (the same names as the
training stage's ``train:`` section, plus the table-level keys ``dataset``, ``count_model``,
``zipf_a`` and the source of L^mm, ``solver``); :data:`POINT_KEYS` says what values each may take.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ntpgeom.config import from_section, to_section
from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.metrics.trajectory import LOGIT_METRICS, run_metrics, target_metrics
from ntpgeom.metrics.vocabulary import describe
from ntpgeom.theory.reference import RANK_RTOL

if TYPE_CHECKING:  # xarray only where a store is built: the workflow imports this at parse time
    import xarray as xr

log = logging.getLogger(__name__)

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


def batch_dataset(points: Sequence[Any], patterns: Sequence[str]):
    """One batch's store: its points' datasets (:func:`point_dataset`) stacked on a ``point``
    dim labelled by their patterns; each point's parameters stay in attrs ``points``."""
    import xarray as xr

    from ntpgeom.store import provenance

    parts = []
    for ds in points:
        ds = ds.copy()
        ds.attrs = {}
        parts.append(ds)
    batch = xr.concat(parts, dim="point", coords="minimal", compat="override",
                      data_vars="all")
    batch = batch.assign_coords(point=("point", np.array(list(patterns), dtype=object)))
    batch.attrs = provenance({"points": [json.loads(ds.attrs.get("config") or "{}")
                                         for ds in points]},
                             wall_seconds=sum(float(ds.attrs.get("wall_seconds") or 0)
                                              for ds in points))
    return batch


# -- tables -------------------------------------------------------------------------------------
def reweight_counts(table: Table, count_model: str, *, zipf_a: float = 1.0) -> Table:
    """The same supports with new pair counts: the ``imbalance`` grid's knob.

    ``table`` keeps the counts; ``uniform`` gives every (context, token) pair count 1 (so π is
    ∝ support size and P uniform on each support); ``zipf`` gives token z the count
    ⌈1000 / r_z^a⌉, r_z its popularity rank (1 = the token in most supports), so frequent words
    dominate both P and π. L^mm depends on the supports only (``docs/paper.md`` §1.5), so it must
    not change; L* and the training speed do.

    Raises
    ------
    UserError
        On an unknown ``count_model``.
    """
    if count_model == "table":
        return table
    if count_model == "uniform":
        counts = np.ones_like(table.pair_count)
    elif count_model == "zipf":
        popularity = np.bincount(table.indices, minlength=table.V)
        # rank 1 = most supports; ties broken by token order so the result is deterministic
        order = np.lexsort((np.arange(table.V), -popularity))
        rank = np.empty(table.V, dtype=np.int64)
        rank[order] = np.arange(1, table.V + 1)
        counts = np.ceil(1000.0 / rank[table.indices] ** zipf_a).astype(np.int64)
    else:
        raise UserError(f"count_model: unknown '{count_model}'; choose from table, uniform, zipf")
    attrs = {**table.attrs, "count_model": count_model}
    if count_model == "zipf":
        attrs["zipf_a"] = float(zipf_a)
    return Table(contexts=table.contexts, tokens=table.tokens, input_tokens=table.input_tokens,
                 context_ids=table.context_ids, indptr=table.indptr, indices=table.indices,
                 pair_count=counts, source=table.source, attrs=attrs)


def max_margin_logits(table: Table, solver: str, svm: xr.Dataset | None = None, *,
                      where: str = "the svm store") -> np.ndarray:
    """L^mm (V × m) for a point: S̄ in closed form, or the svm stage's solution.

    Parameters
    ----------
    table : Table
    solver : str
        ``closed_form``, or the svm stage solver whose store ``svm`` is.
    svm : xarray.Dataset, optional
        The opened ``results/{dataset}/svm/{solver}.zarr`` (unused for ``closed_form``).
    where : str
        What to call ``svm`` in error messages (the script passes its path).

    Raises
    ------
    UserError
        If ``closed_form`` is asked for a table without a closed form, the store is missing, or
        its L^mm is not of the table's shape.
    """
    from ntpgeom.theory.reference import centered_support

    if solver == "closed_form":
        if table.attrs.get("closed_form") != "S_bar":
            raise UserError(f"solver: closed_form needs a k-subset table (L^mm = S̄); the table "
                            f"'{table.source}' has none: set the grid's solver to an svm stage "
                            "solver (e.g. fixed: {solver: scs})")
        return centered_support(table.S())
    if svm is None:
        raise UserError(f"solver: '{solver}' needs the svm stage's store "
                        "results/{dataset}/svm/{solver}.zarr")
    L = svm["L_mm"].transpose("token", "context").values
    if L.shape != (table.V, table.m):
        raise UserError(f"{where}: L_mm is {L.shape}, the table is {(table.V, table.m)}; "
                        "rebuild the svm store")
    return np.asarray(L, dtype=float)


# -- point stores and the aggregate ------------------------------------------------------------
def point_dataset(history: Mapping[str, np.ndarray], *, table: Table,
                  targets: Mapping[str, np.ndarray], point: GridPoint | Mapping[str, Any],
                  wall_seconds: float | None = None):
    """One point's store: its metrics per ``step`` (and ``target``) and its scalars.

    Parameters
    ----------
    history : mapping
        From :func:`ntpgeom.metrics.trajectory.run_metrics` (``dist_L`` against ``targets``).
    table : Table
        The point's table.
    targets : mapping of str to ndarray (V, m)
        ``L_mm`` (the point's max-margin logits) and ``S_bar``, in the order of ``history``.
    point : GridPoint or mapping
        The point's settings (into attrs; ``d`` and ``rank_rtol`` are used here).
    """
    import xarray as xr

    from ntpgeom.store import provenance

    point = GridPoint.from_dict(point)

    obj = np.dtype(object)
    names = list(targets)
    data: dict[str, Any] = {k: ("step", np.asarray(history[k], dtype=float))
                            for k in ("loss", *LOGIT_METRICS)}
    data["dist_L"] = (("step", "target"), np.asarray(history["dist_L"], dtype=float))
    data["L_final"] = (("token", "context"), np.asarray(history["L_final"], dtype=float))
    for key, values in target_metrics(targets, d=int(point.d),
                                      rank_rtol=float(point.rank_rtol)).items():
        data[key] = ("target", values)
    data["entropy"] = ((), float(table.entropy))
    ds = xr.Dataset(
        data,
        coords={"step": ("step", np.asarray(history["step"], dtype=np.int64)),
                "target": ("target", np.array(names, dtype=obj)),
                "token": ("token", np.array(table.tokens, dtype=obj)),
                "context": ("context", np.array(table.contexts, dtype=obj))},
    )
    describe(ds)
    ds.attrs = provenance(point.to_dict(), wall_seconds=wall_seconds, m=table.m, V=table.V,
                          rank_rtol=float(point.rank_rtol))
    return ds


def incomplete_batch(spec: GridSpec, path: str | os.PathLike) -> UserError:
    """The error for a batch store without ``zarr.json``: an interrupted write never counts (the
    aggregate's script checks each store before opening it)."""
    return UserError(f"grids.{spec.name}: batch store {path} is incomplete or missing; "
                     "rerun the grid (snakemake --rerun-incomplete)")


def aggregate(spec: GridSpec, batches: Mapping[str, xr.Dataset], *,
              where: Mapping[str, str | os.PathLike] | None = None):
    """Stack every point into one dataset with the grid's axes as dimensions.

    Parameters
    ----------
    spec : GridSpec
        The grid.
    batches : mapping
        Batch name (:func:`batch_names`) → its opened store (:func:`batch_dataset`); together
        they must hold every point of the grid.
    where : mapping, optional
        Batch name → what to call its store in error messages (the script passes the paths);
        by default the batch's name.

    Returns
    -------
    xarray.Dataset
        Each point variable gains the axes as leading dims, in the grid's order and with its
        values in the declared order. Points whose ``step`` (or ``token``/``context``) coords
        differ are aligned by an outer join, gaps filled with NaN.

    Raises
    ------
    UserError
        If a batch is missing or its store lacks one of its points. (An incomplete store, one
        without ``zarr.json``, is refused before it is opened: :func:`incomplete_batch`.)
    """
    import xarray as xr

    from ntpgeom.store import provenance

    names = batch_names(spec)
    missing = [b for b in names if b not in batches]
    if missing:
        raise UserError(f"grids.{spec.name}: {len(missing)} batches have no store, e.g. "
                        f"'{missing[0]}'; run the grid first")
    found: dict[str, Any] = {}
    for name, patterns in names.items():
        ds = batches[name]
        held = [str(p) for p in ds["point"].values]
        if held != list(patterns):
            label = where[name] if where is not None else f"'{name}'"
            raise UserError(f"grids.{spec.name}: batch store {label} holds points {held[:3]}…, "
                            f"not the grid's {list(patterns)[:3]}…; rerun the grid")
        for pattern in patterns:
            found[pattern] = ds.sel(point=pattern, drop=True)
    parts = []
    for pattern in spec.patterns():
        ds = found[pattern]
        ds.attrs = {}
        parts.append(ds)
    combined = xr.concat(parts, dim="point", join="outer", fill_value=np.nan,
                         coords="minimal", compat="override", data_vars="all")
    axes = list(spec.axes)
    point_values = list(itertools.product(*spec.axes.values()))
    for i, axis in enumerate(axes):
        combined = combined.assign_coords({axis: ("point", _coord([v[i] for v in point_values]))})
    if len(axes) == 1:  # one axis: no MultiIndex to unstack, the point dim simply becomes it
        combined = combined.swap_dims({"point": axes[0]})
    else:
        combined = combined.set_index(point=axes).unstack("point")
    # unstack sorts each axis; restore the declared order (the figures read axes left to right).
    combined = combined.reindex({a: _coord(v) for a, v in spec.axes.items()})
    # Axes first, then each variable's own dims in their order (the dataset's dim order depends
    # on which store was read first, so it is no order to impose).
    combined = combined.transpose(*axes, ...)
    combined.attrs = provenance(spec.definition(), grid=spec.name,
                                grid_definition=json.dumps(spec.definition(), sort_keys=True))
    for axis in axes:
        combined[axis].attrs["long_name"] = POINT_KEYS[axis][2]
    return combined


def _coord(values: Sequence[Any]) -> np.ndarray:
    """Axis values as a coordinate: strings as object dtype (zarr 3 stores those as ``string``)."""
    if any(isinstance(v, str) for v in values):
        return np.array([str(v) for v in values], dtype=object)
    return np.asarray(values)


# -- running points ------------------------------------------------------------------------------
def point_config(point: GridPoint | Mapping[str, Any], *, device: str, threads: int = 1):
    """The :class:`ntpgeom.train.config.TrainConfig` of a grid point: the training stage's run of
    the same settings, seed and initial draw.

    The grid's optimizers are the stage's: ``gd`` and ``adam`` with the ridge λ(‖W‖² + ‖H‖²) in
    the loss, ``adamw`` with decoupled decay λ; no LR schedule. float64 on CPU (the tiny problems
    are exact there), float32 on CUDA (what a GPU runs fast), for every model. Only the first and
    last steps are traced: a point's series are its ``checkpoints``.
    """
    from ntpgeom.train.config import TrainConfig  # torch: not at the workflow's parse time

    point = GridPoint.from_dict(point)
    decoupled = point.optimizer == "adamw"
    return TrainConfig.from_dict({
        "model": point.model, "d": point.d, "epochs": point.epochs,
        "optimizer": point.optimizer, "lr": float(point.lr),
        "weight_decay": float(point.lambda_) if decoupled else 0.0,
        "ridge": 0.0 if decoupled else float(point.lambda_), "milestones": [],
        "seed": point.seed, "device": device, "threads": threads,
        "dtype": "float64" if device.startswith("cpu") else "float32",
        "trace_every": max(int(point.epochs), 1),
    }, where="grid point")


def train_points(table: Table, points: Sequence[GridPoint | Mapping[str, Any]], *, device: str,
                 threads: int = 1) -> list[Any]:
    """Train equal-shape points through the engine; one :class:`~ntpgeom.train.trajectory.
    Trajectory` per point, W and H kept at the points' ``checkpoints`` log-spaced steps.

    UFM points train together, B of them in one ``vmap``-ed step
    (:func:`ntpgeom.train.engine.fit_runs`); transformer points one by one through the module
    backend, so that each equals, bit for bit on CPU, the training stage's run of its settings
    (a batched transformer reduces in another order).
    """
    from ntpgeom.train.config import checkpoint_steps
    from ntpgeom.train.engine import fit, fit_runs

    points = [GridPoint.from_dict(p) for p in points]
    configs = [point_config(p, device=device, threads=threads) for p in points]
    first = points[0]
    steps = checkpoint_steps(first.epochs, count=first.checkpoints)
    if first.model == "transformer":
        return [fit(table, c, progress=False, steps=steps) for c in configs]
    return fit_runs(table, configs, progress=False, steps=steps)


def run_points(table: Table, L_mm: np.ndarray,  # noqa: N803
               points: Sequence[GridPoint | Mapping[str, Any]], *, device: str | None = None,
               threads: int = 1) -> list[Any]:
    """Train equal-shape points together (:func:`train_points`) and return each point's store
    dataset.

    Parameters
    ----------
    table : Table
        The points' table (after :func:`reweight_counts`).
    L_mm : ndarray (V, m)
        The max-margin logits (:func:`max_margin_logits`).
    points : sequence of GridPoint (or of mappings of its settings)
        The points, all with the same :func:`batch_key`.
    device : str, optional
        ``cuda`` when available, else ``cpu``.
    threads : int
        CPU threads for torch (the rule's ``threads``; torch's default, every core, oversubscribes
        the machine when Snakemake runs several points at once).
    """
    import torch  # the points' jobs only, not the workflow's parse time

    from ntpgeom.theory.reference import centered_support, in_support_logits

    points = [GridPoint.from_dict(p) for p in points]
    if len({batch_key(p) for p in points}) != 1:
        raise ValueError("run_points needs points of equal shape (see batch_key)")
    first = points[0]
    table.check_for_theory("grid point table")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    S, P, pi = table.S(), table.P(), table.pi
    L_star = in_support_logits(S, P)
    targets = {"L_mm": L_mm, "S_bar": centered_support(S)}
    start = time.perf_counter()
    trajs = train_points(table, points, device=device, threads=threads)
    wall = (time.perf_counter() - start) / len(points)
    log.info("trained %d point(s) of shape %s on %s in %.1f s", len(points), batch_key(first),
             device, wall * len(points))
    out = []
    for point, traj in zip(points, trajs, strict=True):
        values = np.stack(traj.metrics).astype(np.float64)  # (steps, 3): CE, ‖W‖, ‖H‖
        ridge = 0.0 if point.optimizer == "adamw" else float(point.lambda_)
        run = {"step": np.asarray(traj.step, dtype=np.int64),
               "loss": values[:, 0] + ridge * (values[:, 1] ** 2 + values[:, 2] ** 2),
               "W": np.stack(traj.W).astype(np.float64), "H": np.stack(traj.H).astype(np.float64)}
        hist = run_metrics(run, S=S, P=P, pi=pi, entropy=table.entropy, L_star=L_star,
                           targets=targets)
        out.append(point_dataset(hist, table=table, targets=targets, point=point,
                                 wall_seconds=wall))
    return out
