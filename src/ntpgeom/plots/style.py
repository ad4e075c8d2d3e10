"""How the figures look: the predictions' line styles, the mathtext labels, and the drawing
helpers every figure module shares (a pyplot-free Figure, log step axes, heatmaps, chance bands,
one legend per figure). Predictions are black (L^mm, solid), purple (S̄, dashed) and grey (the
raw support S, dotted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ntpgeom.plots.bundle import Bundle, Run

TARGET_STYLE = {"S_bar": {"color": "purple", "ls": "--"}, "S": {"color": "grey", "ls": ":"}}
SOLVER_STYLE = {"color": "black", "ls": "-"}
#: L^mm and S̄ in matplotlib's mathtext (a combining overline in plain text is not drawn).
LMM = r"L$^\mathrm{mm}$"
SBAR = r"$\bar{S}$"


def new_figure(nrows: int, ncols: int, size: tuple[float, float], **kw):
    """A Figure not registered with pyplot (no global state, no GUI, nothing to close): the
    Agg canvas is attached when it is saved."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def positive(y: np.ndarray) -> np.ndarray:
    """NaN where y ≤ 0, so that log axes drop (rather than choke on) non-positive values."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 0, y, np.nan)


def trace(run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(step + 1, series) from the dense ``trace_<name>`` of the training store, or from the
    checkpoints' ``<name>`` when the store has no trace."""
    ds = run.train
    if f"trace_{name}" in ds:
        return ds["trace_step"].values + 1.0, ds[f"trace_{name}"].values
    return ds["step"].values + 1.0, ds[name].values


def first_solver(bundle: Bundle) -> str:
    if not bundle.svm:
        raise ValueError(f"{bundle.dataset}: no NTP-SVM solution (svm/*.zarr) to compare with")
    return next(iter(bundle.svm))


def run_solver(bundle: Bundle, run: Run) -> str:
    """The solver whose L^mm ``run`` is compared with: its own (overlays), else the bundle's."""
    return run.solver or first_solver(bundle)


def first_run(runs: Sequence[Run], model: str) -> Run | None:
    return next((r for r in runs if r.model == model), None)


def step_axis(ax, label: str = "training step + 1") -> None:
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def heatmap(ax, M: np.ndarray, *, cmap: str, vmin: float, vmax: float, title: str, xlabel: str,
          ylabel: str):
    # Square similarity matrices keep square cells; V × m logit matrices fill the panel.
    aspect = "equal" if M.shape[0] == M.shape[1] and cmap == "viridis" else "auto"
    im = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):  # rows and columns are indices: no 2.5
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    return im


def final_factors(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W (V×d), H (d×m), L (V×m)) at the run's last checkpoint."""
    last = run.train.isel(step=-1).transpose("token", "dim", "context", ...)
    return (last["W"].values.astype(float), last["H"].values.astype(float),
            last["logits"].transpose("token", "context").values.astype(float))


def unit(M: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(M)
    return M / norm if norm > 0 else M


#: Half-width of the chance bands in standard deviations of the random-embedding draws.
CHANCE_SIGMAS = 2


def chance_band(ax, g, var: str, target: str, color: str, *, label: str | None = None,
                 alpha: float = 0.15, hatch: str | None = None) -> None:
    """Shade ``<var>_chance`` ± :data:`CHANCE_SIGMAS` ``<var>_chance_std`` of ``target``: what
    random Gaussian embeddings of the run's shapes score against the same target (constant over
    training, so a horizontal band). Stores without chance levels draw nothing."""
    if f"{var}_chance" not in g:
        return
    mean = float(g[f"{var}_chance"].sel(target=target))
    std = float(g[f"{var}_chance_std"].sel(target=target))
    if not np.isfinite(mean):
        return
    ax.axhspan(mean - CHANCE_SIGMAS * std, mean + CHANCE_SIGMAS * std, color=color, alpha=alpha,
               lw=0, hatch=hatch, fill=hatch is None, label=label)
    ax.axhline(mean, color=color, lw=0.6, ls=":", alpha=0.8)


def shared_legend(fig, axes, **kw) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend([handles[k] for k in labels], labels, fontsize=8, **kw)

def placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            color="grey")
    ax.set_axis_off()


def depth_colors(n: int) -> list:
    """Light (embedding) to dark (final norm): depth reads as shade."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * (1 - i / max(n - 1, 1))) for i in range(n)]
