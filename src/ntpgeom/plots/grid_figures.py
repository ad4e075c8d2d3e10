"""Figures of grid aggregates (``results/grid/figures/{grid}.png``), one function per grid kind.

Every function takes the aggregate dataset (axes as dims, ``step`` last) and returns a matplotlib
``Figure``; no I/O. A ``seed`` axis is never drawn as separate lines: it becomes the mean with a
min–max band, so the spread over seeds is visible in every figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ntpgeom.studies.grid import GridSpec

#: Axis labels of the point variables (names: :mod:`ntpgeom.metrics.vocabulary`). A variable on
#: the ``target`` dim is drawn against ``L_mm`` (see :func:`_var`).
METRICS = {
    "ce_minus_entropy": "CE − H",
    "dist_L": "‖L/‖L‖ − L^mm/‖L^mm‖‖",
    "in_support_error": "‖P_F(L) − L*‖",
    "norm_L": "‖L‖_F",
    "loss": "loss",
}


def _var(ds, name: str):
    """The variable ``name``, at target ``L_mm`` when it is a comparison (``dist_L``, ...)."""
    da = ds[name]
    return da.sel(target="L_mm") if "target" in da.dims else da


def _series(da, keep: tuple[str, ...] = ("step",)) -> Iterator[tuple[str, Any, Any, Any]]:
    """(label, mean, low, high) per combination of the axes not in ``keep``, seeds reduced."""
    others = [d for d in da.dims if d not in keep and d != "seed"]
    for combo in itertools.product(*(range(da.sizes[d]) for d in others)):
        sel = da.isel(dict(zip(others, combo, strict=True)))
        label = ", ".join(f"{d}={sel[d].item()}" for d in others)
        if "seed" in sel.dims:
            yield label, sel.mean("seed"), sel.min("seed"), sel.max("seed")
        else:
            yield label, sel, sel, sel


def _curves(ax, ds, var: str, *, logy: bool = True) -> None:
    """``var`` against step, one line per point (seeds as bands)."""
    step = ds["step"].values
    x = np.where(step > 0, step, np.nan)  # log x-axis: step 0 is off the axis
    for label, mean, lo, hi in _series(_var(ds, var)):
        (line,) = ax.plot(x, mean.values, label=label or None, lw=1.2)
        if (lo.values != hi.values).any():
            ax.fill_between(x, lo.values, hi.values, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(METRICS.get(var, var))


def _final(ds, var: str):
    """Each point's last recorded value (the last step with data: grids may mix epochs)."""
    da = _var(ds, var)
    valid = da.notnull()
    # the last valid step: where the running count of valid steps first reaches the total
    last = (valid & (valid.cumsum("step") == valid.sum("step"))).argmax("step")
    return da.isel(step=last)


def curves(ds, spec: GridSpec, metrics: tuple[str, ...] = ("ce_minus_entropy", "dist_L",
                                                             "in_support_error")):
    """Any grid: the main metrics against step, one panel each."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6),
                             layout="constrained", squeeze=False)
    for ax, var in zip(axes[0], metrics, strict=True):
        _curves(ax, ds, var)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"grid {spec.name}")
    return fig


def d_sweep(ds, spec: GridSpec):
    """CE − H and the direction distance to L^mm at the end of training, against d, beside the
    rank-d limit (no rank-d L can get closer to L^mm's direction) and rank(L^mm)."""
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    d = ds["d"].values
    for ax, var in ((a, "ce_minus_entropy"), (b, "dist_L")):
        for label, mean, lo, hi in _series(_final(ds, var), keep=("d",)):
            (line,) = ax.plot(d, mean.values, "o-", label=label or var)
            ax.fill_between(d, lo.values, hi.values, color=line.get_color(), alpha=0.25, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d")
        ax.set_ylabel(f"{METRICS[var]} at the last step")
    a.set_yscale("log")
    limit = _var(ds, "rank_limit")
    limit = limit.isel({k: 0 for k in limit.dims if k != "d"})
    b.plot(d, limit.values, "k--", label="rank-d limit")
    rank = int(np.nanmax(_var(ds, "target_rank").values))
    for ax in (a, b):
        ax.axvline(rank, color="grey", lw=0.8, ls=":")
    b.text(rank, b.get_ylim()[1], f" rank(L^mm) = {rank}", va="top", fontsize=8)
    b.legend(fontsize=7)
    _curves(c, ds, "dist_L")
    c.legend(fontsize=6)
    c.set_title("direction distance along training", fontsize=9)
    fig.suptitle(f"{spec.name}: embedding width d against rank(L^mm)")
    return fig


def reg_path(ds, spec: GridSpec):
    """Does the optimizer's path follow the regularization path?

    Left: direction distance to L^mm against ‖L‖ — each unregularized run (λ = 0) as a curve over
    its training, each λ > 0 as its end point (the regularized solution at that λ), joined
    along λ per optimizer. If GD follows the path, its curve runs through the λ markers.
    Right: CE − H against step per λ.
    """
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    lam = ds["lambda"].values
    zero = ds.sel({"lambda": 0.0}) if (lam == 0).any() else None
    if zero is not None:
        norms = list(_series(zero["norm_L"]))
        dists = list(_series(_var(zero, "dist_L")))
        for (label, n, _, _), (_, dd, _, _) in zip(norms, dists, strict=True):
            a.plot(n.values, dd.values, label=f"λ=0 path: {label}")
    pos = ds.sel({"lambda": lam[lam > 0]})
    for (label, n, _, _), (_, dd, _, _) in zip(_series(_final(pos, "norm_L"), keep=("lambda",)),
                                                 _series(_final(pos, "dist_L"),
                                                         keep=("lambda",)), strict=True):
        a.plot(n.values, dd.values, "s--", ms=5, label=f"λ>0 ends: {label}")
        for x, y, v in zip(n.values, dd.values, pos["lambda"].values, strict=True):
            a.annotate(f"{v:g}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    a.set_xscale("log")
    a.set_xlabel("‖L‖_F")
    a.set_ylabel(METRICS["dist_L"])
    a.legend(fontsize=6)
    _curves(b, ds, "ce_minus_entropy")
    b.legend(fontsize=5)
    fig.suptitle(f"{spec.name}: training paths against the ridge regularization path")
    return fig


def imbalance(ds, spec: GridSpec):
    """Uniform against Zipf counts with the supports fixed: L^mm (its nuclear norm, shown per
    count model) must not change; CE − H and the direction distance converge at other speeds."""
    fig = curves(ds, spec, ("ce_minus_entropy", "dist_L", "in_support_error"))
    nuc = _var(ds, "target_nuclear_norm")
    parts = []
    for cm in ds["count_model"].values:
        v = nuc.sel(count_model=cm).values
        parts.append(f"{cm}: {np.nanmin(v):.6g}" + ("" if np.nanmax(v) == np.nanmin(v)
                                                     else f"–{np.nanmax(v):.6g}"))
    fig.suptitle(f"{spec.name}: counts change, supports fixed.  ‖L^mm‖_* = " + "; ".join(parts),
                 fontsize=10)
    return fig


def seeds(ds, spec: GridSpec):
    """Every metric's spread over seeds, as bands."""
    return curves(ds, spec, ("ce_minus_entropy", "dist_L", "in_support_error", "norm_L"))


def grid_figure(ds, spec: GridSpec):
    """The figure the grid asks for (``figure:``), defaulting to :func:`curves`."""
    import matplotlib

    matplotlib.use("agg")
    return {"curves": curves, "d_sweep": d_sweep, "reg_path": reg_path,
            "imbalance": imbalance, "seeds": seeds}[spec.figure](ds, spec)
