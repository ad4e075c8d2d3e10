"""The linear-model figures (NeurIPS 2402.18551, App. A), one function each, no I/O.

Each takes a :class:`LinearBundle` (the ``linear/{embedding}/reference.zarr`` store and the
optimizers' ``linear/{embedding}/train/{optimizer}.zarr`` stores, already opened) and returns a
Figure, drawn with the helpers of :mod:`ntpgeom.plots.style`; :func:`render_linear` draws one
from the opened stores and writes PNG and PDF with :func:`ntpgeom.plots.figio.save`. Rule
``fig_linear_<name>`` (``rules/linear.smk``; ``scripts/linear_figure.py`` opens the stores) draws
``results/{dataset}/figures/linear/{embedding}/<name>.png``; ``fig_linear_toy`` the 2-D toy.

What the theorem (Thm 2) predicts, per figure: CE − H → 0 (``ce``); ‖W_k‖ → ∞ (``norm``);
⟨W_k/‖W_k‖, W^mm/‖W^mm‖⟩ → 1, also for W_k − W* (``correlation``); ‖P_F(W_k) − W*‖ → 0
(``in_support``); all four for every optimizer at once (``optimizers``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ntpgeom.plots.figio import save
from ntpgeom.plots.style import new_figure, positive, step_axis

if TYPE_CHECKING:  # not at parse time: rules/common.smk imports this module
    import xarray as xr

#: W^mm in matplotlib's mathtext (as ntpgeom.plots.style.LMM; h̄_j likewise, a plain combining
#: overline is not drawn).
WMM = r"W$^\mathrm{mm}$"

#: Optimizer colours (the paper's Fig. 3 draws GD, NGD, Adam; AdamW is ours).
COLORS = {"gd": "tab:blue", "ngd": "tab:orange", "adam": "tab:green", "adamw": "tab:red"}
NAMES = {"gd": "GD", "ngd": "NGD", "adam": "Adam", "adamw": "AdamW"}


@dataclass
class LinearBundle:
    """One (dataset, embedding): its reference store and its runs by optimizer name."""

    dataset: str
    embedding: str
    reference: Any = None
    runs: dict[str, Any] = field(default_factory=dict)

    def title(self) -> str:
        a = self.reference.attrs if self.reference is not None else {}
        return (f"{self.dataset}, embedding {self.embedding}: d = {a.get('d')}, m = {a.get('m')}, "
                f"V = {a.get('V')}, H = {a.get('entropy', float('nan')):.4f}")


def _style(name: str, ds) -> dict[str, Any]:
    opt = ds.attrs.get("optimizer_name", ds.attrs.get("optimizer", name))
    lr = ds.attrs.get("lr")
    label = f"{NAMES.get(name, name)} (η = {lr:.3g})" if lr is not None else NAMES.get(name, name)
    style = {"color": COLORS.get(name, COLORS.get(opt, "black")), "label": label}
    if opt == "adamw":  # wide and translucent: Adam's curve, often identical, shows through
        style.update(lw=3.5, alpha=0.45)
    return style


def _panel_ce(ax, b: LinearBundle) -> None:
    for name, ds in b.runs.items():
        ax.plot(ds["trace_step"].values + 1.0, positive(ds["trace_ce_minus_entropy"].values),
                **_style(name, ds))
    step_axis(ax, "iteration k + 1")
    ax.set_yscale("log")
    ax.set_ylabel("CE(W_k) − H  (nats)")
    ax.set_title("CE − H → 0", fontsize=10)


def _panel_norm(ax, b: LinearBundle) -> None:
    for name, ds in b.runs.items():
        ax.plot(ds["trace_step"].values + 1.0, ds["trace_norm_W"].values, **_style(name, ds))
    norm_mm = b.reference.attrs.get("norm_W_mm")
    norm_star = b.reference.attrs.get("norm_W_star")
    ax.axhline(norm_star, color="grey", ls=":", lw=1, label="‖W*‖")
    ax.axhline(norm_mm, color="black", ls="--", lw=1, label=f"‖{WMM}‖")
    step_axis(ax, "iteration k + 1")
    ax.set_yscale("log")
    ax.set_ylabel("‖W_k‖_F")
    ax.set_title("‖W_k‖ → ∞", fontsize=10)


def _panel_corr(ax, b: LinearBundle) -> None:
    for name, ds in b.runs.items():
        st = _style(name, ds)
        x = ds["step"].values + 1.0
        extra = {k: st[k] for k in ("lw", "alpha") if k in st}
        ax.plot(x, ds["corr_W"].values, color=st["color"], marker=".", ms=3,
                label=f"{st['label']}: W_k", **extra)
        ax.plot(x, ds["corr_W_offset"].values, color=st["color"], ls="--",
                label=f"{st['label']}: W_k − W*", **extra)
    ax.axhline(1.0, color="black", lw=0.8)
    step_axis(ax, "iteration k + 1")
    ax.set_ylim(-0.1, 1.05)
    ax.set_ylabel(f"⟨W/‖W‖, {WMM}/‖{WMM}‖⟩")
    ax.set_title(f"correlation with {WMM} → 1 (solid W_k, dashed W_k − W*)", fontsize=10)


def _panel_in_support(ax, b: LinearBundle) -> None:
    for name, ds in b.runs.items():
        ax.plot(ds["step"].values + 1.0, positive(ds["in_support_error_W"].values), marker=".",
                ms=3, **_style(name, ds))
    step_axis(ax, "iteration k + 1")
    ax.set_yscale("log")
    ax.set_ylabel("‖P_F(W_k) − W*‖_F")
    ax.set_title("‖P_F(W_k) − W*‖ → 0", fontsize=10)


PANELS: dict[str, Callable[[Any, LinearBundle], None]] = {
    "ce": _panel_ce, "norm": _panel_norm, "correlation": _panel_corr,
    "in_support": _panel_in_support,
}


def _single(name: str) -> Callable[[LinearBundle], Any]:
    def draw(b: LinearBundle) -> Any:
        fig, ax = new_figure(1, 1, (6, 4.2))
        PANELS[name](ax[0, 0], b)
        ax[0, 0].legend(fontsize=7)
        fig.suptitle(b.title(), fontsize=9)
        return fig

    draw.__doc__ = f"One panel: {name}, every optimizer."
    return draw


def optimizers(b: LinearBundle) -> Any:
    """All four panels (CE − H, ‖W_k‖, correlations, ‖P_F(W_k) − W*‖), optimizers overlaid:
    the NeurIPS paper's Fig. 3, with AdamW added."""
    fig, axes = new_figure(2, 2, (12, 8.5))
    for ax, panel in zip(axes.ravel(), PANELS.values(), strict=True):
        panel(ax, b)
    for ax in axes.ravel():
        ax.legend(fontsize=7)
    fig.suptitle(b.title())
    return fig


#: name → figure function of a :class:`LinearBundle`; rule ``fig_linear_<name>`` each.
LINEAR_FIGURES: dict[str, Callable[[LinearBundle], Any]] = {
    "ce": _single("ce"), "norm": _single("norm"), "correlation": _single("correlation"),
    "in_support": _single("in_support"), "optimizers": optimizers,
}


def _label_positions(tips: np.ndarray, gap: float) -> np.ndarray:
    """Label positions for arrows from the origin to ``tips`` (n × 2): ``gap`` beyond each tip,
    then moved up by ``gap`` until at least ``gap`` from every earlier label (w1 = w5 in W^mm,
    and W*'s short rows crowd the origin)."""
    norms = np.linalg.norm(tips, axis=1, keepdims=True)
    out = tips + gap * np.divide(tips, norms, out=np.zeros_like(tips), where=norms > 0)
    for i in range(len(out)):
        while any(np.linalg.norm(out[i] - out[k]) < gap for k in range(i)):
            out[i, 1] += gap
    return out


def toy(table, H_bar: np.ndarray, W_mm: np.ndarray, W_star: np.ndarray) -> Any:
    """The 2-D toy (NeurIPS Figs. 1–2): the rows w_z of W^mm and of W* as arrows, the fixed h̄_j
    as dashed arrows. W^mm depends on the supports only, so w1 = w5 (same support pattern);
    W* depends on the probabilities, so w1 ≠ w5."""
    fig, axes = new_figure(1, 2, (11, 5.2))
    S = table.S()
    supports = ", ".join("{" + ",".join(str(z + 1) for z in np.flatnonzero(S[:, j])) + "}"
                         for j in range(table.m))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for ax, W, title in ((axes[0, 0], W_mm, f"{WMM} (NTP-SVM): w1 = w5"),
                         (axes[0, 1], W_star, "W* (in-support, in F): w1 ≠ w5")):
        lim = 1.25 * max(np.abs(W).max(), np.abs(H_bar).max())  # room for the labels
        for z, xy in enumerate(_label_positions(W, 0.07 * lim)):
            ax.annotate("", xy=W[z], xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": colors[z % 5], "lw": 2})
            ax.text(*xy, f"w{z + 1}", color=colors[z % 5], fontsize=11, ha="center",
                    va="center")
        for j in range(H_bar.shape[1]):
            ax.annotate("", xy=H_bar[:, j], xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": "grey", "ls": "--"})
            ax.text(*(H_bar[:, j] * 1.08), rf"$\bar{{h}}_{j + 1}$", color="grey", fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="k", lw=0.4)
        ax.axvline(0, color="k", lw=0.4)
        ax.set_title(title, fontsize=11)
    fig.suptitle(f"2-D toy: d = 2, m = 3, V = 5, supports {supports}, H = {table.entropy:.4f}")
    return fig


# -- writing the figures ------------------------------------------------------------------------
def render_linear(name: str, dataset: str, embedding: str, *, reference: xr.Dataset,
                  runs: Mapping[str, xr.Dataset], png: str, pdf: str) -> None:
    """Draw figure ``name`` of :data:`LINEAR_FIGURES` and write PNG and PDF.

    ``reference`` is the opened ``linear/{embedding}/reference.zarr``; ``runs`` maps each
    ``linear.optimizers`` entry's name to its opened ``train/{name}.zarr``, in legend order.
    """
    save(LINEAR_FIGURES[name](LinearBundle(dataset, embedding, reference, dict(runs))), png, pdf)


def render_toy(*, png: str, pdf: str, seed: int = 0, solvers=("clarabel", "fista")) -> None:
    """Solve the 2-D toy (:func:`ntpgeom.studies.linear.toy_problem`) and draw it."""
    # Not at the top: rules/common.smk imports this module at parse time, and the study's module
    # imports torch (the training stage).
    from ntpgeom.studies.linear import linear_reference, toy_problem

    table, H_bar = toy_problem(seed)
    ref = linear_reference(table, H_bar, solvers=list(solvers))
    W_mm = ref["W_mm"].values
    W_star = ref["W_star"].values
    save(toy(table, H_bar, W_mm, W_star), png, pdf)
