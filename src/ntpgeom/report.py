"""The HTML report: every figure, the key numbers of each dataset, and the config, in one file.

The page is self-contained (figures embedded as base64 PNG data URIs, no scripts, no external
style sheets), so it can be mailed or archived as is. Snakemake's own ``snakemake --report``
works too (the figure rules wrap their PNGs in ``report()`` with the captions of ``report/``);
this page adds the table of numbers the paper quotes (``docs/paper.md`` §2.4, §2.6).
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

from ntpgeom.reference import nuclear_norm, reldir

log = logging.getLogger(__name__)


def dataset_numbers(table, reference, svm: Mapping[str, Any],
                    runs: Mapping[str, Any]) -> dict[str, Any]:
    """The key numbers of one dataset.

    Parameters
    ----------
    table : ntpgeom.table.Table
    reference : xarray.Dataset
        ``reference.zarr`` (``S_bar``).
    svm : mapping of str to xarray.Dataset
        ``svm/{solver}.zarr`` per solver (``L_mm``, attrs ``nuclear_norm``, ``rank``).
    runs : mapping of str to xarray.Dataset
        ``"{model}/{run}"`` → the run's geometry store.

    Returns
    -------
    dict
        ``n, m, V, entropy, nuclear_norm_S_bar, rank_S_bar``; ``solvers``: per solver
        ``nuclear_norm`` (‖L^mm‖_*, recomputed from L_mm), ``dist_to_S_bar``
        (‖L^mm/‖L^mm‖ − S̄/‖S̄‖‖_F), ``rank``; ``runs``: per run the final step and, at it,
        CE − H, ‖P_F(L) − L*‖_F, ‖L − L*‖/‖L‖ and the direction distances of L and P_F⊥(L) to
        each solver's L^mm and to S̄.
    """
    S_bar = reference["S_bar"].transpose("token", "context").values
    out: dict[str, Any] = {"n": table.n, "m": table.m, "V": table.V, "entropy": table.entropy,
                           "nuclear_norm_S_bar": nuclear_norm(S_bar),
                           "rank_S_bar": int(reference.sizes.get("rank", 0)),
                           "solvers": {}, "runs": {}}
    for solver, ds in svm.items():
        L_mm = ds["L_mm"].transpose("token", "context").values
        out["solvers"][solver] = {"nuclear_norm": nuclear_norm(L_mm),
                                  "dist_to_S_bar": reldir(L_mm, S_bar),
                                  "rank": int(ds.attrs.get("rank", ds.sizes.get("rank", 0)))}
    for name, g in runs.items():
        last = g.isel(step=-1)
        row = {"step": int(last["step"]),
               "ce_minus_entropy": float(last["ce_minus_entropy"]),
               "in_support_error": float(last["in_support_error"]),
               "relative_offset": float(last["relative_offset"])}
        for target in [str(t) for t in g["target"].values if str(t) != "S"]:
            row[f"dist_L:{target}"] = float(last["dist_L"].sel(target=target))
            row[f"dist_L_perp:{target}"] = float(last["dist_L_perp"].sel(target=target))
        out["runs"][name] = row
    return out


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


def render_html(numbers: Mapping[str, Mapping[str, Any]],
                figures: Mapping[str, Sequence[tuple[str, str | os.PathLike]]],
                captions: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """The report page.

    Parameters
    ----------
    numbers : mapping
        dataset → :func:`dataset_numbers`.
    figures : mapping
        dataset → [(figure name, PNG path)], in display order; each PNG is embedded.
    captions : mapping
        figure name → its caption in reStructuredText (``report/<name>.rst``).
    config : mapping
        The workflow's config, shown as JSON.
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
                  + [f"dist P_F⊥L → {t}" for t in targets])
        rows = [[ds, name, r["step"], r["ce_minus_entropy"], r["in_support_error"],
                 r["relative_offset"]] + [r.get(f"dist_L:{t}") for t in targets]
                + [r.get(f"dist_L_perp:{t}") for t in targets]
                for name, r in num["runs"].items()]
        parts.append(_table(header, rows))
    parts.append("<p>dist A → B = ‖A/‖A‖_F − B/‖B‖_F‖_F (0: same direction). The theory "
                 "predicts CE − H → 0, ‖P_F(L) − L*‖ → 0 and dist L → L^mm → 0.</p>")
    for ds, figs in figures.items():
        parts.append(f"<h2>Figures: {html.escape(ds)}</h2>")
        for name, png in figs:
            data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
            parts.append(f"<figure id='{html.escape(ds)}-{html.escape(name)}'>"
                         f"<img alt='{html.escape(ds)}: {html.escape(name)}' "
                         f"src='data:image/png;base64,{data}'>"
                         f"<figcaption><b>{html.escape(name)}</b> "
                         f"({html.escape(str(png))}){_caption_text(captions.get(name, ''))}"
                         "</figcaption></figure>")
    parts.append("<h2>Configuration</h2><pre>"
                 + html.escape(json.dumps(config, indent=2, sort_keys=True, default=str),
                               quote=False)
                 + "</pre></body></html>")
    return "\n".join(parts)


def build_report(out: str | os.PathLike, *, datasets: Mapping[str, Mapping[str, Any]],
                 captions_dir: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Read each dataset's stores and figures and write the report to ``out``.

    ``datasets`` maps a dataset to its paths: ``table``, ``reference``, ``svm`` (list),
    ``geometry`` (list of ``.../geometry/{model}/{run}.zarr``) and ``figures`` (list of PNGs).
    """
    from ntpgeom.figio import run_id
    from ntpgeom.store import open_store
    from ntpgeom.table import load

    numbers, figures = {}, {}
    for ds, paths in datasets.items():
        svm = {Path(p).name.removesuffix(".zarr"): open_store(p) for p in paths["svm"]}
        runs = {"/".join(run_id(p)): open_store(p) for p in paths["geometry"]}
        numbers[ds] = dataset_numbers(load(paths["table"]), open_store(paths["reference"]), svm,
                                      runs)
        figures[ds] = [(Path(p).stem, p) for p in paths["figures"]]
    names = {name for figs in figures.values() for name, _ in figs}
    captions = {n: (Path(captions_dir) / f"{n}.rst").read_text() for n in names
                if (Path(captions_dir) / f"{n}.rst").exists()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(numbers, figures, captions, config), encoding="utf-8")
    log.info("wrote %s (%d figures)", out, sum(len(f) for f in figures.values()))
    return out
