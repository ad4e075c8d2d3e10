"""Reading and writing the pipeline's zarr stores, and the provenance every store carries.

Every artifact is one zarr (format 3) store written by xarray (see ``docs/artifacts.md``):

- written to a temporary sibling directory and renamed into place, so a crash or a kill never
  leaves a half-written store under the final name;
- consolidated metadata off on both sides (zarr 3 warns about consolidated v3 metadata, and a
  mismatch between writer and reader warns on every open);
- attrs hold JSON only: the config that made the store, the package version and the wall time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ntpgeom.errors import UserError

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and paths into plain JSON types (zarr attrs must be JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def provenance(config: Mapping[str, Any] | None = None, *, wall_seconds: float | None = None,
               **extra: Any) -> dict[str, Any]:
    """Attrs every store carries: the config that made it (as JSON), the package version, wall time.

    No timestamps or host names, so that rebuilding a store from the same input gives the same
    attrs (byte-comparable outputs, Snakemake's generated unit tests).
    """
    from ntpgeom import __version__

    attrs: dict[str, Any] = {
        "config": json.dumps(_jsonable(dict(config or {})), sort_keys=True),
        "ntpgeom_version": __version__,
    }
    if wall_seconds is not None:
        attrs["wall_seconds"] = float(wall_seconds)
    attrs.update(_jsonable(extra))
    return attrs


def write_store(ds, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` atomically: temporary directory, then rename.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset; its attrs must be JSON-serialisable (see :func:`provenance`).
    path : path-like
        Final store path (a directory ending in ``.zarr``).
    overwrite : bool
        Replace an existing store at ``path``. The old store stays intact until the new one is
        complete.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; remove it or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    ds = ds.copy()
    ds.attrs = _jsonable(dict(ds.attrs))
    for name in list(ds.variables):
        ds[name].attrs = _jsonable(dict(ds[name].attrs))
        ds[name].encoding = {}
    try:
        ds.to_zarr(tmp, mode="w-", consolidated=False, zarr_format=3)
        if path.exists():
            trash = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_store(path: str | os.PathLike, *, load: bool = True):
    """Open a store written by :func:`write_store` as an ``xarray.Dataset`` (loaded into memory).

    Raises
    ------
    UserError
        If ``path`` is not a zarr store.
    """
    import xarray as xr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise UserError(f"{path} is not a zarr store (no zarr.json); build it first")
    with warnings.catch_warnings():
        # Snakemake writes a .snakemake_timestamp file inside directory() outputs; zarr warns
        # that it is not part of the hierarchy, which is harmless.
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        ds = xr.open_zarr(path, consolidated=False)
        return ds.load() if load else ds


def script_main(fn: Callable[[], Any]) -> None:
    """Run a Snakemake script's body; a :class:`UserError` becomes one log line and exit status 1.

    The script's stderr already goes to the rule's log (Snakemake's ``log:``); tracebacks are kept
    for real bugs only.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    start = time.perf_counter()
    try:
        fn()
    except UserError as err:
        print(f"ntpgeom: error: {err}", file=sys.stderr)
        sys.exit(1)
    log.info("done in %.1f s", time.perf_counter() - start)
