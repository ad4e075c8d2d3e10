"""Benchmark: a 1,000-point grid must dry-run (`snakemake -n`) in under 10 s.

Writes a 10 × 10 × 10 grid config (d × seed × lr) to a copy of the project and times
`snakemake -n` on its aggregate: parsing, validating, expanding 1,000 point patterns, resolving each
point's parameters and building a 1,003-job DAG. Exits 1 when the goal is missed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from gridrun import project_copy, snakemake  # noqa: E402

GOAL_S = 10.0


def main() -> int:
    grid = {
        "datasets": {"k5": {"source": "synthetic", "synthetic": {"kind": "ksubset", "V": 5,
                                                                  "k": 2}}},
        "grids": {"big": {"axes": {"d": list(range(1, 11)), "seed": list(range(10)),
                                   "lr": [round(0.05 * k, 2) for k in range(1, 11)]},
                          "fixed": {"dataset": "k5"}}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = project_copy(Path(tmp))
        (work / "big.yaml").write_text(yaml.safe_dump(grid))
        args = ("-n", "--cores", "1", "--quiet", "rules", "results/grid/figures/big.png",
                "--configfile", "big.yaml")
        snakemake(work, *args)  # warm the file cache and Python's bytecode
        proc, seconds = snakemake(work, *args)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return 1
    jobs = [ln for ln in proc.stdout.splitlines() if ln.startswith("grid_point")]
    print(f"grid dry-run: 1,000 points ({jobs[0].split()[-1] if jobs else '?'} grid_point jobs) "
          f"in {seconds:.1f} s (goal < {GOAL_S:.0f} s)")
    return 0 if seconds < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
