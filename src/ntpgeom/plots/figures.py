"""The paper's figures (paper §2.5, F1–F8) and the geometry diagnostics, one function each.

Every function takes already-loaded data (a :class:`Bundle` of xarray datasets and the table)
and returns a :class:`matplotlib.figure.Figure`; nothing here reads or writes files
(:mod:`ntpgeom.plots.figio` does). Each figure has one Snakemake rule, ``fig_<name>``, writing
``results/{dataset}/figures/<name>.png`` and ``.pdf`` (``rules/figures.smk``), and a caption in
``report/<name>.rst`` naming the stores and variables it plots.

Colours follow the paper: a run's colour is fixed by its dataset's colour family, its model and
its place among the runs of that (dataset, model). The families are the paper's (§2.5): synthetic
data gold (UFM) / dark orange (TF), real text deep sky blue (UFM) / steel blue (TF); further
datasets get greens and reds (:func:`dataset_families`, computed once from the config, so a
dataset keeps its colours in its own figures and in the overlays). Predictions are black (L^mm,
solid), purple (S̄, dashed) and grey (the raw support S, dotted).

Figures with several runs (F1, F2, F3, F7, listed in :data:`OVERLAYS`) are also drawn with every
run of every dataset on one set of axes (rule ``fig_overlay_<name>``,
``results/figures/<name>.png``), by the same functions. Text that needs a combining mark (S̄,
h̄) or a superscript (L^mm) is written in matplotlib's mathtext (:data:`SBAR`, :data:`LMM`): a
combining overline in a plain string is dropped by matplotlib's text layout (S̄ reads as S).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntpgeom.metrics.core import cosine_matrix

log = logging.getLogger(__name__)

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
TARGET_STYLE = {"S_bar": {"color": "purple", "ls": "--"}, "S": {"color": "grey", "ls": ":"}}
SOLVER_STYLE = {"color": "black", "ls": "-"}
MODEL_NAMES = {"ufm": "UFM", "transformer": "TF"}
#: L^mm and S̄ in matplotlib's mathtext (a combining overline in plain text is not drawn).
LMM = r"L$^\mathrm{mm}$"
SBAR = r"$\bar{S}$"
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
    :func:`ntpgeom.plots.figio.load_bundle`).

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


# -- helpers -----------------------------------------------------------------------------------
def _new(nrows: int, ncols: int, size: tuple[float, float], **kw):
    """A Figure not registered with pyplot (no global state, no GUI, nothing to close): the
    Agg canvas is attached when it is saved."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def _positive(y: np.ndarray) -> np.ndarray:
    """NaN where y ≤ 0, so that log axes drop (rather than choke on) non-positive values."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 0, y, np.nan)


def _trace(run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(step + 1, series) from the dense ``trace_<name>`` of the training store, or from the
    checkpoints' ``<name>`` when the store has no trace."""
    ds = run.train
    if f"trace_{name}" in ds:
        return ds["trace_step"].values + 1.0, ds[f"trace_{name}"].values
    return ds["step"].values + 1.0, ds[name].values


def _solver(bundle: Bundle) -> str:
    if not bundle.svm:
        raise ValueError(f"{bundle.dataset}: no NTP-SVM solution (svm/*.zarr) to compare with")
    return next(iter(bundle.svm))


def _run_solver(bundle: Bundle, run: Run) -> str:
    """The solver whose L^mm ``run`` is compared with: its own (overlays), else the bundle's."""
    return run.solver or _solver(bundle)


def _first(runs: Sequence[Run], model: str) -> Run | None:
    return next((r for r in runs if r.model == model), None)


def _step_axis(ax, label: str = "training step + 1") -> None:
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def _heat(ax, M: np.ndarray, *, cmap: str, vmin: float, vmax: float, title: str, xlabel: str,
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


def _final(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W (V×d), H (d×m), L (V×m)) at the run's last checkpoint."""
    last = run.train.isel(step=-1).transpose("token", "dim", "context", ...)
    return (last["W"].values.astype(float), last["H"].values.astype(float),
            last["logits"].transpose("token", "context").values.astype(float))


def _unit(M: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(M)
    return M / norm if norm > 0 else M


#: Half-width of the chance bands in standard deviations of the random-embedding draws.
CHANCE_SIGMAS = 2


def _chance_band(ax, g, var: str, target: str, color: str, *, label: str | None = None,
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


def _legend(fig, axes, **kw) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend([handles[k] for k in labels], labels, fontsize=8, **kw)


# -- F1, F2, F3: convergence curves ------------------------------------------------------------
def loss(runs: Sequence[Run]) -> Any:
    """F1: CE_k − H against training step, log–log (Thm (i): CE → H)."""
    fig, ax = _new(1, 1, (5.5, 4))
    ax = ax[0, 0]
    for r in runs:
        x, y = _trace(r, "ce_minus_entropy")
        ax.plot(x, _positive(y), color=r.color, label=f"{r.dataset}, {r.label}")
    _step_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("CE − H  (nats)")
    ax.set_title("F1  Loss convergence: CE − H → 0")
    ax.legend(fontsize=8)
    return fig


def norms(runs: Sequence[Run]) -> Any:
    """F2: ‖W_k‖_F (dashed) and ‖H_k‖_F (solid) against training step, log–log (norms diverge)."""
    fig, ax = _new(1, 1, (5.5, 4))
    ax = ax[0, 0]
    for r in runs:
        x, w = _trace(r, "norm_W")
        _, h = _trace(r, "norm_H")
        ax.plot(x, h, color=r.color, ls="-", label=f"{r.dataset}, {r.label}: ‖H‖")
        ax.plot(x, w, color=r.color, ls="--", label=f"{r.dataset}, {r.label}: ‖W‖")
    _step_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("Frobenius norm (parameter units)")
    ax.set_title("F2  Norm growth: ‖H‖ solid, ‖W‖ dashed")
    ax.legend(fontsize=7)
    return fig


def in_support(runs: Sequence[Run]) -> Any:
    """F3: ‖P_F(L_k) − L*‖_F (log–log) and ‖L_k − L*‖_F/‖L_k‖_F (Thm (ii))."""
    fig, axes = _new(1, 2, (10, 4))
    for r in runs:
        g = r.geometry
        x = g["step"].values + 1.0
        axes[0, 0].plot(x, _positive(g["in_support_error"].values), color=r.color, marker=".",
                        label=f"{r.dataset}, {r.label}")
        axes[0, 1].plot(x, g["relative_offset"].values, color=r.color, marker=".")
    for ax in axes[0]:
        _step_axis(ax)
    if any((r.geometry["in_support_error"].values > 0).any() for r in runs):
        axes[0, 0].set_yscale("log")
    else:  # one-hot tables: every support has one token, so P_F(L) = L* = 0 at every step
        axes[0, 0].text(0.5, 0.5, "‖P_F(L_k) − L*‖_F = 0 at every step:\nevery support has a "
                        "single token (k = 1)", transform=axes[0, 0].transAxes, ha="center",
                        va="center", fontsize=9, color="grey")
    axes[0, 0].set_ylabel("‖P_F(L_k) − L*‖_F  (logit units)")
    axes[0, 0].set_title("F3  In-support part converges to L*")
    axes[0, 1].set_ylabel("‖L_k − L*‖_F / ‖L_k‖_F  (ratio)")
    axes[0, 1].set_title("…while the orthogonal part dominates (→ 1)")
    axes[0, 1].axhline(1.0, color="grey", lw=0.8, ls=":")
    axes[0, 0].legend(fontsize=8)
    return fig


# -- F4, F5, F6, F8: heatmaps ------------------------------------------------------------------
def _prediction_factors(bundle: Bundle) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """[(title, W, H, L)] for L^mm (the first solver) and S̄, in (V×r, r×m, V×m) layout."""
    solver = _solver(bundle)
    mm = bundle.svm[solver].transpose("token", "rank", "context", ...)
    ref = bundle.reference.transpose("token", "rank", "context", ...)
    return [(f"{LMM} ({solver})", mm["W_mm"].values, mm["H_mm"].values, mm["L_mm"].values),
            (f"{SBAR} (centered support)", ref["W_bar"].values, ref["H_bar"].values,
             ref["S_bar"].values)]


def geometry_grid(bundle: Bundle) -> Any:
    """F4: the 3×4 grid. Rows cos(H), cos(W), logits; columns TF, UFM, L^mm, S̄ (final step)."""
    columns: list[tuple[str, Any]] = []
    for model in ("transformer", "ufm"):
        r = _first(bundle.runs, model)
        columns.append((f"{MODEL_NAMES[model]} {r.run}" if r else f"{MODEL_NAMES[model]}: no run",
                        _final(r) if r else None))
    for title, W, H, L in _prediction_factors(bundle):
        columns.append((title, (W, H, L)))
    fig, axes = _new(3, 4, (15, 10.5))
    for c, (title, mats) in enumerate(columns):
        if mats is None:
            for row in range(3):
                axes[row, c].axis("off")
            axes[0, c].set_title(title, fontsize=9)
            continue
        W, H, L = mats
        im_cos = _heat(axes[0, c], cosine_matrix(H.T), cmap="viridis", vmin=-1, vmax=1,
                       title=f"{title}\ncos(h_i, h_j)", xlabel="context j", ylabel="context i")
        _heat(axes[1, c], cosine_matrix(W), cmap="viridis", vmin=-1, vmax=1,
              title="cos(w_z, w_z')", xlabel="token z'", ylabel="token z")
        lim = float(np.abs(L).max()) or 1.0
        im = _heat(axes[2, c], L, cmap="coolwarm", vmin=-lim, vmax=lim, title="logits L",
                   xlabel="context j", ylabel="token z")
        fig.colorbar(im, ax=axes[2, c], label="logit", shrink=0.85)
    fig.colorbar(im_cos, ax=axes[:2, :].ravel().tolist(), label="cosine similarity",
                 shrink=0.6)
    fig.suptitle(f"F4  {bundle.dataset}: trained geometry (final step) vs the NTP-SVM "
                 "prediction")
    return fig


def logits(bundle: Bundle) -> Any:
    """F5: S, L^mm/‖L^mm‖_F, S̄/‖S̄‖_F, UFM L/‖L‖_F, TF L/‖L‖_F (final step), tokens × contexts."""
    S = bundle.table.S().astype(float)
    panels = [("support S", S, "Greys", 0.0, 1.0)]
    for title, _, _, L in _prediction_factors(bundle):
        panels.append((f"{title} / ‖·‖_F", _unit(L), "coolwarm", None, None))
    for model in ("ufm", "transformer"):
        r = _first(bundle.runs, model)
        if r is not None:
            panels.append((f"{r.label}, final / ‖·‖_F", _unit(_final(r)[2]), "coolwarm", None,
                           None))
    lim = max(float(np.abs(M).max()) for _, M, cmap, _, _ in panels if cmap == "coolwarm")
    fig, axes = _new(1, len(panels), (3.4 * len(panels), 4.2))
    for ax, (title, M, cmap, vmin, vmax) in zip(axes[0], panels, strict=True):
        lo, hi = (vmin, vmax) if vmin is not None else (-lim, lim)
        im = _heat(ax, M, cmap=cmap, vmin=lo, vmax=hi, title=title, xlabel="context j",
                   ylabel="token z")
        if cmap == "Greys":
            fig.colorbar(im, ax=ax, label="z ∈ S_j", shrink=0.8, ticks=[0, 1])
    fig.colorbar(im, ax=axes[0, 1:].tolist(), label="logit / ‖L‖_F (shared scale)", shrink=0.8)
    fig.suptitle(f"F5  {bundle.dataset}: logit matrices, each normalized to unit Frobenius norm")
    return fig


def similarity_labelled(bundle: Bundle) -> Any:
    """F6: cos(W) over tokens and cos(H) over contexts, with the token/context strings as ticks."""
    r = _first(bundle.runs, "ufm") or bundle.runs[0]
    W, H, _ = _final(r)
    tokens, contexts = bundle.table.tokens, bundle.table.contexts
    longest = max(len(s) for s in [*tokens, *contexts])
    # Room below for the rotated context strings (about 0.09 inch per character at 8 pt).
    fig, axes = _new(1, 2, (16, 7 + 0.09 * longest))
    for ax, M, labels, what in ((axes[0, 0], cosine_matrix(W), tokens, "tokens (rows of W)"),
                                (axes[0, 1], cosine_matrix(H.T), contexts,
                                 "contexts (columns of H)")):
        im = ax.imshow(M, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
        size = float(np.clip(500 / max(len(labels), 1), 2, 8))
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=size)
        ax.set_yticks(range(len(labels)), labels, fontsize=size)
        ax.set_title(f"cosine similarity of {what}", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label="cosine similarity", shrink=0.7)
    fig.suptitle(f"F6  {bundle.dataset}, {r.label} at step {int(r.train['step'][-1])}: "
                 "labelled similarity maps")
    return fig


def evolution(bundle: Bundle) -> Any:
    """F8: cos(H), cos(W) and L/‖L‖_F of the first UFM run at init, ~10, ~100, last, and L^mm."""
    r = _first(bundle.runs, "ufm") or bundle.runs[0]
    steps = r.train["step"].values
    picks = [0]
    for wanted in (10, 100):
        i = int(np.argmin(np.abs(np.log1p(steps) - np.log1p(wanted))))
        picks.append(i)
    picks.append(len(steps) - 1)
    picks = list(dict.fromkeys(picks))
    cols = []
    for i in picks:
        ck = r.train.isel(step=i).transpose("token", "dim", "context", ...)
        cols.append((f"step {int(steps[i])}", ck["W"].values.astype(float),
                     ck["H"].values.astype(float),
                     ck["logits"].transpose("token", "context").values.astype(float)))
    title, W, H, L = _prediction_factors(bundle)[0]
    cols.append((f"limit: {title}", W, H, L))
    fig, axes = _new(3, len(cols), (3.3 * len(cols), 9.5))
    lim = max(float(np.abs(_unit(L)).max()) for _, _, _, L in cols)
    for c, (name, W, H, L) in enumerate(cols):
        im_cos = _heat(axes[0, c], cosine_matrix(H.T), cmap="viridis", vmin=-1, vmax=1,
                       title=f"{name}\ncos(h_i, h_j)", xlabel="context j", ylabel="context i")
        _heat(axes[1, c], cosine_matrix(W), cmap="viridis", vmin=-1, vmax=1,
              title="cos(w_z, w_z')", xlabel="token z'", ylabel="token z")
        im = _heat(axes[2, c], _unit(L), cmap="coolwarm", vmin=-lim, vmax=lim,
                   title="L / ‖L‖_F", xlabel="context j", ylabel="token z")
    fig.colorbar(im_cos, ax=axes[:2, :].ravel().tolist(), label="cosine similarity", shrink=0.6)
    fig.colorbar(im, ax=axes[2, :].tolist(), label="logit / ‖L‖_F", shrink=0.8)
    fig.suptitle(f"F8  {bundle.dataset}, {r.label}: geometry over training and its limit")
    return fig


# -- F7 and the direction distances: comparisons over training ---------------------------------
def _target_style(target: str, solver: str) -> dict:
    return {"ls": "-"} if target == solver else {"ls": TARGET_STYLE[target]["ls"]}


def structural_correlation(bundle: Bundle) -> Any:
    """F7: structural correlation of cos(H_k), cos(W_k) with L^mm's, S̄'s and S's, over training.

    Solid: the paper's whole-matrix value; dashed: off the diagonal (both diagonals are ones, so
    the whole-matrix value of random embeddings is far above 0). Shaded: the chance band of the
    whole-matrix value, hatched: that of the off-diagonal one (random Gaussian embeddings of the
    run's shapes, mean ± 2σ). Each run is compared with its own dataset's L^mm
    (:func:`_run_solver`), so the runs of several datasets (the overlay) share the axes."""
    solvers = list(dict.fromkeys(_run_solver(bundle, r) for r in bundle.runs))
    targets = [("mm", f"{LMM} ({', '.join(solvers)}) factors"), ("S_bar", f"{SBAR} factors"),
               ("S", "support S (cos(S,S), cos(Sᵀ,Sᵀ))")]
    fig, axes = _new(2, 3, (14, 7.5), sharey=True)
    for c, (target, title) in enumerate(targets):
        for row, what in enumerate(("H", "W")):
            ax = axes[row, c]
            for r in bundle.runs:
                g = r.geometry
                t = _run_solver(bundle, r) if target == "mm" else target
                ax.plot(g["step"].values + 1.0, g[f"corr_cos_{what}"].sel(target=t).values,
                        color=r.color, marker=".", label=bundle.run_label(r))
                if f"corr_cos_{what}_offdiag" in g:
                    ax.plot(g["step"].values + 1.0,
                            g[f"corr_cos_{what}_offdiag"].sel(target=t).values, color=r.color,
                            ls="--", lw=1, label=f"{bundle.run_label(r)}, off-diagonal")
                _chance_band(ax, g, f"corr_cos_{what}", t, r.color,
                             label=f"chance ± {CHANCE_SIGMAS}σ (whole matrix)")
                _chance_band(ax, g, f"corr_cos_{what}_offdiag", t, r.color, alpha=0.5,
                             hatch="///", label=f"chance ± {CHANCE_SIGMAS}σ (off-diagonal)")
            _step_axis(ax)
            ax.set_ylim(-0.2, 1.05)
            ax.set_title(f"cos({what}_k) vs {title}", fontsize=9)
            if c == 0:
                ax.set_ylabel("structural correlation (SSIM-s ≈ Pearson)")
    _legend(fig, axes, loc="outside lower center", ncol=max(2 * len(bundle.runs), 2))
    fig.suptitle(f"F7  {bundle.dataset}: does the trained geometry approach the prediction? "
                 "(solid: whole matrix, dashed: off-diagonal; bands: chance)")
    return fig


def direction_distance(bundle: Bundle) -> Any:
    """Normalized distances ‖A_k/‖A_k‖ − B/‖B‖‖_F of L_k, P_F⊥(L_k), W Wᵀ, Hᵀ H to L^mm and S̄.

    Left column: the paper's raw distances; right column of the first two rows: the same with
    each column's mean over tokens removed (``dist_L_centered``, ``dist_L_perp_centered``), which
    softmax ignores and L^mm, S̄ do not have."""
    solvers = list(bundle.svm)
    panels = [("dist_L", "L_k (raw, the paper's)"),
              ("dist_L_centered",
               r"$\tilde{L}_k$ = L_k, column means removed (softmax-invariant)"),
              ("dist_L_perp", "P_F⊥(L_k) (raw)"),
              ("dist_L_perp_centered", "P_F⊥(L_k), column means removed"),
              ("dist_gram_W", "W_k W_kᵀ"), ("dist_gram_H", "H_kᵀ H_k")]
    panels = [(v, w) for v, w in panels if all(v in r.geometry for r in bundle.runs)]
    fig, axes = _new((len(panels) + 1) // 2, 2, (11, 4 * ((len(panels) + 1) // 2)),
                     sharey=True)
    for ax, (var, what) in zip(axes.ravel(), panels, strict=False):
        for r in bundle.runs:
            g = r.geometry
            x = g["step"].values + 1.0
            for t in solvers + ["S_bar"]:
                style = {"ls": "-"} if t in solvers else {"ls": "--"}
                name = f"{LMM} ({t})" if t in solvers else SBAR
                ax.plot(x, g[var].sel(target=t).values, color=r.color, lw=1.2, **style,
                        label=f"{r.label} → {name}")
        _step_axis(ax)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{what}: normalized distance", fontsize=10)
        ax.set_ylabel("‖A/‖A‖ − B/‖B‖‖_F  (0 = same direction)")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    _legend(fig, axes, loc="outside lower center", ncol=2)
    fig.suptitle(f"{bundle.dataset}: direction distance to {LMM} (solid) and to {SBAR} (dashed)")
    return fig


def spectra(bundle: Bundle) -> Any:
    """Singular spectra σ_i/‖·‖_F: final L_k of every run vs L^mm and S̄; and their growth."""
    solver = _solver(bundle)
    fig, axes = _new(1, 2, (12, 4.5))
    ax = axes[0, 0]
    for t, style, name in ((solver, SOLVER_STYLE, f"{LMM} ({solver})"),
                           ("S_bar", {**TARGET_STYLE["S_bar"]}, SBAR)):
        g0 = bundle.runs[0].geometry
        sv = g0["target_singular_values"].sel(target=t).values
        ax.plot(np.arange(1, sv.size + 1), _positive(sv / np.linalg.norm(sv)), marker="o", ms=3,
                label=name, **style)
    for r in bundle.runs:
        sv = r.geometry["singular_values_L"].isel(step=-1).values
        ax.plot(np.arange(1, sv.size + 1), _positive(sv / np.linalg.norm(sv)), color=r.color,
                marker=".", label=f"{r.label}, final")
    ax.set_yscale("log")
    # Below 1e-4 of the norm are solver round-off (L^mm's exact zeros come out as ~1e-10).
    ax.set_ylim(bottom=1e-4)
    ax.set_xlabel("index i")
    ax.set_ylabel("σ_i / ‖L‖_F")
    ax.set_title("singular spectrum, normalized (values < 1e-4 clipped)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    r = _first(bundle.runs, "ufm") or bundle.runs[0]
    g = r.geometry
    sv = g["singular_values_L"].values
    target = g["target_singular_values"].sel(target=solver).values
    rank = int(np.sum(target > 1e-6 * target[0]))
    top = min(rank, 6)
    from matplotlib import colormaps

    shades = colormaps["viridis"](np.linspace(0, 0.9, top))
    for i in range(top):
        ax.plot(g["step"].values + 1.0, sv[:, i] / np.linalg.norm(sv, axis=1), color=shades[i],
                marker=".", label=f"σ_{i + 1}")
        ax.axhline(target[i] / np.linalg.norm(target), color=shades[i], ls="--", lw=0.8)
    _step_axis(ax)
    ax.set_ylabel("σ_i(L_k) / ‖L_k‖_F")
    ax.set_title(f"{r.label}: top singular values over training\n(dashed: the same for {LMM})",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{bundle.dataset}: singular spectra, trained vs {LMM}")
    return fig


def representation(bundle: Bundle) -> Any:
    """Linear CKA, RSA and k-NN overlap of trained H and W with L^mm's factors, over training."""
    solver = _solver(bundle)
    metrics = [("cka", "linear CKA"), ("rsa", "RSA (Spearman of cosine RDMs)"),
               ("knn", "k-NN overlap")]
    fig, axes = _new(2, 3, (14, 7.5), sharey=True)
    for c, (key, title) in enumerate(metrics):
        for row, what in enumerate(("H", "W")):
            ax = axes[row, c]
            for r in bundle.runs:
                g = r.geometry
                x = g["step"].values + 1.0
                ax.plot(x, g[f"{key}_{what}"].sel(target=solver).values, color=r.color,
                        marker=".", label=f"{r.label} vs {LMM}")
                ax.plot(x, g[f"{key}_{what}"].sel(target="S_bar").values, color=r.color,
                        ls="--", label=f"{r.label} vs {SBAR}")
                _chance_band(ax, g, f"{key}_{what}", solver, r.color,
                             label=f"chance ± {CHANCE_SIGMAS}σ vs {LMM}")
            _step_axis(ax)
            ax.set_ylim(-0.2, 1.05)
            knn = f", k = {bundle.runs[0].geometry.attrs.get('knn_k')}" if key == "knn" else ""
            ax.set_title(f"{title}{knn}: {'contexts H' if what == 'H' else 'words W'}",
                         fontsize=9)
            if c == 0:
                ax.set_ylabel("similarity (1 = identical)")
    _legend(fig, axes, loc="outside lower center", ncol=4)
    fig.suptitle(f"{bundle.dataset}: representation similarity to {LMM} ({solver}) factors "
                 f"(solid) and {SBAR} factors (dashed); bands: random embeddings")
    return fig


def intrinsic(bundle: Bundle) -> Any:
    """TwoNN intrinsic dimension of W and H, and subspace collapse of H, over training.

    The fourth panel shows collapse in the paper's terms: the mean cosine of context embeddings
    within blocks of identical support (→ 1) and across blocks. A dataset where no two contexts
    share a support says so in the collapse panels instead of leaving them empty."""
    solver = _solver(bundle)
    fig, axes = _new(1, 4, (19, 4.2))
    panels = [("twonn_W", "target_twonn_W", "TwoNN dimension of words (rows of W)",
               "intrinsic dimension"),
              ("twonn_H", "target_twonn_H", "TwoNN dimension of contexts (columns of H)",
               "intrinsic dimension"),
              ("collapse_H", "target_collapse_H",
               "subspace collapse: within-support spread of ĥ_j", "within / total scatter")]
    for ax, (var, tvar, title, ylabel) in zip(axes[0, :3], panels, strict=True):
        for r in bundle.runs:
            g = r.geometry
            ax.plot(g["step"].values + 1.0, g[var].values, color=r.color, marker=".",
                    label=r.label)
        g0 = bundle.runs[0].geometry
        for t, style, name in ((solver, SOLVER_STYLE, f"{LMM} ({solver})"),
                               ("S_bar", TARGET_STYLE["S_bar"], SBAR)):
            value = float(g0[tvar].sel(target=t))
            if np.isfinite(value):
                ax.axhline(value, color=style["color"], ls=style["ls"], lw=1, label=name)
        _step_axis(ax)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
    ax = axes[0, 3]
    for r in bundle.runs:
        g = r.geometry
        if "cos_within_groups_H" not in g:
            continue
        x = g["step"].values + 1.0
        ax.plot(x, g["cos_within_groups_H"].values, color=r.color, marker=".",
                label=f"{r.label}: within blocks")
        ax.plot(x, g["cos_across_groups_H"].values, color=r.color, ls="--",
                label=f"{r.label}: across blocks")
    _step_axis(ax)
    ax.set_ylim(-0.2, 1.05)
    ax.axhline(1.0, color=SOLVER_STYLE["color"], lw=0.8, label=f"{LMM}: within = 1")
    ax.set_title("mean cos(h_i, h_j) within / across identical supports", fontsize=9)
    ax.set_ylabel("cosine similarity")
    g0 = bundle.runs[0].geometry
    if not np.isfinite(g0["collapse_H"].values).any():
        for a in (axes[0, 2], axes[0, 3]):
            a.text(0.5, 0.5, "no two contexts share a support:\nno subspace collapse to show",
                   transform=a.transAxes, ha="center", va="center", fontsize=9, color="grey")
    axes[0, 2].legend(fontsize=8)
    axes[0, 3].legend(fontsize=7)
    fig.suptitle(f"{bundle.dataset}: intrinsic dimension and subspace collapse")
    return fig


def _placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            color="grey")
    ax.set_axis_off()


def _depth_colors(n: int) -> list:
    """Light (embedding) to dark (final norm): depth reads as shade."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * (1 - i / max(n - 1, 1))) for i in range(n)]


def layers(bundle: Bundle) -> Any:
    """Geometry at every transformer layer: at which depth the context geometry approaches H^mm.

    One row per transformer run: the Gram distance ``dist_gram_H_layer`` and the structural
    correlation ``corr_cos_H_layer`` of the last position's representation after the token
    embedding, each block and the final norm with L^mm's context factors, over training (one
    curve per depth; the final norm's is the run's ``dist_gram_H``/``corr_cos_H``), with the
    chance band of random Gaussian H. Datasets without layer stores say so."""
    solver = _solver(bundle)
    runs = [r for r in bundle.runs if "layer" in r.geometry.dims]
    fig, axes = _new(max(len(runs), 1), 2, (12, 3.8 * max(len(runs), 1)))
    if not runs:
        for ax in axes[0]:
            _placeholder(ax, "no transformer run with per-layer states (H_layer)")
    for row, r in enumerate(runs):
        g = r.geometry
        names = [str(x) for x in g["layer"].values]
        colors = _depth_colors(len(names))
        x = g["step"].values + 1.0
        for col, (var, ylabel) in enumerate((("dist_gram_H", "‖G/‖G‖ − G_mm/‖G_mm‖‖_F"),
                                             ("corr_cos_H", "structural correlation"))):
            ax = axes[row, col]
            for j, name in enumerate(names):
                ax.plot(x, g[f"{var}_layer"].sel(target=solver, layer=name).values,
                        color=colors[j], marker=".", label=name)
            _chance_band(ax, g, var, solver, "grey", label=f"chance ± {CHANCE_SIGMAS}σ")
            _step_axis(ax)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{r.label}: {'Gram distance' if col == 0 else 'cos(H) correlation'}"
                         f" to {LMM} ({solver}) per layer", fontsize=9)
        axes[row, 0].set_ylim(bottom=0)
        axes[row, 1].set_ylim(-0.2, 1.05)
        axes[row, 1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{bundle.dataset}: context geometry at every transformer layer vs {LMM}")
    return fig


def onehot(bundle: Bundle) -> Any:
    """The one-hot regime (semantics.md §6): ``attribute_gap`` (left) and ``etf_distance``
    (right) of every run over training, the gap's chance band (random Gaussian H, mean ± 2σ)
    shaded; a transformer's per-layer curves thin. Datasets without latent attributes
    (``context_label``) say so."""
    runs = [r for r in bundle.runs if "attribute_gap" in r.geometry]
    fig, axes = _new(1, 2, (12, 5.2))
    if not runs:
        for ax in axes[0]:
            _placeholder(ax, "no latent attributes in this table (context_label)")
    for r in runs:
        g = r.geometry
        x = g["step"].values + 1.0
        for ax, var in zip(axes[0], ("attribute_gap", "etf_distance"), strict=True):
            ax.plot(x, g[var].values, color=r.color, marker=".", label=r.label)
            if f"{var}_layer" in g:
                for name in g["layer"].values[:-1]:
                    ax.plot(x, g[f"{var}_layer"].sel(layer=name).values, color=r.color, lw=0.6,
                            alpha=0.5)
    # One band per distinct chance level (runs of one width share it).
    bands = dict.fromkeys((float(r.geometry["attribute_gap_chance"]),
                           float(r.geometry["attribute_gap_chance_std"])) for r in runs)
    for mean, std in bands:
        axes[0, 0].axhspan(mean - CHANCE_SIGMAS * std, mean + CHANCE_SIGMAS * std, color="grey",
                           alpha=0.15, lw=0,
                           label=f"chance {mean:+.3f} ± {CHANCE_SIGMAS}·{std:.3f}")
    if runs:
        axes[0, 0].axhline(0.0, color=SOLVER_STYLE["color"], lw=0.8, label="simplex ETF: 0")
        axes[0, 1].axhline(0.1, color="grey", lw=0.8, ls=":", label="0.1")
        for ax, title in zip(axes[0], ("attribute gap: mean cos, pairs sharing an attribute − "
                                       "pairs sharing none",
                                       "distance of the centred Gram to the simplex ETF's"),
                             strict=True):
            _step_axis(ax)
            ax.set_title(title, fontsize=9)
        axes[0, 1].set_ylim(bottom=0)
        _legend(fig, axes, loc="outside lower center", ncol=4)
    fig.suptitle(f"{bundle.dataset}: structure before collapse? (thin: transformer layers)")
    return fig


#: name → (function of a Bundle, which stores it needs). The rule ``fig_<name>`` declares exactly
#: these inputs; ``train``/``geometry`` are per run.
FIGURES: dict[str, tuple[Callable[[Bundle], Any], tuple[str, ...]]] = {
    "loss": (lambda b: loss(b.runs), ("train",)),
    "norms": (lambda b: norms(b.runs), ("train",)),
    "in_support": (lambda b: in_support(b.runs), ("geometry",)),
    "geometry_grid": (geometry_grid, ("train", "reference", "svm")),
    "logits": (logits, ("train", "reference", "svm", "table")),
    "similarity_labelled": (similarity_labelled, ("train", "table")),
    "structural_correlation": (structural_correlation, ("geometry", "svm")),
    "evolution": (evolution, ("train", "reference", "svm")),
    "direction_distance": (direction_distance, ("geometry", "svm")),
    "spectra": (spectra, ("geometry", "svm")),
    "representation": (representation, ("geometry", "svm")),
    "intrinsic": (intrinsic, ("geometry", "svm")),
    "layers": (layers, ("geometry", "svm")),
    "onehot": (onehot, ("geometry",)),
}


#: The figures the paper draws with the runs of every dataset on one set of axes (paper §2.5:
#: F1, F2, F3, F7 overlay its four runs); rule ``fig_overlay_<name>`` draws each from every
#: dataset's stores into ``results/figures/<name>.png``, with the same function as above.
OVERLAYS: tuple[str, ...] = ("loss", "norms", "in_support", "structural_correlation")
assert all(set(FIGURES[name][1]) <= {"train", "geometry", "svm"} for name in OVERLAYS)


def render(name: str, bundle: Bundle) -> Any:
    """Draw figure ``name`` of :data:`FIGURES` from a bundle (colours assigned first)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    if not bundle.runs:
        from ntpgeom.errors import UserError

        raise UserError(f"figure {name}: dataset {bundle.dataset} has no training runs")
    assign_colors(bundle.runs, bundle.families)
    return FIGURES[name][0](bundle)

