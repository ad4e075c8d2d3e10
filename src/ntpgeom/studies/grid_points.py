"""Running a grid's points and gathering them (the grid itself: :mod:`ntpgeom.studies.grid`).

A batch of points (equal shapes, :func:`~ntpgeom.studies.grid.batch_key`) trains in one call of
the engine (:func:`train_points`, :func:`run_points`) on its table (:func:`reweight_counts`: the
``imbalance`` grid's count models) against its L^mm (:func:`max_margin_logits`); each point
becomes a dataset of per-step metrics (:func:`point_dataset`), a batch one store
(:func:`batch_dataset`), and the grid one aggregate with the axes as dimensions
(:func:`aggregate`). ``scripts/grid_batch.py`` and ``scripts/grid_aggregate.py`` open and write
the stores.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.metrics.trajectory import LOGIT_METRICS, run_metrics, target_metrics
from ntpgeom.metrics.vocabulary import describe
from ntpgeom.store import provenance
from ntpgeom.studies.grid import POINT_KEYS, GridPoint, GridSpec, batch_key, batch_names
from ntpgeom.theory.reference import centered_support, in_support_logits
from ntpgeom.train.config import TrainConfig, checkpoint_steps
from ntpgeom.train.engine import fit, fit_runs

log = logging.getLogger(__name__)


def batch_dataset(points: Sequence[Any], patterns: Sequence[str]):
    """One batch's store: its points' datasets (:func:`point_dataset`) stacked on a ``point``
    dim labelled by their patterns; each point's parameters stay in attrs ``points``."""
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
