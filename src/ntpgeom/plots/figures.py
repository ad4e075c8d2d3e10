"""The paper's figures (paper §2.5, F1–F8), one function each, and the registry of every figure.

Every function takes already-loaded data (a :class:`~ntpgeom.plots.bundle.Bundle` of xarray
datasets and the table) and returns a :class:`matplotlib.figure.Figure`; nothing here reads or
writes files (the scripts open the stores, :func:`ntpgeom.plots.figio.save` writes the images).
Each figure has one Snakemake rule, ``fig_<name>``, writing ``results/{dataset}/figures/<name>.png``
and ``.pdf`` (``rules/figures.smk``), and a caption in ``report/<name>.rst`` naming the function
that computed its numbers and the one that draws it. The diagnostics beyond the paper (CKA/RSA,
intrinsic dimension, layers, the one-hot regime) are in :mod:`ntpgeom.plots.representation_figures`;
colours and run matching in :mod:`ntpgeom.plots.bundle`; shared drawing helpers in
:mod:`ntpgeom.plots.style`.

Figures with several runs (F1, F2, F3, F7, listed in :data:`OVERLAYS`) are also drawn with every
run of every dataset on one set of axes (rule ``fig_overlay_<name>``,
``results/figures/<name>.png``), by the same functions. Text that needs a combining mark (S̄,
h̄) or a superscript (L^mm) is written in matplotlib's mathtext (:data:`~ntpgeom.plots.style.SBAR`,
:data:`~ntpgeom.plots.style.LMM`): a combining overline in a plain string is dropped by
matplotlib's text layout (S̄ reads as S).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ntpgeom.errors import UserError
from ntpgeom.metrics.core import cosine_matrix
from ntpgeom.plots.bundle import ALL_DATASETS, MODEL_NAMES, Bundle, Run, assign_colors
from ntpgeom.plots.representation_figures import intrinsic, layers, onehot, representation
from ntpgeom.plots.style import (
    CHANCE_SIGMAS,
    LMM,
    SBAR,
    SOLVER_STYLE,
    TARGET_STYLE,
    chance_band,
    final_factors,
    first_run,
    first_solver,
    heatmap,
    new_figure,
    positive,
    run_solver,
    shared_legend,
    step_axis,
    trace,
    unit,
)

log = logging.getLogger(__name__)


# -- F1, F2, F3: convergence curves ------------------------------------------------------------
def loss(runs: Sequence[Run]) -> Any:
    """F1: CE_k − H against training step, log–log (Thm (i): CE → H)."""
    fig, ax = new_figure(1, 1, (5.5, 4))
    ax = ax[0, 0]
    for r in runs:
        x, y = trace(r, "ce_minus_entropy")
        ax.plot(x, positive(y), color=r.color, label=f"{r.dataset}, {r.label}")
    step_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("CE − H  (nats)")
    ax.set_title("F1  Loss convergence: CE − H → 0")
    ax.legend(fontsize=8)
    return fig


def norms(runs: Sequence[Run]) -> Any:
    """F2: ‖W_k‖_F (dashed) and ‖H_k‖_F (solid) against training step, log–log (norms diverge)."""
    fig, ax = new_figure(1, 1, (5.5, 4))
    ax = ax[0, 0]
    for r in runs:
        x, w = trace(r, "norm_W")
        _, h = trace(r, "norm_H")
        ax.plot(x, h, color=r.color, ls="-", label=f"{r.dataset}, {r.label}: ‖H‖")
        ax.plot(x, w, color=r.color, ls="--", label=f"{r.dataset}, {r.label}: ‖W‖")
    step_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("Frobenius norm (parameter units)")
    ax.set_title("F2  Norm growth: ‖H‖ solid, ‖W‖ dashed")
    ax.legend(fontsize=7)
    return fig


def in_support(runs: Sequence[Run]) -> Any:
    """F3: ‖P_F(L_k) − L*‖_F (log–log) and ‖L_k − L*‖_F/‖L_k‖_F (Thm (ii))."""
    fig, axes = new_figure(1, 2, (10, 4))
    for r in runs:
        g = r.geometry
        x = g["step"].values + 1.0
        axes[0, 0].plot(x, positive(g["in_support_error"].values), color=r.color, marker=".",
                        label=f"{r.dataset}, {r.label}")
        axes[0, 1].plot(x, g["relative_offset"].values, color=r.color, marker=".")
    for ax in axes[0]:
        step_axis(ax)
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
    solver = first_solver(bundle)
    mm = bundle.svm[solver].transpose("token", "rank", "context", ...)
    ref = bundle.reference.transpose("token", "rank", "context", ...)
    return [(f"{LMM} ({solver})", mm["W_mm"].values, mm["H_mm"].values, mm["L_mm"].values),
            (f"{SBAR} (centered support)", ref["W_bar"].values, ref["H_bar"].values,
             ref["S_bar"].values)]


def geometry_grid(bundle: Bundle) -> Any:
    """F4: the 3×4 grid. Rows cos(H), cos(W), logits; columns TF, UFM, L^mm, S̄ (final step)."""
    columns: list[tuple[str, Any]] = []
    for model in ("transformer", "ufm"):
        r = first_run(bundle.runs, model)
        columns.append((f"{MODEL_NAMES[model]} {r.run}" if r else f"{MODEL_NAMES[model]}: no run",
                        final_factors(r) if r else None))
    for title, W, H, L in _prediction_factors(bundle):
        columns.append((title, (W, H, L)))
    fig, axes = new_figure(3, 4, (15, 10.5))
    for c, (title, mats) in enumerate(columns):
        if mats is None:
            for row in range(3):
                axes[row, c].axis("off")
            axes[0, c].set_title(title, fontsize=9)
            continue
        W, H, L = mats
        im_cos = heatmap(axes[0, c], cosine_matrix(H.T), cmap="viridis", vmin=-1, vmax=1,
                       title=f"{title}\ncos(h_i, h_j)", xlabel="context j", ylabel="context i")
        heatmap(axes[1, c], cosine_matrix(W), cmap="viridis", vmin=-1, vmax=1,
              title="cos(w_z, w_z')", xlabel="token z'", ylabel="token z")
        lim = float(np.abs(L).max()) or 1.0
        im = heatmap(axes[2, c], L, cmap="coolwarm", vmin=-lim, vmax=lim, title="logits L",
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
        panels.append((f"{title} / ‖·‖_F", unit(L), "coolwarm", None, None))
    for model in ("ufm", "transformer"):
        r = first_run(bundle.runs, model)
        if r is not None:
            panels.append((f"{r.label}, final / ‖·‖_F", unit(final_factors(r)[2]), "coolwarm", None,
                           None))
    lim = max(float(np.abs(M).max()) for _, M, cmap, _, _ in panels if cmap == "coolwarm")
    fig, axes = new_figure(1, len(panels), (3.4 * len(panels), 4.2))
    for ax, (title, M, cmap, vmin, vmax) in zip(axes[0], panels, strict=True):
        lo, hi = (vmin, vmax) if vmin is not None else (-lim, lim)
        im = heatmap(ax, M, cmap=cmap, vmin=lo, vmax=hi, title=title, xlabel="context j",
                   ylabel="token z")
        if cmap == "Greys":
            fig.colorbar(im, ax=ax, label="z ∈ S_j", shrink=0.8, ticks=[0, 1])
    fig.colorbar(im, ax=axes[0, 1:].tolist(), label="logit / ‖L‖_F (shared scale)", shrink=0.8)
    fig.suptitle(f"F5  {bundle.dataset}: logit matrices, each normalized to unit Frobenius norm")
    return fig


def similarity_labelled(bundle: Bundle) -> Any:
    """F6: cos(W) over tokens and cos(H) over contexts, with the token/context strings as ticks."""
    r = first_run(bundle.runs, "ufm") or bundle.runs[0]
    W, H, _ = final_factors(r)
    tokens, contexts = bundle.table.tokens, bundle.table.contexts
    longest = max(len(s) for s in [*tokens, *contexts])
    # Room below for the rotated context strings (about 0.09 inch per character at 8 pt).
    fig, axes = new_figure(1, 2, (16, 7 + 0.09 * longest))
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
    r = first_run(bundle.runs, "ufm") or bundle.runs[0]
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
    fig, axes = new_figure(3, len(cols), (3.3 * len(cols), 9.5))
    lim = max(float(np.abs(unit(L)).max()) for _, _, _, L in cols)
    for c, (name, W, H, L) in enumerate(cols):
        im_cos = heatmap(axes[0, c], cosine_matrix(H.T), cmap="viridis", vmin=-1, vmax=1,
                       title=f"{name}\ncos(h_i, h_j)", xlabel="context j", ylabel="context i")
        heatmap(axes[1, c], cosine_matrix(W), cmap="viridis", vmin=-1, vmax=1,
              title="cos(w_z, w_z')", xlabel="token z'", ylabel="token z")
        im = heatmap(axes[2, c], unit(L), cmap="coolwarm", vmin=-lim, vmax=lim,
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
    (:func:`run_solver`), so the runs of several datasets (the overlay) share the axes."""
    solvers = list(dict.fromkeys(run_solver(bundle, r) for r in bundle.runs))
    targets = [("mm", f"{LMM} ({', '.join(solvers)}) factors"), ("S_bar", f"{SBAR} factors"),
               ("S", "support S (cos(S,S), cos(Sᵀ,Sᵀ))")]
    fig, axes = new_figure(2, 3, (14, 7.5), sharey=True)
    for c, (target, title) in enumerate(targets):
        for row, what in enumerate(("H", "W")):
            ax = axes[row, c]
            for r in bundle.runs:
                g = r.geometry
                t = run_solver(bundle, r) if target == "mm" else target
                ax.plot(g["step"].values + 1.0, g[f"corr_cos_{what}"].sel(target=t).values,
                        color=r.color, marker=".", label=bundle.run_label(r))
                if f"corr_cos_{what}_offdiag" in g:
                    ax.plot(g["step"].values + 1.0,
                            g[f"corr_cos_{what}_offdiag"].sel(target=t).values, color=r.color,
                            ls="--", lw=1, label=f"{bundle.run_label(r)}, off-diagonal")
                chance_band(ax, g, f"corr_cos_{what}", t, r.color,
                             label=f"chance ± {CHANCE_SIGMAS}σ (whole matrix)")
                chance_band(ax, g, f"corr_cos_{what}_offdiag", t, r.color, alpha=0.5,
                             hatch="///", label=f"chance ± {CHANCE_SIGMAS}σ (off-diagonal)")
            step_axis(ax)
            ax.set_ylim(-0.2, 1.05)
            ax.set_title(f"cos({what}_k) vs {title}", fontsize=9)
            if c == 0:
                ax.set_ylabel("structural correlation (SSIM-s ≈ Pearson)")
    shared_legend(fig, axes, loc="outside lower center", ncol=max(2 * len(bundle.runs), 2))
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
    fig, axes = new_figure((len(panels) + 1) // 2, 2, (11, 4 * ((len(panels) + 1) // 2)),
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
        step_axis(ax)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{what}: normalized distance", fontsize=10)
        ax.set_ylabel("‖A/‖A‖ − B/‖B‖‖_F  (0 = same direction)")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    shared_legend(fig, axes, loc="outside lower center", ncol=2)
    fig.suptitle(f"{bundle.dataset}: direction distance to {LMM} (solid) and to {SBAR} (dashed)")
    return fig


def spectra(bundle: Bundle) -> Any:
    """Singular spectra σ_i/‖·‖_F: final L_k of every run vs L^mm and S̄; and their growth."""
    solver = first_solver(bundle)
    fig, axes = new_figure(1, 2, (12, 4.5))
    ax = axes[0, 0]
    for t, style, name in ((solver, SOLVER_STYLE, f"{LMM} ({solver})"),
                           ("S_bar", {**TARGET_STYLE["S_bar"]}, SBAR)):
        g0 = bundle.runs[0].geometry
        sv = g0["target_singular_values"].sel(target=t).values
        ax.plot(np.arange(1, sv.size + 1), positive(sv / np.linalg.norm(sv)), marker="o", ms=3,
                label=name, **style)
    for r in bundle.runs:
        sv = r.geometry["singular_values_L"].isel(step=-1).values
        ax.plot(np.arange(1, sv.size + 1), positive(sv / np.linalg.norm(sv)), color=r.color,
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
    r = first_run(bundle.runs, "ufm") or bundle.runs[0]
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
    step_axis(ax)
    ax.set_ylabel("σ_i(L_k) / ‖L_k‖_F")
    ax.set_title(f"{r.label}: top singular values over training\n(dashed: the same for {LMM})",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{bundle.dataset}: singular spectra, trained vs {LMM}")
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
    if bundle.dataset == ALL_DATASETS and name not in OVERLAYS:
        raise ValueError(f"figure {name!r} is not drawn across datasets; choose from "
                         f"{', '.join(OVERLAYS)}")
    if not bundle.runs:
        raise UserError(f"figure {name}: dataset {bundle.dataset} has no training runs")
    assign_colors(bundle.runs, bundle.families)
    return FIGURES[name][0](bundle)
