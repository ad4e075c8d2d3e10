"""The workflow run on a copy of the project, for the end-to-end grid tests (local and SLURM)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ["Snakefile", "config.yaml", "config", "data", "rules", "scripts", "schemas", "envs",
        "profiles", "src", "tests/configs"]


def project_copy(dest: Path) -> Path:
    """The workflow's files under ``dest`` (results, logs and .snakemake stay apart per run)."""
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> tuple[subprocess.CompletedProcess,
                                                                    float]:
    """Run snakemake in ``workdir`` under ``timeout -s INT -k 30``; return the process and seconds.

    SIGINT, not SIGTERM: snakemake answers SIGTERM by waiting for its running jobs (forever, if
    the cluster never reports them), while SIGINT makes it cancel them (`scancel`) and exit.
    """
    cmd = ["timeout", "-s", "INT", "-k", "30", str(timeout), SNAKEMAKE, *args]
    env = {**os.environ, "PATH": f"{Path(SNAKEMAKE).parent}:{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    return proc, time.perf_counter() - start
