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


#: Test files that share one built fixture workflow (fixture_stores.workflow_results, cached per
#: process): under pytest-xdist they go to one worker, so it is built once.
SHARED_WORKFLOW = {"test_figures", "test_report"}


#: The files that take longest (tens of seconds to minutes, mostly real Snakemake runs), longest
#: first: they are handed out first, so that no worker is left with one of them at the end.
LONGEST = ("test_figures", "test_report", "test_safety", "test_config", "test_grid",
           "test_workflow", "test_config_sections", "test_semantics")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group per test file (its module-scoped fixtures are then built once), the files
    of :data:`SHARED_WORKFLOW` in one, the :data:`LONGEST` first; ``make test`` distributes the
    groups with ``--dist loadgroup``. The order within a file is kept."""
    def module(item: pytest.Item) -> str:
        return item.module.__name__ if item.module else item.nodeid

    items.sort(key=lambda item: LONGEST.index(module(item)) if module(item) in LONGEST
               else len(LONGEST))
    for item in items:
        name = module(item)
        item.add_marker(pytest.mark.xdist_group("workflow" if name in SHARED_WORKFLOW else name))


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
