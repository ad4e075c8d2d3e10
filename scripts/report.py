"""Rule report: every dataset's stores and figures → results/report.html."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.report import build_report  # noqa: E402
from ntpgeom.store import script_main  # noqa: E402


def main() -> None:
    build_report(snakemake.output.html, datasets=snakemake.params.datasets,
                 captions_dir=snakemake.params.captions, config=snakemake.params.config)


script_main(main)
