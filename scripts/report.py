"""Rule report: every dataset's stores and figures, and the linear study's → results/report.html."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.plots.report import build_report  # noqa: E402
from ntpgeom.store import open_store, script_main  # noqa: E402


def opened(paths: dict) -> dict:
    """One entry of params.datasets / linear / semantics with its stores opened (figures stay
    paths): ``table`` → a Table, ``reference``/``store`` → a dataset, ``svm``/``geometry``/
    ``train`` → a list of datasets."""
    out = dict(paths)
    for key, value in paths.items():
        if key == "table":
            out[key] = load(value)
        elif key in ("reference", "store"):
            out[key] = open_store(value)
        elif key in ("svm", "geometry", "train"):
            out[key] = [open_store(p) for p in value]
    return out


def main() -> None:
    params = snakemake.params
    build_report(snakemake.output.html,
                 datasets={k: opened(v) for k, v in params.datasets.items()},
                 captions_dir=Path(snakemake.input.captions[0]).parent, config=params.config,
                 overlays=params.overlays, toy=params.toy,
                 linear={k: opened(v) for k, v in (params.linear or {}).items()},
                 semantics={k: opened(v) for k, v in (params.semantics or {}).items()})


script_main(main)
