"""Figures beyond the paper: representation similarity (CKA, RSA, k-NN overlap), intrinsic
dimension and subspace collapse, the geometry at every transformer layer, and the one-hot regime
(``docs/semantics.md``). Registered with the paper's in :data:`ntpgeom.plots.figures.FIGURES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ntpgeom.plots.bundle import Bundle
from ntpgeom.plots.style import (
    CHANCE_SIGMAS,
    LMM,
    SBAR,
    SOLVER_STYLE,
    TARGET_STYLE,
    chance_band,
    depth_colors,
    first_solver,
    new_figure,
    placeholder,
    shared_legend,
    step_axis,
)


def representation(bundle: Bundle) -> Any:
    """Linear CKA, RSA and k-NN overlap of trained H and W with L^mm's factors, over training."""
    solver = first_solver(bundle)
    metrics = [("cka", "linear CKA"), ("rsa", "RSA (Spearman of cosine RDMs)"),
               ("knn", "k-NN overlap")]
    fig, axes = new_figure(2, 3, (14, 7.5), sharey=True)
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
                chance_band(ax, g, f"{key}_{what}", solver, r.color,
                             label=f"chance ± {CHANCE_SIGMAS}σ vs {LMM}")
            step_axis(ax)
            ax.set_ylim(-0.2, 1.05)
            knn = f", k = {bundle.runs[0].geometry.attrs.get('knn_k')}" if key == "knn" else ""
            ax.set_title(f"{title}{knn}: {'contexts H' if what == 'H' else 'words W'}",
                         fontsize=9)
            if c == 0:
                ax.set_ylabel("similarity (1 = identical)")
    shared_legend(fig, axes, loc="outside lower center", ncol=4)
    fig.suptitle(f"{bundle.dataset}: representation similarity to {LMM} ({solver}) factors "
                 f"(solid) and {SBAR} factors (dashed); bands: random embeddings")
    return fig


def intrinsic(bundle: Bundle) -> Any:
    """TwoNN intrinsic dimension of W and H, and subspace collapse of H, over training.

    The fourth panel shows collapse in the paper's terms: the mean cosine of context embeddings
    within blocks of identical support (→ 1) and across blocks. A dataset where no two contexts
    share a support says so in the collapse panels instead of leaving them empty."""
    solver = first_solver(bundle)
    fig, axes = new_figure(1, 4, (19, 4.2))
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
        step_axis(ax)
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
    step_axis(ax)
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


def layers(bundle: Bundle) -> Any:
    """Geometry at every transformer layer: at which depth the context geometry approaches H^mm.

    One row per transformer run: the Gram distance ``dist_gram_H_layer`` and the structural
    correlation ``corr_cos_H_layer`` of the last position's representation after the token
    embedding, each block and the final norm with L^mm's context factors, over training (one
    curve per depth; the final norm's is the run's ``dist_gram_H``/``corr_cos_H``), with the
    chance band of random Gaussian H. Datasets without layer stores say so."""
    solver = first_solver(bundle)
    runs = [r for r in bundle.runs if "layer" in r.geometry.dims]
    fig, axes = new_figure(max(len(runs), 1), 2, (12, 3.8 * max(len(runs), 1)))
    if not runs:
        for ax in axes[0]:
            placeholder(ax, "no transformer run with per-layer states (H_layer)")
    for row, r in enumerate(runs):
        g = r.geometry
        names = [str(x) for x in g["layer"].values]
        colors = depth_colors(len(names))
        x = g["step"].values + 1.0
        for col, (var, ylabel) in enumerate((("dist_gram_H", "‖G/‖G‖ − G_mm/‖G_mm‖‖_F"),
                                             ("corr_cos_H", "structural correlation"))):
            ax = axes[row, col]
            for j, name in enumerate(names):
                ax.plot(x, g[f"{var}_layer"].sel(target=solver, layer=name).values,
                        color=colors[j], marker=".", label=name)
            chance_band(ax, g, var, solver, "grey", label=f"chance ± {CHANCE_SIGMAS}σ")
            step_axis(ax)
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
    fig, axes = new_figure(1, 2, (12, 5.2))
    if not runs:
        for ax in axes[0]:
            placeholder(ax, "no latent attributes in this table (context_label)")
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
            step_axis(ax)
            ax.set_title(title, fontsize=9)
        axes[0, 1].set_ylim(bottom=0)
        shared_legend(fig, axes, loc="outside lower center", ncol=4)
    fig.suptitle(f"{bundle.dataset}: structure before collapse? (thin: transformer layers)")
    return fig
