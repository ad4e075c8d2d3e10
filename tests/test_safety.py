"""Nothing lost, nothing stale, nothing silently wrong (issue 12): each reproduction of the issue.

Real files, real signals and real Snakemake runs on tiny configs. Processes that get a signal run
``ntpgeom`` in a subprocess of their own, with ``TMPDIR`` inside the test's folder so that the
table builder's token-id cache can be checked for (and nothing is left in the system's /tmp).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BIN, ROOT, run

from ntpgeom.cli import main
from ntpgeom.data.synthetic import grammar_corpus, random_table
from ntpgeom.data.table import load
from ntpgeom.errors import UserError
from ntpgeom.store import open_store, write_store

SRC = ROOT / "src"


def env(tmp_path: Path) -> dict[str, str]:
    """This checkout's package first, the venv's tools on PATH, temporary files in the test."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TMPDIR": str(tmp)}


def ntpgeom(*args, cwd: Path, tmp_path: Path, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "ntpgeom.cli", *map(str, args)], cwd=cwd,
                          env=env(tmp_path), capture_output=True, text=True, timeout=timeout)


def start(*args, cwd: Path, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ntpgeom.cli", *map(str, args)], cwd=cwd,
                            env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll until ``predicate()`` holds (the process must still be running meanwhile)."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended first: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def error_lines(stderr: str) -> list[str]:
    """stderr without log records (``INFO …``/``WARNING …``): what the user is told."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("INFO ", "WARNING ", "DEBUG "))]


def corpus(path: Path, mb: float) -> Path:
    """A real text file of about ``mb`` MB: the synthetic grammar's sentences (16 five-word
    contexts), one document each, repeated; builds from it take seconds per 10 MB."""
    docs = "<|endoftext|>".join(grammar_corpus(n_sentences=2000, seed=3)) + "<|endoftext|>"
    size = int(mb * 1e6)
    path.write_text((docs * (size // len(docs) + 1))[:size])
    return path


@pytest.fixture
def table(tmp_path) -> Path:
    """A small valid table store (a real one: random supports and counts)."""
    return random_table(12, 30, seed=1, n=3000).save(tmp_path / "good.zarr")


def leftovers(folder: Path) -> list[str]:
    """Temporary stores, caches and checkpoints' temporaries anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if ".tmp-" in p.name or ".old-" in p.name or p.name.startswith("ntpgeom-ids-"))


# --- 1. --out never destroys what ntpgeom did not write ----------------------------------------

def test_out_refuses_a_corpus_folder_a_user_folder_and_the_input(tmp_path, table, capsys,
                                                                  caplog):
    folder = tmp_path / "mycorpus"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat on the mat . " * 50)
    assert main(["table", str(folder), "--out", str(folder), "-k", "2", "--no-progress"]) == 2
    assert (folder / "a.txt").read_text().startswith("the cat")
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("notes")
    assert main(["solve", str(table), "--out", str(user)]) == 2
    assert main(["train", str(table), "--out", str(user), "--epochs", "2"]) == 2
    assert (user / "notes.txt").read_text() == "notes"
    assert main(["solve", str(table), "--out", str(table)]) == 2
    assert load(table).m == 30  # still the table
    (tmp_path / "afile").write_text("x")
    assert main(["table", str(folder), "--out", str(tmp_path / "afile" / "t.zarr"), "-k", "2",
                 "--no-progress"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 5, lines
    assert "is an input of this command" in lines[0] and "is an input" in lines[3]
    assert "folder ntpgeom did not write" in lines[1] and "did not write" in lines[2]
    assert "afile is a file, not a folder" in lines[4]
    # Refused before any work: the builder never started, the solver never ran.
    assert not any("pass 1" in r.getMessage() or "admm" in r.getMessage()
                   for r in caplog.records)
    assert leftovers(tmp_path) == []


def test_out_replaces_a_store_ntpgeom_wrote(tmp_path, table, capsys):
    out = tmp_path / "run.zarr"
    for epochs in ("3", "4"):
        assert main(["train", str(table), "--out", str(out), "--model", "ufm", "--d", "4",
                     "--epochs", epochs, "--no-progress"]) == 0
    assert int(open_store(out)["step"].values[-1]) == 4
    assert main(["solve", str(table), "--out", str(out)]) == 0  # any ntpgeom store
    assert "L_mm" in open_store(out)
    plain = tmp_path / "plain.zarr"  # a zarr store, but not one ntpgeom wrote
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(plain, zarr_format=3, consolidated=False)
    with pytest.raises(UserError, match="ntpgeom did not write"):
        write_store(open_store(table), plain)
    assert list(open_store(plain)["a"].values) == [0, 1, 2]


def test_a_killed_write_leaves_debris_that_the_next_write_removes(tmp_path, table):
    """SIGKILL during a real store write leaves .X.zarr.tmp-*; the next write sweeps it, but not
    the temporary of a writer that is still running."""
    out = tmp_path / "big.zarr"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import numpy as np, xarray as xr\n"
        "from ntpgeom.store import write_store\n"
        "ds = xr.Dataset({'x': (('a', 'b'), np.random.default_rng(0).random((4000, 4000)))})\n"
        f"write_store(ds, {str(out)!r})\n")], env=env(tmp_path))
    wait_for(lambda: any(tmp_path.glob(".big.zarr.tmp-*")), writer)
    writer.kill()
    writer.wait()
    stale = list(tmp_path.glob(".big.zarr.tmp-*"))
    assert stale and not out.exists()
    old_style = tmp_path / ".big.zarr.tmp-0a1b2c3d"  # as named before this issue (no pid)
    old_style.mkdir()
    live = subprocess.Popen(["sleep", "60"])
    try:
        alive = tmp_path / f".big.zarr.tmp-{live.pid}-0a1b2c3d"
        alive.mkdir()
        write_store(open_store(table), out)
        assert load(out).m == 30
        assert not old_style.exists() and not any(p.exists() for p in stale)
        assert alive.exists()  # its writer still runs
    finally:
        live.kill()
        live.wait()


# --- 3 and 4. damaged and inconsistent stores --------------------------------------------------

@pytest.mark.parametrize("variable", ["indices", "token", "pi", "count", "context_ids",
                                      "pair_count", "indptr", "context"])
def test_a_missing_chunk_is_refused_naming_the_variable(table, variable):
    chunks = [p for p in (table / variable / "c").rglob("*") if p.is_file()]
    assert chunks
    chunks[0].unlink()
    with pytest.raises(UserError, match=rf"good.zarr: variable {variable} is damaged \(1 of 1 "
                       r"chunk files missing\); rebuild it"):
        load(table)


def test_files_foreign_to_zarr_in_a_store_are_read_past_silently(table):
    """Snakemake touches ``.snakemake_timestamp`` inside every directory() output; a user may
    leave notes there. Neither is part of the store: reading it neither warns nor fails."""
    import warnings

    (table / ".snakemake_timestamp").touch()
    (table / "notes.txt").write_text("built on the cluster\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(table).m > 0
        open_store(table)


@pytest.mark.parametrize("variable", ["pair_count", "token"])
def test_a_truncated_chunk_is_refused_naming_the_variable(table, variable):
    chunk = next(p for p in (table / variable / "c").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:chunk.stat().st_size // 2])
    with pytest.raises(UserError, match=rf"variable {variable} is damaged .*Zstd.*rebuild it"):
        load(table)


def test_train_and_solve_on_damaged_tables_give_one_line(tmp_path, table, capsys):
    (table / "pair_count" / "c" / "0").unlink()
    cut = random_table(12, 30, seed=1, n=3000).save(tmp_path / "cut.zarr")
    chunk = cut / "prob" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:chunk.stat().st_size // 2])
    for store, what in ((table, "pair_count is damaged (1 of 1 chunk files missing)"),
                        (cut, "prob is damaged (RuntimeError: Zstd decompression error")):
        for command in ("train", "solve"):
            assert main([command, str(store), "--out", str(tmp_path / "o.zarr")]) == 2
            lines = error_lines(capsys.readouterr().err)
            assert len(lines) == 1 and what in lines[0] and "rebuild it" in lines[0], lines
    assert not (tmp_path / "o.zarr").exists()


def _tamper(ds, kind: str):
    if kind == "missing":
        return ds.drop_vars("context_ids")
    if kind == "dtype":
        return ds.assign(indices=ds["indices"].astype(float))
    if kind == "indptr":
        ds["indptr"].values[3], ds["indptr"].values[4] = ds["indptr"].values[4], \
            ds["indptr"].values[3]
    elif kind == "range":
        ds["indices"].values[-1] = ds.sizes["token"]
    elif kind == "unsorted":
        start = int(np.flatnonzero(np.diff(ds["indptr"].values) >= 2)[0])
        i = int(ds["indptr"].values[start])
        ds["indices"].values[[i, i + 1]] = ds["indices"].values[[i + 1, i]]
    elif kind == "sum":
        ds["prob"].values[0] *= 1.01
    elif kind == "nan":
        ds["pi"].values[2] = np.nan
    elif kind == "count":
        ds["count"].values[0] += 1
    elif kind == "labels":
        ds = ds.assign_coords(token=np.array(["a"] * ds.sizes["token"], dtype=object))
    elif kind == "empty":
        tokens = ds["token"].values.copy()
        tokens[0] = ""
        ds = ds.assign_coords(token=tokens)
    return ds


@pytest.mark.parametrize("kind, message", [
    ("missing", "variable context_ids is missing"),
    ("dtype", "variable indices has dtype float64, expected integer"),
    ("indptr", "variable indptr is not increasing from 0 to nnz"),
    ("range", r"variable indices has entries outside \[0, V = 12\)"),
    ("unsorted", "variable indices is not strictly increasing within each context"),
    ("sum", "variable prob does not match the counts"),
    ("nan", "variable pi has non-finite or non-positive entries"),
    ("count", "variable count is not the sum of each context's pair_count"),
    ("labels", "variable token has repeated labels"),
    ("empty", "variable token has empty labels"),
])
def test_an_inconsistent_table_is_refused(tmp_path, table, kind, message):
    bad = write_store(_tamper(open_store(table), kind), tmp_path / "bad.zarr")
    with pytest.raises(UserError, match=rf"bad.zarr: {message}.*rebuild it"):
        load(bad)


def test_the_pair_count_chunks_deleted_is_the_issue_s_case(table):
    """The issue's reproduction with `indices` deleted: the solver used to run on zeros."""
    (table / "indices" / "c" / "0").unlink()
    with pytest.raises(UserError, match="variable indices is damaged"):
        load(table)


# --- 5. SIGINT and SIGTERM end a run cleanly ---------------------------------------------------

def test_sigterm_during_a_table_build_removes_the_cache(tmp_path):
    text = corpus(tmp_path / "big.txt", 10)
    proc = start("table", text, "-k", "5", "--top-m", "10", "--no-progress", "--out",
                 tmp_path / "t.zarr", cwd=tmp_path, tmp_path=tmp_path)
    wait_for(lambda: any((tmp_path / "tmp").glob("ntpgeom-ids-*")), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert error_lines(err) == ["ntpgeom table: interrupted by SIGTERM; temporary files removed, "
                                "nothing written: rerun to start over"]
    assert not (tmp_path / "t.zarr").exists()
    assert leftovers(tmp_path) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_a_killed_build_s_cache_is_swept_by_the_next(tmp_path):
    text = corpus(tmp_path / "big.txt", 10)
    proc = start("table", text, "-k", "5", "--top-m", "10", "--no-progress", "--out",
                 tmp_path / "t.zarr", cwd=tmp_path, tmp_path=tmp_path)
    wait_for(lambda: any((tmp_path / "tmp").glob("ntpgeom-ids-*")), proc)
    proc.kill()
    proc.communicate()
    assert list((tmp_path / "tmp").glob("ntpgeom-ids-*"))  # SIGKILL cannot clean up
    small = corpus(tmp_path / "small.txt", 0.05)
    res = ntpgeom("table", small, "-k", "2", "--no-progress", "--out", tmp_path / "s.zarr",
                  cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_training_keeps_a_checkpoint_that_resumes_exactly(tmp_path, table, sig,
                                                                          status):
    args = ["train", table, "--model", "ufm", "--d", "6", "--epochs", "1000", "--lr", "1e-2",
            "--milestones", "--threads", "1", "--no-progress"]
    out = tmp_path / "run.zarr"
    ckpt = tmp_path / "run.ckpt.pt"
    proc = start(*args, "--save-every-s", "0.05", "--out", out, cwd=tmp_path, tmp_path=tmp_path)
    wait_for(ckpt.exists, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    name = signal.Signals(sig).name
    assert error_lines(err) == [f"ntpgeom train: interrupted by {name}; temporary files removed, "
                                f"checkpoint kept in {ckpt}: rerun to resume"]
    assert ckpt.exists() and not out.exists() and leftovers(tmp_path) == []
    import torch

    stopped = torch.load(ckpt, weights_only=True)["trainer"]["step"]
    assert 0 < stopped < 1000
    res = ntpgeom(*args, "--out", out, cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"resuming {ckpt} from step {stopped}" in res.stderr
    ref = ntpgeom(*args, "--out", tmp_path / "ref.zarr", cwd=tmp_path, tmp_path=tmp_path)
    assert ref.returncode == 0, ref.stderr
    a, b = open_store(out), open_store(tmp_path / "ref.zarr")
    # Bit for bit on CPU: the checkpoint was taken at a step boundary, not mid-update.
    assert np.array_equal(a["W"].values, b["W"].values)
    assert np.array_equal(a["trace_loss"].values, b["trace_loss"].values)
    assert not ckpt.exists()


# --- 6. diverged training ---------------------------------------------------------------------

def test_diverged_training_stops_naming_the_step(tmp_path, table, capsys):
    out = tmp_path / "bad.zarr"
    assert main(["train", str(table), "--model", "ufm", "--d", "8", "--epochs", "50", "--lr",
                 "1e30", "--optimizer", "gd", "--out", str(out), "--no-progress"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "training diverged" in lines[0] and "at step 1 " in lines[0]
    assert "smaller learning rate" in lines[0]
    assert not out.exists() and not (tmp_path / "bad.ckpt.pt").exists()


# --- 2, 7, 8. the workflow ---------------------------------------------------------------------

def snakemake(workdir: Path, cfg: Path, *args, tmp_path: Path, timeout: int = 300):
    return run("snakemake", "--snakefile", ROOT / "Snakefile", "--directory", workdir,
               "--configfile", cfg, "--cores", "1", *args, timeout=timeout,
               env={"PYTHONPATH": env(tmp_path)["PYTHONPATH"], "TMPDIR": str(tmp_path / "tmp")})


def jobs(dry_run_stdout: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in dry_run_stdout.splitlines()
            if line.startswith(("rule ", "localrule "))}


@pytest.mark.slow
def test_editing_the_corpus_reruns_the_table_and_what_follows(tmp_path):
    work = tmp_path / "w"
    (work / "corpus").mkdir(parents=True)
    corpus(work / "corpus" / "a.txt", 0.1)
    cfg = work / "config.yaml"
    # Absolute paths: a relative one is relative to the workflow folder, not to --directory.
    cfg.write_text(yaml.safe_dump({
        "datasets": {"ts": {"source": "text", "text": {"path": str(work / "corpus")}}},
        "table": {"context_length": 2, "top_m": 10, "min_support": 2}}))
    target = "results/ts/reference.zarr"
    res = snakemake(work, cfg, target, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    res = snakemake(work, cfg, target, "-n", tmp_path=tmp_path)
    assert "Nothing to be done" in res.stdout + res.stderr
    with open(work / "corpus" / "a.txt", "a") as f:
        f.write(" the dog ran to the park . " * 100)
    res = snakemake(work, cfg, target, "-n", tmp_path=tmp_path)
    assert jobs(res.stdout) == {"build_table", "reference"}, res.stdout
    assert "corpus/a.txt" in res.stdout
    (work / "corpus" / "b.txt").write_text("a new file of the corpus . " * 10)
    res = snakemake(work, cfg, target, "-n", tmp_path=tmp_path)
    assert jobs(res.stdout) == {"build_table", "reference"}, res.stdout
    assert "corpus/b.txt" in res.stdout
    # A tokenizer's file is an input too.
    (work / "tok.json").write_text("{}")
    cfg.write_text(yaml.safe_dump({
        "datasets": {"ts": {"source": "text", "text": {"path": str(work / "corpus")}}},
        "table": {"context_length": 2, "tokenizer": {"kind": "huggingface",
                                                      "path": str(work / "tok.json")}}}))
    res = snakemake(work, cfg, target, "-n", tmp_path=tmp_path)
    build = res.stdout[res.stdout.index("rule build_table"):]
    assert "tok.json" in build.split("output:")[0], res.stdout


@pytest.mark.slow
def test_kill_9_of_snakemake_then_make_resume(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    corpus(work / "big.txt", 10)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "datasets": {"ts": {"source": "text", "text": {"path": str(work / "big.txt")}}},
        "table": {"context_length": 5, "top_m": 10}}))
    sm_args = ["--directory", str(work), "--configfile", str(cfg), "--workflow-profile",
               str(ROOT / "profiles" / "default"), "results/ts/table.zarr"]
    e = env(tmp_path)
    proc = subprocess.Popen([str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
                             "--cores", "1", *sm_args], env=e, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any((tmp_path / "tmp").glob("ntpgeom-ids-*")), proc)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, as a lost terminal or node
    proc.wait()
    again = snakemake(work, cfg, "results/ts/table.zarr", tmp_path=tmp_path)
    assert again.returncode != 0 and "LockException" in again.stderr  # the issue's reproduction
    # `make resume`: the venv is already set up by `make test`; never reinstall it from a test.
    res = subprocess.run(["make", "-C", str(ROOT), "-o", ".venv/.installed", "resume",
                          "CORES=1", f"SNAKEMAKE_ARGS={' '.join(sm_args)}"], env=e,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert load(work / "results/ts/table.zarr").m == 10
    # Nothing left behind: no temporary store, no id cache, nothing outside results/ logs/.
    # (The killed snakemake's own temporary folder, $TMPDIR/snakemake*, is Snakemake's debris:
    # a run that is not killed leaves none.)
    assert leftovers(work) == []
    assert [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("snakemake")
            ] == []
    assert sorted(p.name for p in work.iterdir()) == [".snakemake", "big.txt", "config.yaml",
                                                      "logs", "results"]


@pytest.mark.parametrize("name", ["grid", "figures", "report"])
def test_reserved_dataset_names_are_refused(tmp_path, name):
    work = tmp_path / "w"
    work.mkdir()
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "datasets": {name: {"source": "synthetic", "synthetic": {"kind": "ksubset", "V": 5}}},
        # The issue's case: a dataset `grid` beside a grid named `loss`.
        **({"grids": {"loss": {"axes": {"seed": [0, 1]}, "fixed": {"dataset": name}}}}
           if name == "grid" else {})}))
    res = snakemake(work, cfg, "-n", tmp_path=tmp_path)
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()
             and not line.startswith("Using workflow specific profile")]
    assert lines == [f"config: datasets.{name}: the name is reserved (results/{name}/ holds "
                     "other results; reserved: figures, grid, report); rename the dataset"]


@pytest.mark.parametrize("kind, variable", [("svm", "L_mm"), ("train", "W"),
                                            ("reference", "S_bar")])
def test_stores_of_the_layout_are_checked_against_their_contract(tmp_path, table, kind,
                                                                 variable):
    """A solution, run or reference at its place in results/ lacking a variable, or holding NaN
    (as a diverged or broken writer would), is refused naming the variable."""
    from ntpgeom.theory.reference import reference_dataset
    from ntpgeom.theory.svm import solve

    t = load(table)
    if kind == "svm":
        ds, path = solve(t, solver="admm"), tmp_path / "ds" / "svm" / "admm.zarr"
    elif kind == "train":
        main(["train", str(table), "--model", "ufm", "--d", "4", "--epochs", "3", "--out",
              str(tmp_path / "run.zarr"), "--no-progress"])
        ds, path = open_store(tmp_path / "run.zarr"), tmp_path / "ds" / "train" / "ufm" / "r.zarr"
    else:
        ds, path = reference_dataset(t), tmp_path / "ds" / "reference.zarr"
    assert set(open_store(write_store(ds, path))) >= {variable}  # intact: accepted
    broken = ds.copy(deep=True)
    broken[variable].values.flat[0] = np.nan
    write_store(broken, path)
    with pytest.raises(UserError, match=rf"variable {variable} is damaged \(non-float or "
                       r"non-finite values\); rebuild it"):
        open_store(path)
    write_store(ds.drop_vars(variable), path)
    with pytest.raises(UserError, match=rf"variable {variable} is damaged \(missing\)"):
        open_store(path)
