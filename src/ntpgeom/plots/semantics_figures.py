"""The semantics figures (``docs/semantics.md``), one function each, no I/O.

Each takes a run's ``results/{dataset}/semantics/{model}/{run}.zarr`` dataset (opened) and
returns a Figure; ``scripts/semantics_figure.py`` opens the store and writes PNG and PDF. Rule
``fig_semantics_<name>`` (``rules/semantics.smk``) draws
``results/{dataset}/figures/semantics/{model}/{run}/<name>.png``.

- ``strength``: ā_k(t) of each degenerate block of S̄ against log step, θ and the learning
  steps marked (check 4: the blocks cross θ in the order of σ);
- ``order``: learning step against 1/σ per target (check 5: t_k σ_k roughly constant, so a
  line through the origin up to the log correction);
- ``clusters``: the words' coordinates on the trained L's top two concept directions,
  coloured by their orthant cluster at the largest k, with each direction's poles named.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ntpgeom.plots.style import new_figure, step_axis


def _title(ds) -> str:
    return f"{ds.attrs.get('model', '')} (seed {ds.attrs.get('seed')})"


def strength(ds):
    """Mode strength against log step, one curve per degenerate block of S̄."""
    fig, axes = new_figure(1, 1, (6.4, 4.2))
    ax = axes[0, 0]
    s = ds.sel(target="S_bar")
    steps = ds["step"].values + 1.0
    blocks = s["block"].values
    theta = float(ds.attrs.get("theta", 0.5))
    colors = [f"C{i % 10}" for i in range(int(blocks.max()) + 1)] if blocks.size else []
    for b in np.unique(blocks[blocks >= 0]):
        k = int(np.flatnonzero(blocks == b)[0])
        size = int((blocks == b).sum())
        sigma = float(s["sigma"].values[k])
        ax.plot(steps, s["mode_strength"].values[:, k], color=colors[b],
                label=f"σ = {sigma:.3g}" + (f" (×{size})" if size > 1 else ""))
        t = s["learn_step"].values[k]
        if np.isfinite(t):
            ax.axvline(t + 1.0, color=colors[b], ls=":", lw=1)
    ax.axhline(theta, color="grey", ls="--", lw=1, label=f"θ = {theta:g}")
    step_axis(ax)
    ax.set_ylabel("mode strength ā_k = mean u_iᵀ L_t v_i over the block (logits)")
    ax.set_title(f"Learning order of S̄'s modes: {_title(ds)}")
    ax.legend(fontsize=7, ncol=2)
    return fig


def order(ds):
    """Learning step against 1/σ, per target."""
    fig, axes = new_figure(1, 1, (5.2, 4.2))
    ax = axes[0, 0]
    for i, target in enumerate(ds["target"].values):
        s = ds.sel(target=target)
        sigma, t = s["sigma"].values, s["learn_step"].values
        ok = np.isfinite(sigma) & np.isfinite(t)
        ax.plot(1 / sigma[ok], t[ok], "o" if i == 0 else "x", color=f"C{i}",
                label=str(target), alpha=0.8)
    ax.set_xlabel("1 / σ_k")
    ax.set_ylabel(f"learning step (first step with ā_k ≥ θ = {ds.attrs.get('theta', 0.5):g})")
    ax.set_title(f"Learning step vs 1/σ: {_title(ds)}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def clusters(ds):
    """Words on the trained L's two top concept directions, coloured by their cluster at k = 2;
    the clusters at the largest k listed beside."""
    fig, axes = new_figure(1, 2, (11, 4.6))
    ids = ds["orthant_W"].values[-1]
    k_used = int(ds["k_used"].values[-1])
    tokens = [str(t) for t in ds["token"].values]
    # Cluster sizes and the words of each (the largest first), as a text panel.
    ax = axes[0, 1]
    ax.axis("off")
    counts = np.bincount(ids)
    lines = [f"k = {int(ds['k'].values[-1])} ({k_used} directions"
             f"{', degenerate block taken whole' if bool(ds['degenerate'].values[-1]) else ''})"]
    for c in np.argsort(-counts, kind="stable")[:14]:
        words = [tokens[z] for z in np.flatnonzero(ids == c)]
        text = ", ".join(words[:10]) + (" …" if len(words) > 10 else "")
        lines.append(f"cluster {c} ({counts[c]}): {text}")
    if "ari_W" in ds:
        lines.append("ARI vs token_label (k = 1 … K, level = 1 …): "
                     + "; ".join(" ".join(f"{v:.2f}" for v in row) for row in ds["ari_W"].values))
    ax.text(0, 1, "\n".join(lines), va="top", fontsize=7, family="monospace", wrap=True)
    ax = axes[0, 0]
    # The pole words on each axis: the concept's two ends.
    pos, neg = ds["pole_pos_W"].values, ds["pole_neg_W"].values
    ax.set_title(f"Orthant clusters of the words: {_title(ds)}", fontsize=10)
    if "sigma_L" not in ds or ds.sizes["k"] < 1:
        return fig
    ax.set_xlabel(f"direction 1: − {neg[0]}  |  + {pos[0]}", fontsize=8)
    if ds.sizes["k"] >= 2:
        ax.set_ylabel(f"direction 2: − {neg[1]}  |  + {pos[1]}", fontsize=8)
    Y = ds["coord_W"].values
    x = Y[:, 0]
    y = Y[:, 1] if Y.shape[1] > 1 else np.zeros_like(x)
    # Coloured by the clusters at k = 2 (the two axes' orthants, with k's block taken whole).
    colour = ds["orthant_W"].values[min(1, ds.sizes["k"] - 1)]
    ax.scatter(x, y, c=[f"C{c % 10}" for c in colour], s=18)
    for z in range(min(len(tokens), 60)):
        ax.annotate(tokens[z], (x[z], y[z]), fontsize=6, alpha=0.7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    return fig


#: name → drawing function; rule fig_semantics_<name> draws each.
SEMANTICS_FIGURES: dict[str, Callable] = {"strength": strength, "order": order,
                                          "clusters": clusters}
