"""Benchmark: admm vs cvxpy + SCS on the NTP-SVM, side by side (issue 4; ``make bench``).

For each problem, each solver runs in a fresh subprocess (so that peak RSS is its own) and reports
the time to its result, the certified relative gap reached, the peak resident memory and the
nuclear norm; where both ran, their agreement in direction; on k-subset tables, the distance to the
closed form S̄. SCS is skipped where it cannot run (memory estimate above what is available, or a
PSD order at which it took > 10 min in ``baselines.md``), and capped at ``--scs-time-limit``.

Goals on the 2-core CPU: r104x400 under 1 s, r500x3000 under 60 s (admm, to certified gap 1e-8);
measured 0.46 s and 38.8 s (README, "NTP-SVM solvers").

    python benchmarks/svm.py                       # all problems, table to stdout
    python benchmarks/svm.py --problems r104x400   # one
    python benchmarks/svm.py --device cuda         # admm on the GPU
    python benchmarks/svm.py --repeat 3            # admm 3 times per problem, median reported

Each admm solve is capped at ``--admm-time-limit`` (default 300 s) so that ``make bench`` ends; a
capped solve reports status ``time_limit`` and the certified gap it had reached. The load average
is printed with the table: the machine is shared, so compare times measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROBLEMS = ["r104x400", "r200x1000", "r500x3000", "r104x100000", "k200_2"]
OUT = Path(__file__).resolve().parent / "out"
#: SCS took > 10 min (and 8.9 GB) at PSD order 3500 (baselines.md); beyond this it is not tried.
SCS_MAX_PSD_ORDER = 2000


def make_table(name: str):
    from ntpgeom.data.synthetic import ksubset_table, random_table

    if name.startswith("k"):
        V, k = map(int, name[1:].split("_"))  # noqa: N806
        return ksubset_table(V, k)
    V, m = map(int, name[1:].split("x"))  # noqa: N806
    return random_table(V, m, seed=0)


def run_one(problem: str, solver: str, device: str, time_limit: float) -> dict:
    """Solve in this process; report what the table needs (the L is saved for the comparison)."""
    import numpy as np

    from ntpgeom.theory.reference import centered_support, reldir
    from ntpgeom.theory.svm import solve

    table = make_table(problem)
    start = time.perf_counter()
    ds = solve(table, solver=solver, device=device, time_limit=time_limit)
    wall = time.perf_counter() - start
    L = ds["L_mm"].values
    OUT.mkdir(exist_ok=True)
    np.save(OUT / f"{problem}.{solver}.npy", L)
    out = {k: ds.attrs.get(k) for k in ("solver", "status", "nuclear_norm", "gap", "rank",
                                        "solve_seconds", "iterations", "device",
                                        "compile_seconds")}
    out["wall_seconds"] = wall
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if problem.startswith("k"):
        out["closed_form_rel"] = float(np.linalg.norm(L - centered_support(table.S()))
                                       / np.linalg.norm(centered_support(table.S())))
        out["closed_form_reldir"] = reldir(L, centered_support(table.S()))
    return out


def scs_skip_reason(problem: str) -> str | None:
    from ntpgeom.theory.svm.cvx import available_memory_mb, estimate_memory_mb

    table = make_table(problem)
    need, have = estimate_memory_mb(table.V, table.m, "scs"), available_memory_mb()
    if need > have:
        return f"needs ~{need / 1024:.0f} GB (have {have / 1024:.0f} GB)"
    if table.V + table.m > SCS_MAX_PSD_ORDER:
        return f"PSD order {table.V + table.m}: > 10 min and ~{need / 1024:.0f} GB"
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="*", default=PROBLEMS)
    p.add_argument("--solvers", nargs="*", default=["admm", "scs"])
    p.add_argument("--device", default="cpu", help="admm device (auto, cpu, cuda)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per solve (on a shared 2-core machine two threads "
                   "oversubscribe and ran 20x slower)")
    p.add_argument("--admm-time-limit", type=float, default=300.0)
    p.add_argument("--repeat", type=int, default=1,
                   help="admm solves per problem (fresh process each); the median time is shown")
    p.add_argument("--scs-time-limit", type=float, default=300.0)
    p.add_argument("--one", nargs=2, metavar=("PROBLEM", "SOLVER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        limit = args.admm_time_limit if args.one[1] == "admm" else args.scs_time_limit
        print(json.dumps(run_one(*args.one, device=args.device, time_limit=limit)))
        return

    import numpy as np

    from ntpgeom.theory.reference import reldir

    rows = []
    for problem in args.problems:
        results = {}
        for solver in args.solvers:
            why = scs_skip_reason(problem) if solver == "scs" else None
            if why:
                results[solver] = {"skipped": why}
                print(f"{problem} {solver}: skipped ({why})", flush=True)
                continue
            runs = []
            for _ in range(args.repeat if solver == "admm" else 1):
                proc = subprocess.run([sys.executable, __file__, "--one", problem, solver,
                                       "--device", args.device, "--threads", str(args.threads),
                                       "--admm-time-limit", str(args.admm_time_limit),
                                       "--scs-time-limit", str(args.scs_time_limit)],
                                      capture_output=True, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
                if proc.returncode:
                    runs = [{"skipped": proc.stderr.strip().splitlines()[-1]}]
                    break
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            results[solver] = runs[-1]
            if "skipped" not in runs[-1]:
                results[solver]["all_solve_seconds"] = [r["solve_seconds"] for r in runs]
                results[solver]["median_solve_seconds"] = statistics.median(
                    r["solve_seconds"] for r in runs)
            print(f"{problem} {solver}: {results[solver]}", flush=True)
        if all("skipped" not in results.get(s, {"skipped": 1}) for s in ("admm", "scs")):
            La, Ls = (np.load(OUT / f"{problem}.{s}.npy") for s in ("admm", "scs"))
            results["agreement_reldir"] = reldir(La, Ls)
        rows.append((problem, results))
    OUT.mkdir(exist_ok=True)
    (OUT / "svm.json").write_text(json.dumps(dict(rows), indent=1))
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; "
          f"{args.threads} thread(s); solve seconds (median of {args.repeat} for admm)")
    print("\n| problem | solver | status | solve s | certified gap | peak RSS | ‖L‖_* | check |")
    print("|---|---|---|---|---|---|---|---|")
    for problem, results in rows:
        for solver in args.solvers:
            r = results[solver]
            if "skipped" in r:
                print(f"| {problem} | {solver} | skipped: {r['skipped']} | | | | | |")
                continue
            check = ""
            if "closed_form_rel" in r:
                check = f"{r['closed_form_rel']:.1e} rel. to S̄"
            elif "agreement_reldir" in results:
                check = f"{results['agreement_reldir']:.1e} reldir admm–scs"
            status = r["status"] + (f", {r['iterations']} it" if r.get("iterations") else "")
            print(f"| {problem} | {solver} | {status} | {r['median_solve_seconds']:.2f} | "
                  f"{r['gap']:.1e} | {r['peak_rss_mb'] / 1024:.2f} GB | {r['nuclear_norm']:.6f} "
                  f"| {check} |")


if __name__ == "__main__":
    main()
