"""The HTML report: every figure, the key numbers of each dataset, and the config, in one file.

The page is self-contained (figures embedded as base64 PNG data URIs, no scripts, no external
style sheets), so it can be mailed or archived as is. Snakemake's own ``snakemake --report``
works too (the figure rules wrap their PNGs in ``report()`` with the captions of ``report/``);
this page adds the table of numbers the paper quotes (``docs/paper.md`` §2.4, §2.6).

Sections: the key numbers (with every similarity beside its chance level, the level of random
Gaussian embeddings of the run's shapes); the claims table (the eight claims of ``docs/paper.md``
§3, each with its number, its reference and the verdict, :mod:`ntpgeom.metrics.claims`); the
overlays (every run of every dataset on one figure, F1, F2, F3,
F7); the figures of each dataset; with a ``linear`` section in the config, one section per
(dataset, embedding) of the linear-model study (NeurIPS 2402.18551: the compatibility and
separability checks, d > m and rank(H̄), the W^mm solvers' agreement, each optimizer's last
checkpoint, :func:`linear_numbers`) and its figures, then the 2-D toy; the config.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntpgeom.plots.bundle import ALL_DATASETS
from ntpgeom.plots.numbers import (
    SIMILARITIES,
    dataset_numbers,
    linear_numbers,
    semantics_numbers,
)
from ntpgeom.store import run_identity, solver_name

log = logging.getLogger(__name__)


def _semantics_section(key: str, num: Mapping[str, Any],
                       figures: Sequence[tuple[str, str | os.PathLike]],
                       captions: Mapping[str, str]) -> list[str]:
    """The HTML of one run's semantics (``key`` = dataset/model/run)."""
    parts = [f"<h2 id='semantics-{html.escape(key)}'>Semantics: {html.escape(key)}</h2>",
             "<p>How concepts emerge (<code>docs/semantics.md</code>): the learning step of each "
             f"degenerate block of S̄ (first checkpoint with mode strength ≥ θ = "
             f"{_fmt(num['theta'])} logits) and the orthant clusters of the trained words.</p>"]
    header = ["σ (S̄)", "modes in block", "learning step (S̄ basis)"]
    if num["blocks"] and "learn_step_L_mm" in num["blocks"][0]:
        header.append("learning step (L^mm basis)")
    parts.append(_table(header, [[r["sigma"], r["size"], r["learn_step"]]
                                 + ([r["learn_step_L_mm"]] if "learn_step_L_mm" in r else [])
                                 for r in num["blocks"]]))
    parts.append(f"<p>Learning steps non-decreasing as σ decreases: "
                 f"{_yes_no(num['ordered'])} ({num['unlearned']} block(s) never reach θ).</p>")
    parts.append(_table(["direction", "+ pole", "− pole"],
                        [[i + 1, a, b] for i, (a, b) in enumerate(num["poles"])]))
    parts.append(f"<h3>Orthant clusters at k = {num['k']} ({num['k_used']} directions)</h3>")
    parts.append(_table(["cluster", "words", "size"],
                        [[c["id"], ", ".join(c["words"][:30])
                          + (" …" if len(c["words"]) > 30 else ""), c["size"]]
                         for c in num["clusters"][:40]]))
    if "ari" in num:
        levels = len(num["ari"]["ari_W"][0])
        rows = [[f"k = {k + 1}"] + [num["ari"][n][k][lv] for n in ("ari_W", "ari_W_in_S_bar",
                                                                    "ari_kmeans_W")
                                    for lv in range(levels)] + list(num["ari_target"][k])
                for k in range(len(num["ari"]["ari_W"]))]
        header = ["k"] + [f"{what}, level {lv + 1}" for what in
                          ("orthant (trained basis)", "orthant (S̄ basis)", "k-means")
                          for lv in range(levels)] + [f"S̄ factors, level {lv + 1}"
                                                       for lv in range(levels)]
        parts.append("<p>Adjusted Rand index against the ground truth (each word's ancestor at "
                     "each level):</p>")
        parts.append(_table(header, rows))
        parts.append("<p>Broad before fine: the step at which each level's clusters match the "
                     "ground truth and its block of S̄ is learned: "
                     + ", ".join(f"level {i + 1}: {_fmt(v)}" for i, v in enumerate(num["resolve"]))
                     + ".</p>")
    parts += [_figure(f"semantics {key}", name, png, captions.get(f"semantics_{name}", ""))
              for name, png in figures]
    return parts


def _fmt(x: Any) -> str:
    if isinstance(x, bool | np.bool_):
        return str(x)
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        x = float(x)
        if not np.isfinite(x):
            return "–"
        return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.3e}"
    return html.escape(str(x))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _caption_text(rst: str) -> str:
    """A caption's reStructuredText as plain HTML paragraphs (``literal`` → <code>)."""
    paragraphs = [" ".join(p.split()) for p in rst.strip().split("\n\n") if p.strip()]
    out = []
    for p in paragraphs:
        parts = html.escape(p).split("``")
        text = "".join(f"<code>{s}</code>" if i % 2 else s for i, s in enumerate(parts))
        out.append(f"<p>{text}</p>")
    return "".join(out)


CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;font-size:90%}th{background:#f3f3f3}td:first-child{text-align:left}
figure{margin:1.5em 0;border-top:1px solid #ddd;padding-top:.5em}img{max-width:100%;height:auto}
figcaption{font-size:90%;color:#444}pre{background:#f7f7f7;padding:1em;overflow-x:auto}
"""


def _figure(section: str, name: str, png: str | os.PathLike, caption: str) -> str:
    """One embedded PNG (base64 data URI) with its name, path and caption."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f"<figure id='{html.escape(section)}-{html.escape(name)}'>"
            f"<img alt='{html.escape(section)}: {html.escape(name)}' "
            f"src='data:image/png;base64,{data}'>"
            f"<figcaption><b>{html.escape(name)}</b> "
            f"({html.escape(str(png))}){_caption_text(caption)}</figcaption></figure>")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "NO"


def _linear_section(key: str, num: Mapping[str, Any],
                    figures: Sequence[tuple[str, str | os.PathLike]],
                    captions: Mapping[str, str]) -> list[str]:
    """The HTML of one (dataset, embedding) of the linear study (``key`` = dataset/embedding)."""
    parts = [f"<h2 id='linear-{html.escape(key)}'>Linear model: {html.escape(key)}</h2>",
             "<p>Fixed context embeddings H̄ (d × m), only the decoder W trained (NeurIPS "
             "2402.18551, <code>docs/paper.md</code> §1.9). From "
             f"<code>results/{html.escape(key.split('/')[0])}/linear/"
             f"{html.escape(key.split('/', 1)[1])}/</code>.</p>",
             "<h3>Conditions</h3>"]
    rows = [["d > m and rank(H̄) = m (Lemma 1)", _yes_no(num["overparameterized"]),
             f"d = {num['d']}, m = {num['m']}, rank(H̄) = {num['rank_H_bar']}"],
            ["NTP_H-compatible (some W^p matches every in-support log-odds)",
             _yes_no(num["compatible"]),
             f"residual max|P_F(W* H̄) − L*| = {_fmt(num['compatibility_residual'])} nats"],
            ["NTP-separable (equal in-support logits, margin ≥ 1 off support)",
             _yes_no(num["separable"]),
             f"best normalized margin γ* = {_fmt(num['margin'])}; {num['stuck_constraints']} "
             f"of {num['margin_constraints']} margin constraints cannot be made positive"]]
    parts.append(_table(["check", "holds", "evidence"], rows))
    parts.append(f"<p>V = {num['V']}, n = {num['n']}, H = {_fmt(num['entropy'])} nats; "
                 f"‖W*‖_F = {_fmt(num['norm_W_star'])}, ‖W^mm‖_F = {_fmt(num['norm_W_mm'])}."
                 "</p>")
    parts.append("<h3>W^mm solvers</h3>")
    parts.append(_table(["solver", "status", "‖W^mm‖_F", "max constraint violation"],
                        [[s, v["status"], v["norm"], v["violation"]]
                         for s, v in num["solvers"].items()]))
    parts.append("<p>Agreement: max over solver pairs of ‖W_a − W_b‖_F / ‖W_b‖_F = "
                 f"{_fmt(num['solver_agreement'])}.</p>")
    parts.append("<h3>Optimizers at their last step</h3>")
    parts.append(_table(["optimizer", "update", "step size η", "step", "CE − H (nats)", "‖W‖_F",
                         "⟨Ŵ, Ŵ^mm⟩", "⟨(W − W*)^, Ŵ^mm⟩", "‖P_F(W) − W*‖_F"],
                        [[name, r["optimizer"], r["lr"], r["step"], r["ce_minus_entropy"],
                          r["norm_W"], r["corr_W"], r["corr_W_offset"], r["in_support_error_W"]]
                         for name, r in num["runs"].items()]))
    parts.append("<p>Ŵ = W/‖W‖_F. The theorem (Thm 2) predicts CE − H → 0, ‖W‖ → ∞, both "
                 "correlations → 1 and ‖P_F(W) − W*‖ → 0.</p>")
    parts += [_figure(f"linear {key}", name, png, captions.get(f"linear_{name}", ""))
              for name, png in figures]
    return parts


def _with_chance(value: float, chance: float, std: float) -> str:
    """"value (chance ± σ)" for a table cell; "–" where the metric is undefined (NaN), e.g. the
    off-diagonal correlation with a target whose cosines are constant off the diagonal."""
    if not np.isfinite(value):
        return "–"
    return f"{_fmt(value)} ({_fmt(chance)} ± {_fmt(std)})"


def _similarity_section(numbers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every similarity of the last checkpoint beside its chance level, per run and target."""
    parts = ["<h3>Similarities at the last checkpoint, beside chance</h3>",
             "<p>Each cell: the run's value (chance level ± σ): the mean and standard deviation "
             "of the same metric for 32 seeded draws of random Gaussian W, H with the run's "
             "shapes, against the same target. The paper's whole-matrix correlation of cosine "
             "matrices is far above 0 by chance (both diagonals are ones); the off-diagonal "
             "one is ≈ 0 by chance.</p>"]
    for ds, num in numbers.items():
        sims = num.get("similarity", {})
        names = [v for v in SIMILARITIES
                 if any(v in per for tg in sims.values() for per in tg.values())]
        if not names:
            continue
        rows = [[ds, run, target] + [_with_chance(*per[v]) if v in per else "–" for v in names]
                for run, by_target in sims.items() for target, per in by_target.items()]
        parts.append(_table(["dataset", "run", "target"] + [SIMILARITIES[v] for v in names],
                            rows))
    return parts


def _claims_section(numbers: Mapping[str, Mapping[str, Any]],
                    linear: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The claims table: per dataset and run, the eight claims of paper.md §3."""
    from ntpgeom.metrics.claims import Claim, claim_rows, linear_claims

    rows = []
    for ds, num in numbers.items():
        for run, claims in num.get("claims", {}).items():
            rows += [[ds, run] + r for r in claim_rows(claims)]
        rows += [[ds, "NTP-SVM"] + r for r in claim_rows(num.get("svm_claims", []))]
        lin = []
        for key, lnum in linear.items():
            dataset, embedding = key.split("/", 1)
            if dataset == ds:
                for c in linear_claims(lnum):
                    c.where = f"{embedding}/{c.where}"   # "embedding/optimizer"
                    lin.append(c)
        if not lin:
            lin = [Claim(8, [], [], "needs the linear-model study", None,
                         note="no linear section for this dataset in the config")]
        rows += [[ds, "linear model"] + r for r in claim_rows(lin)]
    if not rows:
        return []
    return ["<h2>Claims of the paper (docs/paper.md §3)</h2>",
            "<p>Each claim with the number that tests it, the reference that gives it meaning "
            "(its value at step 0, the chance level of random embeddings, or the theory's "
            "limit) and whether the run shows it by the stated criterion. Claims 1–6 use the "
            "run's geometry store against the dataset's first solver; claim 4 uses the "
            "softmax-invariant distance dist_L_centered. A short run may say NO: the criteria "
            "are about finite runs, the theory about limits.</p>",
            _table(["dataset", "run", "#", "claim", "where", "measured", "reference",
                    "criterion", "shows"], rows)]


def render_html(numbers: Mapping[str, Mapping[str, Any]],
                figures: Mapping[str, Sequence[tuple[str, str | os.PathLike]]],
                captions: Mapping[str, str], config: Mapping[str, Any], *,
                overlays: Sequence[tuple[str, str | os.PathLike]] = (),
                linear: Mapping[str, Mapping[str, Any]] | None = None,
                linear_figures: Mapping[str, Sequence[tuple[str, str | os.PathLike]]] | None
                = None, toy: str | os.PathLike | None = None,
                semantics: Mapping[str, Mapping[str, Any]] | None = None,
                semantics_figures: Mapping[str, Sequence[tuple[str, str | os.PathLike]]]
                | None = None) -> str:
    """The report page.

    Parameters
    ----------
    numbers : mapping
        dataset → :func:`dataset_numbers`.
    figures : mapping
        dataset → [(figure name, PNG path)], in display order; each PNG is embedded.
    captions : mapping
        figure name → its caption in reStructuredText (``report/<name>.rst``; the linear
        figures' are ``linear_<name>``).
    config : mapping
        The workflow's config, shown as JSON.
    overlays : sequence
        [(figure name, PNG path)] of the figures with every dataset's runs, shown first.
    linear, linear_figures : mapping
        "dataset/embedding" → :func:`linear_numbers`, and → [(figure name, PNG path)].
    toy : path
        The linear study's 2-D toy PNG, if drawn.
    semantics, semantics_figures : mapping
        "dataset/model/run" → :func:`semantics_numbers`, and → [(figure name, PNG path)].
    """
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>ntpgeom report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>ntpgeom: implicit geometry of next-token prediction</h1>",
             "<p>Reproduction of Zhao, Behnia, Vakilian &amp; Thrampoulidis, “Implicit Geometry "
             "of Next-token Prediction” (COLM 2024). Every number below is read from the stores "
             "under <code>results/{dataset}/</code>; every figure names its stores in its "
             "caption.</p>", "<h2>Key numbers</h2>"]
    header = ["dataset", "n", "m", "V", "H (nats)", "solver", "‖L^mm‖_*", "‖S̄‖_*",
              "‖L^mm/‖L^mm‖ − S̄/‖S̄‖‖_F", "rank L^mm", "rank S̄"]
    rows = []
    for ds, num in numbers.items():
        for solver, s in num["solvers"].items():
            rows.append([ds, num["n"], num["m"], num["V"], num["entropy"], solver,
                         s["nuclear_norm"], num["nuclear_norm_S_bar"], s["dist_to_S_bar"],
                         s["rank"], num["rank_S_bar"]])
    parts.append(_table(header, rows))
    parts.append("<h3>Training runs at their last checkpoint</h3>")
    for ds, num in numbers.items():
        targets = sorted({k.split(":", 1)[1] for r in num["runs"].values() for k in r
                          if k.startswith("dist_L:")}, key=lambda t: (t == "S_bar", t))
        header = (["dataset", "run", "step", "CE − H (nats)", "‖P_F(L) − L*‖_F",
                   "‖L − L*‖/‖L‖"] + [f"dist L → {t}" for t in targets]
                  + [f"dist L̃ → {t}" for t in targets]
                  + [f"dist P_F⊥L → {t}" for t in targets])
        rows = [[ds, name, r["step"], r["ce_minus_entropy"], r["in_support_error"],
                 r["relative_offset"]] + [r.get(f"dist_L:{t}") for t in targets]
                + [r.get(f"dist_L_centered:{t}", float("nan")) for t in targets]
                + [r.get(f"dist_L_perp:{t}") for t in targets]
                for name, r in num["runs"].items()]
        parts.append(_table(header, rows))
    parts.append("<p>dist A → B = ‖A/‖A‖_F − B/‖B‖_F‖_F (0: same direction); L̃ is L with each "
                 "column's mean over tokens removed (softmax ignores it; L^mm and S̄ have none). "
                 "The theory predicts CE − H → 0, ‖P_F(L) − L*‖ → 0 and dist L → L^mm → 0.</p>")
    parts += _similarity_section(numbers)
    parts += _claims_section(numbers, linear or {})
    if overlays:
        parts.append("<h2>Figures: all datasets</h2><p>The figures the paper overlays (F1, F2, "
                     "F3, F7): every training run of every dataset on one set of axes, each "
                     "(dataset, model) in the same colour as in its dataset's own figures "
                     "(synthetic data gold/orange, real text blue, as the paper's); F7 compares "
                     "each run with its own dataset's L^mm. The captions are those of the "
                     "per-dataset figures, read for every dataset.</p>")
        parts += [_figure(ALL_DATASETS, name, png, captions.get(name, ""))
                  for name, png in overlays]
    for ds, figs in figures.items():
        parts.append(f"<h2>Figures: {html.escape(ds)}</h2>")
        parts += [_figure(ds, name, png, captions.get(name, "")) for name, png in figs]
    for key, num in (linear or {}).items():
        parts += _linear_section(key, num, (linear_figures or {}).get(key, []), captions)
    if toy:
        parts.append("<h2>Linear model: the 2-D toy</h2>")
        parts.append(_figure("linear", "toy", toy, captions.get("linear_toy", "")))
    for key, num in (semantics or {}).items():
        parts += _semantics_section(key, num, (semantics_figures or {}).get(key, []), captions)
    parts.append("<h2>Configuration</h2><pre>"
                 + html.escape(json.dumps(config, indent=2, sort_keys=True, default=str),
                               quote=False)
                 + "</pre></body></html>")
    return "\n".join(parts)


def build_report(out: str | os.PathLike, *, datasets: Mapping[str, Mapping[str, Any]],
                 captions_dir: str | os.PathLike, config: Mapping[str, Any],
                 overlays: Sequence[str | os.PathLike] = (),
                 linear: Mapping[str, Mapping[str, Any]] | None = None,
                 toy: str | os.PathLike | None = None,
                 semantics: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write the report to ``out`` from each dataset's opened stores and figures.

    ``datasets`` maps a dataset to its ``table`` (:class:`~ntpgeom.data.table.Table`),
    ``reference`` (``reference.zarr``), ``svm`` (``svm/{solver}.zarr`` datasets, config order),
    ``geometry`` (its runs' geometry stores) and ``figures`` (PNG paths). ``overlays``: the PNGs
    of the figures across datasets (``results/figures/<name>.png``). ``linear`` maps
    "dataset/embedding" to its ``reference`` (the linear ``reference.zarr``), ``train`` (its
    runs' stores) and ``figures`` (``<name>.png`` paths); ``toy``: the 2-D toy's PNG.
    ``semantics`` maps "dataset/model/run" to ``store`` (its semantics store) and ``figures``.
    Solutions are named by :func:`~ntpgeom.store.solver_name`, runs by
    :func:`~ntpgeom.store.run_identity`, linear runs by their attr ``run`` (their
    ``linear.optimizers`` entry).
    """
    numbers, figures = {}, {}
    for ds, stores in datasets.items():
        svm = {solver_name(s): s for s in stores["svm"]}
        runs = {"/".join(run_identity(g)[1:]): g for g in stores["geometry"]}
        numbers[ds] = dataset_numbers(stores["table"], stores["reference"], svm, runs)
        figures[ds] = [(Path(p).stem, p) for p in stores["figures"]]
    overlay_figs = [(Path(p).stem, p) for p in overlays]
    lin_numbers, lin_figures = {}, {}
    for key, stores in (linear or {}).items():
        runs = {str(r.attrs["run"]): r for r in stores["train"]}
        lin_numbers[key] = linear_numbers(stores["reference"], runs)
        lin_figures[key] = [(Path(p).stem, p) for p in stores["figures"]]
    sem_numbers = {key: semantics_numbers(stores["store"])
                   for key, stores in (semantics or {}).items()}
    sem_figures = {key: [(Path(p).stem, p) for p in paths["figures"]]
                   for key, paths in (semantics or {}).items()}
    names = ({name for figs in figures.values() for name, _ in figs}
             | {f"semantics_{name}" for figs in sem_figures.values() for name, _ in figs}
             | {name for name, _ in overlay_figs}
             | {f"linear_{name}" for figs in lin_figures.values() for name, _ in figs}
             | ({"linear_toy"} if toy else set()))
    captions = {n: (Path(captions_dir) / f"{n}.rst").read_text() for n in names
                if (Path(captions_dir) / f"{n}.rst").exists()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(numbers, figures, captions, config, overlays=overlay_figs,
                               linear=lin_numbers, linear_figures=lin_figures, toy=toy,
                               semantics=sem_numbers, semantics_figures=sem_figures),
                   encoding="utf-8")
    log.info("wrote %s (%d figures)", out,
             sum(len(f) for f in figures.values()) + len(overlay_figs)
             + sum(len(f) for f in lin_figures.values()) + bool(toy))
    return out
