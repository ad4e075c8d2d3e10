"""Reading and writing the pipeline's zarr stores, and the provenance every store carries.

Every artifact is one zarr (format 3) store written by xarray (see ``docs/artifacts.md``):

- written to a temporary sibling directory and renamed into place, so a crash or a kill never
  leaves a half-written store under the final name; the temporary directory is removed on every
  exit path, and a later write of the same store sweeps what a SIGKILL left behind;
- an existing path is replaced only when it is a store this project wrote (its attrs carry the
  provenance of :func:`provenance`) and is not an input of the same command
  (:func:`check_output`), so a wrong ``--out`` never deletes a user's files;
- every chunk written, also those equal to the fill value, so that a chunk file missing later (which
  zarr would silently read back as the fill value) is detected on opening (:func:`open_store`);
- consolidated metadata off on both sides (zarr 3 warns about consolidated v3 metadata, and a
  mismatch between writer and reader warns on every open);
- attrs hold JSON only: the config that made the store, the package version and the wall time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ntpgeom.errors import Terminated, UserError

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


def is_project_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr store this project wrote: its root attrs carry the provenance
    that :func:`provenance` gives every store (``ntpgeom_version`` and ``config``)."""
    path = Path(path)
    meta = path / "zarr.json"
    if path.is_symlink() or not path.is_dir() or not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attrs, dict) and "ntpgeom_version" in attrs and "config" in attrs


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, in one line and before any work, an output path whose writing would lose data.

    ``out`` may be new, or an existing store this project wrote (:func:`is_project_store`) that
    is not one of ``inputs`` and holds none of them. Anything else, and an ``out`` below a regular
    file, is a :class:`UserError`. :func:`write_store` checks this again when it writes.

    Returns
    -------
    Path
        ``out`` as a path.
    """
    out = Path(out)
    for parent in out.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise UserError(f"{out}: {parent} is a file, not a folder; choose an output path "
                                "in a folder")
            break
    resolved = out.resolve()
    for item in inputs:
        source = Path(item).resolve()
        if source == resolved or resolved in source.parents:
            raise UserError(f"{out} is an input of this command ({item}); writing it would "
                            "replace the input: choose another output path")
    if (out.exists() or out.is_symlink()) and not is_project_store(out):
        kind = "folder" if out.is_dir() else "file"
        raise UserError(f"{out} exists and is a {kind} ntpgeom did not write (no ntpgeom store "
                        "attrs); refusing to replace it: choose another output path, or remove "
                        "it yourself")
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine): the owner of a temporary file is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.{name}.tmp-*`` / ``.{name}.old-*`` siblings of store ``path`` that a killed
    write left behind (their writer's process id is no longer running); return them."""
    path = Path(path)
    removed = []
    for pattern in (f".{path.name}.tmp-*", f".{path.name}.old-*"):
        for stale in path.parent.glob(pattern):
            # Names are .X.zarr.tmp-{pid}-{hex}; older ones have no pid and are always stale.
            pid = stale.name.rsplit(".", 1)[-1].split("-")[1:-1]
            if pid and pid[0].isdigit() and int(pid[0]) != os.getpid() and pid_alive(int(pid[0])):
                continue
            shutil.rmtree(stale, ignore_errors=True)
            if stale.is_file() or stale.is_symlink():
                stale.unlink(missing_ok=True)
            removed.append(stale)
            log.info("removed %s, left by an interrupted write", stale)
    return removed


def write_store(ds, path: str | os.PathLike, *, overwrite: bool = True,
                inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` atomically: temporary directory, then rename.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset; its attrs must be JSON-serialisable (see :func:`provenance`).
    path : path-like
        Final store path (a directory ending in ``.zarr``).
    overwrite : bool
        Replace an existing store at ``path`` (only one this project wrote: see
        :func:`check_output`). The old store stays intact until the new one is complete.
    inputs : paths
        The command's inputs, which ``path`` must not be nor contain.
    """
    path = check_output(path, inputs)
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; remove it or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    ds = ds.copy()
    ds.attrs = _jsonable(dict(ds.attrs))
    for name in list(ds.variables):
        ds[name].attrs = _jsonable(dict(ds[name].attrs))
        ds[name].encoding = {}
    try:
        # Every chunk on disk, fill-valued ones too: see the module docstring.
        ds.to_zarr(tmp, mode="w-", consolidated=False, zarr_format=3, write_empty_chunks=True)
        if path.exists():
            trash = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _damaged(path: Path, name: str, why: str) -> UserError:
    return UserError(f"{path}: variable {name} is damaged ({why}); rebuild it (delete the store "
                     "and rerun the step that wrote it)")


@contextlib.contextmanager
def _quiet_foreign_files():
    """zarr warns about every file of a store's folder that is not part of its hierarchy (a
    workflow manager's marker, a user's notes); such files are harmless to reading it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr "
                                "hierarchy")
        yield


def check_chunks(path: str | os.PathLike) -> None:
    """Refuse a store with a missing chunk file: zarr would read it back as the fill value.

    :func:`write_store` writes every chunk, so a chunk absent from the store's listing was lost.
    """
    import zarr

    path = Path(path)
    try:
        with _quiet_foreign_files():
            arrays = list(zarr.open_group(path, mode="r", zarr_format=3).arrays())
    except Exception as err:  # unreadable metadata of the group or of an array
        raise UserError(f"{path}: not a readable zarr store ({type(err).__name__}: "
                        f"{str(err)[:200]}); rebuild it") from None
    for name, array in arrays:
        stored = array.nchunks_initialized
        if stored < array.nchunks:
            raise _damaged(path, name, f"{array.nchunks - stored} of {array.nchunks} chunk "
                           "files missing")


def _check_decodable(path: Path) -> None:
    """Read every array of the store with zarr; the first that fails to decode is refused."""
    import zarr

    with _quiet_foreign_files():
        arrays = list(zarr.open_group(path, mode="r", zarr_format=3).arrays())
    for name, array in arrays:
        try:
            array[...]
        except Exception as err:  # a truncated or corrupted chunk
            raise _damaged(path, name, f"{type(err).__name__}: {str(err)[:200]}") from None


#: The variables each store of the pipeline's layout must hold (docs/artifacts.md), with dims;
#: all float and finite. The table has its own, deeper check (``ntpgeom.data.table.load``).
CONTRACTS: dict[str, dict[str, tuple[str, ...]]] = {
    "reference": {"L_star": ("token", "context"), "S_bar": ("token", "context"),
                  "W_bar": ("token", "rank"), "H_bar": ("rank", "context")},
    "svm": {"L_mm": ("token", "context"), "W_mm": ("token", "rank"), "H_mm": ("rank", "context"),
            "singular_values": ("rank",)},
    "train": {"loss": ("step",), "ce_minus_entropy": ("step",), "norm_W": ("step",),
              "norm_H": ("step",), "W": ("step", "token", "dim"), "H": ("step", "dim", "context")},
}


def contract_of(path: str | os.PathLike) -> str | None:
    """Which store of the layout ``path`` is, from its place: ``{dataset}/reference.zarr``,
    ``{dataset}/svm/{solver}.zarr``, ``{dataset}/train/{ufm,transformer}/{run}.zarr``; else None
    (a store named freely by hand, or one with a contract of its own)."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-2] == "svm":
        return "svm"
    if len(parts) >= 4 and parts[-3] == "train" and parts[-2] in ("ufm", "transformer"):
        return "train"
    if len(parts) >= 2 and parts[-1] == "reference.zarr" and not (
            len(parts) >= 3 and parts[-3] == "linear"):
        return "reference"
    return None


def solver_name(ds) -> str:
    """The name an ``svm/{solver}.zarr`` dataset's solution goes by: its attr ``solver_name``, the
    solver the config asked for (``auto`` stays ``auto``; attr ``solver`` is what ran). Geometry
    stores' ``target``, figures and the report label each L^mm by it.

    Raises
    ------
    UserError
        For a store written before ntpgeom recorded the name.
    """
    try:
        return str(ds.attrs["solver_name"])
    except KeyError:
        raise UserError("an svm store lacks attr solver_name (written by an older ntpgeom); "
                        "rerun its svm_solve step") from None


def run_identity(ds) -> tuple[str, str, str]:
    """(dataset, model, run) of a training or geometry store, from the attrs each records
    (``{run}`` as :func:`ntpgeom.train.runs.run_name` spells it).

    Raises
    ------
    UserError
        For a store written before ntpgeom recorded them.
    """
    try:
        dataset, model, run = (str(ds.attrs[key]) for key in ("dataset", "model", "run"))
    except KeyError as err:
        raise UserError(f"a training or geometry store lacks attr {err.args[0]} (written by an "
                        "older ntpgeom); rerun its train and geometry steps") from None
    return dataset, model, run


def check_contract(ds, path: str | os.PathLike, kind: str) -> None:
    """Refuse a store of kind ``kind`` (:data:`CONTRACTS`) that lacks a variable, has other dims
    or a non-float or non-finite value."""
    for name, dims in CONTRACTS[kind].items():
        if name not in ds.variables:
            raise _damaged(Path(path), name, "missing")
        var = ds[name]
        if tuple(var.dims) != dims:
            raise _damaged(Path(path), name, f"dims {tuple(var.dims)}, expected {dims}")
        if var.dtype.kind != "f" or not np.isfinite(var.values).all():
            raise _damaged(Path(path), name, "non-float or non-finite values")


def open_store(path: str | os.PathLike, *, load: bool = True):
    """Open a store written by :func:`write_store` as an ``xarray.Dataset`` (loaded into memory).

    The store is checked for missing chunk files, and (with ``load``) every variable is decoded,
    so that a damaged store is refused here, naming the variable, not deep inside a computation;
    a store at a place of the pipeline's layout is checked against its contract
    (:func:`contract_of`).

    Raises
    ------
    UserError
        If ``path`` is not a zarr store, or a chunk of it is missing or cannot be decoded.
    """
    import xarray as xr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise UserError(f"{path} is not a zarr store (no zarr.json); build it first")
    check_chunks(path)
    with _quiet_foreign_files():
        try:
            ds = xr.open_zarr(path, consolidated=False)
        except Exception as err:  # xarray reads index coordinates on opening: find which failed
            _check_decodable(path)
            raise UserError(f"{path}: not a readable store ({type(err).__name__}: "
                            f"{str(err)[:200]}); rebuild it") from None
        if not load:
            return ds
        for name in list(ds.variables):
            try:
                ds[name].load()
            except Exception as err:  # a truncated or corrupted chunk: Zstd, shape, … errors
                raise _damaged(path, str(name), f"{type(err).__name__}: {str(err)[:200]}"
                               ) from None
        kind = contract_of(path)
        if kind is not None:
            check_contract(ds, path, kind)
        return ds


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> dict[int, Any]:
    """Make SIGTERM (what ``timeout``, ``kill`` and ``scancel`` send) raise :class:`Terminated`,
    as SIGINT raises ``KeyboardInterrupt``: every ``finally:`` and context manager then runs, so
    temporary stores and caches are removed and training keeps a checkpoint.

    Returns the previous handlers, for :func:`signal.signal` to restore (nothing off the main
    thread, where Python cannot set handlers).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return previous


def interrupted_status(err: KeyboardInterrupt) -> tuple[str, int]:
    """The signal's name and the shell's exit status for it (128 + number): 130 / 143."""
    signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
    return signal.Signals(signum).name, 128 + int(signum)


def script_main(fn: Callable[[], Any]) -> None:
    """Run a Snakemake script's body; a :class:`UserError` becomes one log line and exit status 1.

    The script's stderr already goes to the rule's log (Snakemake's ``log:``); tracebacks are kept
    for real bugs only. SIGINT and SIGTERM end it cleanly with one line and status 130 / 143.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    install_signal_handlers()
    start = time.perf_counter()
    try:
        fn()
    except UserError as err:
        print(f"ntpgeom: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as err:
        name, status = interrupted_status(err)
        print(f"ntpgeom: interrupted by {name}; temporary files removed, rerun to continue",
              file=sys.stderr)
        sys.exit(status)
    log.info("done in %.1f s", time.perf_counter() - start)
