"""Rule report: every dataset's stores and figures, and the linear study's → results/report.html."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.plots.report import build_report  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    build_report(snakemake.output.html, datasets=snakemake.params.datasets,
                 captions_dir=Path(snakemake.input.captions[0]).parent,
                 config=snakemake.params.config, overlays=snakemake.params.overlays,
                 linear=snakemake.params.linear, toy=snakemake.params.toy,
                 semantics=snakemake.params.semantics)


script_main(main)
