"""Shared fixtures: paths, the real TinyStories sample, and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "tinystories_sample.txt"  # shipped with the project (data/README.md)
BIN = Path(sys.executable).parent


#: The files that take longest (tens of seconds to minutes, mostly real Snakemake runs), longest
#: first: pytest-xdist (``make test``: ``--dist loadfile``, one file per worker) hands them out
#: first, so that no worker is left with one of them at the end. test_report is not among them:
#: it reuses test_figures' fixture workflow (``fixture_stores.workflow_results``), ready by the
#: time it runs.
LONGEST = ("test_figures", "test_safety", "test_config", "test_grid", "test_workflow",
           "test_config_sections", "test_semantics")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST` first (in that order), the others as collected; the order
    within a file is kept."""
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__ if item.module else ""
        return LONGEST.index(name) if name in LONGEST else len(LONGEST)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def sample() -> Path:
    """The 2 MB TinyStories sample that ships in data/ (a missing file is a broken checkout)."""
    assert SAMPLE.is_file(), f"{SAMPLE} is missing: it is part of the repository (data/README.md)"
    return SAMPLE


def run(*args: str | os.PathLike, cwd: Path | None = None, timeout: int = 300,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with this venv's tools first on PATH; capture its text output."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {})}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
