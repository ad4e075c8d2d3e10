"""The grid through a real SLURM cluster (snakemake-executor-plugin-slurm), against a local run.

Needs a running cluster (`.ci/slurm` starts one with ../shared/slurm/setup_local_slurm.sh);
skipped when `sinfo` shows no usable node.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
from gridrun import project_copy, snakemake

log = logging.getLogger(__name__)

TARGET = "results/grid/tiny.zarr"
CONFIG = "tests/configs/grid_tiny.yaml"


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=20)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc"))
                                       for s in out.stdout.split())


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster (run .ci/slurm)"),
]


def test_grid_through_slurm_equals_local(tmp_path):
    import xarray as xr

    from ntpgeom.store import open_store

    local = project_copy(tmp_path / "local")
    proc, t_local = snakemake(local, "--cores", "2", TARGET, "--configfile", CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]

    cluster = project_copy(tmp_path / "slurm")
    proc, t_slurm = snakemake(cluster, "--workflow-profile", "profiles/slurm", "--jobs", "4",
                              TARGET, "--configfile", CONFIG, timeout=480)
    assert proc.returncode == 0, proc.stderr[-5000:]
    log.info("local %.0f s, SLURM %.0f s", t_local, t_slurm)
    print(f"grid tiny: local {t_local:.0f} s, through SLURM {t_slurm:.0f} s")

    # Every job really went through sbatch: the plugin keeps one log per SLURM job.
    slurm_logs = list((cluster / ".snakemake" / "slurm_logs").rglob("*.log"))
    rules = {p.relative_to(cluster / ".snakemake" / "slurm_logs").parts[0] for p in slurm_logs}
    assert {"rule_build_table", "rule_grid_aggregate"} <= rules, rules
    assert any(r.startswith("group_") for r in rules), f"points were not grouped: {rules}"

    a, b = open_store(local / TARGET), open_store(cluster / TARGET)
    assert dict(a.sizes) == dict(b.sizes) == {"d": 2, "seed": 2, "step": b.sizes["step"],
                                              "target": 2, "token": 5, "context": 10}
    xr.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    assert a.attrs["grid_definition"] == b.attrs["grid_definition"]
