"""Reading the stores a figure needs and writing the figure: the I/O around :mod:`figures`.

Store paths follow ``docs/artifacts.md``: a run's training store is
``results/{dataset}/train/{model}/{run}.zarr`` and its geometry store
``results/{dataset}/geometry/{model}/{run}.zarr``, so (model, run) is read off the path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ntpgeom.figures import Bundle, Run

log = logging.getLogger(__name__)


def run_id(path: str | os.PathLike) -> tuple[str, str]:
    """(model, run) of ``.../{model}/{run}.zarr``."""
    path = Path(path)
    return path.parent.name, path.name.removesuffix(".zarr")


def _paths(value: str | Sequence[str]) -> list[str]:
    """A Snakemake named input is a string for one file and a list for several."""
    return [value] if isinstance(value, str | os.PathLike) else [str(v) for v in value]


def load_bundle(dataset: str, *, train: Sequence[str] = (), geometry: Sequence[str] = (),
                reference: str | None = None, svm: Sequence[str] = (),
                table: str | None = None) -> Bundle:
    """Open the given stores into a :class:`Bundle`; runs are matched by (model, run).

    ``svm`` paths are ``.../svm/{solver}.zarr``; the solver's name is the file stem, in the order
    given (the first is the one single-solver figures show).
    """
    from ntpgeom.store import open_store
    from ntpgeom.table import load

    runs: dict[tuple[str, str], Run] = {}
    for kind, paths in (("train", train), ("geometry", geometry)):
        for p in _paths(paths):
            model, run = run_id(p)
            r = runs.setdefault((model, run), Run(dataset=dataset, model=model, run=run))
            setattr(r, kind, open_store(p))
    return Bundle(dataset=dataset, runs=list(runs.values()),
                  reference=open_store(reference) if reference else None,
                  svm={Path(p).name.removesuffix(".zarr"): open_store(p) for p in _paths(svm)},
                  table=load(table) if table else None)


def save(fig, *paths: str | os.PathLike, dpi: int = 150) -> None:
    """Write a figure to each path (format from the suffix: .png, .pdf, .svg)."""
    for p in paths:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        # Metadata without a creation date keeps the PDF byte-identical across rebuilds.
        meta = {"CreationDate": None} if str(p).endswith(".pdf") else {}
        fig.savefig(p, dpi=dpi, metadata=meta)
        log.info("wrote %s", p)


def render_to(name: str, dataset: str, *, png: str, pdf: str, **stores) -> None:
    """Load ``stores`` (as :func:`load_bundle`), draw figure ``name``, write PNG and PDF."""
    from ntpgeom.figures import render

    save(render(name, load_bundle(dataset, **stores)), png, pdf)
