"""Reading the stores a figure needs and writing the figure: the I/O around :mod:`figures`.

Store paths follow ``docs/artifacts.md``: a run's training store is
``results/{dataset}/train/{model}/{run}.zarr`` and its geometry store
``results/{dataset}/geometry/{model}/{run}.zarr``, so (model, run) is read off the path, and for
the overlays, which read every dataset's stores, the dataset too (``results/{dataset}/svm/
{solver}.zarr`` likewise).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ntpgeom.plots.figures import ALL_DATASETS, Bundle, Run

log = logging.getLogger(__name__)


def run_id(path: str | os.PathLike) -> tuple[str, str]:
    """(model, run) of ``.../{model}/{run}.zarr``."""
    path = Path(path)
    return path.parent.name, path.name.removesuffix(".zarr")


def store_dataset(path: str | os.PathLike) -> str:
    """``{dataset}`` of ``results/{dataset}/{train,geometry}/{model}/{run}.zarr`` or of
    ``results/{dataset}/svm/{solver}.zarr``."""
    path = Path(path)
    return (path.parents[1] if path.parent.name == "svm" else path.parents[2]).name


def _paths(value: str | Sequence[str]) -> list[str]:
    """A Snakemake named input is a string for one file and a list for several."""
    return [value] if isinstance(value, str | os.PathLike) else [str(v) for v in value]


def _load_runs(train, geometry, dataset_of) -> list[Run]:
    """Runs matched by (dataset, model, run) across their training and geometry stores."""
    from ntpgeom.store import open_store

    runs: dict[tuple[str, str, str], Run] = {}
    for kind, paths in (("train", train), ("geometry", geometry)):
        for p in _paths(paths):
            model, run = run_id(p)
            dataset = dataset_of(p)
            r = runs.setdefault((dataset, model, run), Run(dataset=dataset, model=model, run=run))
            setattr(r, kind, open_store(p))
    return list(runs.values())


def load_bundle(dataset: str, *, train: Sequence[str] = (), geometry: Sequence[str] = (),
                reference: str | None = None, svm: Sequence[str] = (),
                table: str | None = None, families: Mapping[str, int] | None = None) -> Bundle:
    """Open the given stores into a :class:`Bundle`; runs are matched by (model, run).

    ``svm`` paths are ``.../svm/{solver}.zarr``; the solver's name is the file stem, in the order
    given (the first is the one single-solver figures show). ``families``: dataset → colour
    family (:func:`ntpgeom.plots.figures.dataset_families`).
    """
    from ntpgeom.data.table import load
    from ntpgeom.store import open_store

    return Bundle(dataset=dataset, runs=_load_runs(train, geometry, lambda p: dataset),
                  reference=open_store(reference) if reference else None,
                  svm={Path(p).name.removesuffix(".zarr"): open_store(p) for p in _paths(svm)},
                  table=load(table) if table else None, families=dict(families or {}))


def load_overlay(*, train: Sequence[str] = (), geometry: Sequence[str] = (),
                 svm: Sequence[str] = (), families: Mapping[str, int] | None = None) -> Bundle:
    """The runs of every dataset in one :class:`Bundle` (dataset :data:`ALL_DATASETS`).

    Each store's dataset is read off its path; each run is compared with the first solver given
    for its dataset (the svm stores are not opened: the geometry stores hold the comparisons).
    """
    runs = _load_runs(train, geometry, store_dataset)
    first: dict[str, str] = {}
    for p in _paths(svm):
        first.setdefault(store_dataset(p), Path(p).name.removesuffix(".zarr"))
    for r in runs:
        r.solver = first.get(r.dataset)
    return Bundle(dataset=ALL_DATASETS, runs=runs, families=dict(families or {}))


def save(fig, *paths: str | os.PathLike, dpi: int = 150) -> None:
    """Write a figure to each path (format from the suffix: .png, .pdf, .svg).

    The layout (constrained) is computed once, for the first file, and then frozen: the others
    get the same axes positions without solving the layout again, which took up to half of a
    figure job's drawing time (the 3×4 grid: 3.2 s → 1.7 s for its PDF).
    """
    for i, p in enumerate(paths):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        # Metadata without a creation date keeps the PDF byte-identical across rebuilds.
        meta = {"CreationDate": None} if str(p).endswith(".pdf") else {}
        fig.savefig(p, dpi=dpi, metadata=meta)
        if i == 0:
            fig.set_layout_engine("none")
        log.info("wrote %s", p)


def render_to(name: str, dataset: str, *, png: str, pdf: str,
              families: Mapping[str, int] | None = None, **stores) -> None:
    """Load ``stores`` (as :func:`load_bundle`), draw figure ``name``, write PNG and PDF."""
    from ntpgeom.plots.figures import render

    save(render(name, load_bundle(dataset, families=families, **stores)), png, pdf)


def render_overlay_to(name: str, *, png: str, pdf: str,
                      families: Mapping[str, int] | None = None, **stores) -> None:
    """Load every dataset's ``stores`` (as :func:`load_overlay`), draw figure ``name`` of
    :data:`ntpgeom.plots.figures.OVERLAYS` with all their runs, write PNG and PDF."""
    from ntpgeom.plots.figures import OVERLAYS, render

    if name not in OVERLAYS:
        raise ValueError(f"figure {name!r} is not drawn across datasets; choose from "
                         f"{', '.join(OVERLAYS)}")
    save(render(name, load_overlay(families=families, **stores)), png, pdf)
