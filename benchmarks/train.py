"""Training throughput: ms per full-batch step, UFM and transformer, distinct-context vs per-sample
loss, eager vs CUDA-graph replay (where CUDA exists). Run by `make bench`, never by the tests.

The table has the size of the paper's TinyStories table (V = 104, m = 400, context length 5,
n ≈ 3500 samples; ``baselines.md``'s r104x400), the models the paper's (d = 128, 4 layers, 6
heads), the optimizer the paper's AdamW. Goals (issue 5): on a 2-core CPU the distinct-context
transformer step ≥ 7x faster than the per-sample one; on an H100 the paper's 30k-epoch
transformer run in ≤ 60 s wall (``--full-run``).

Usage: python benchmarks/train.py [--quick] [--full-run] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ntpgeom.data.synthetic import random_table
from ntpgeom.train.config import TrainConfig
from ntpgeom.train.engine import fit, make_trainer


def paper_table(m: int = 400):
    """The benchmark table: the size of the paper's TinyStories table (baselines.md's r104x400)."""
    return random_table(V=104, m=m, max_support=6, seed=0, context_length=5)


def full_run(model: str = "transformer", table=None) -> tuple[float, float]:
    """The paper's 30k-epoch run of ``model`` on CUDA, end to end: (wall seconds, final CE − H).

    Wall time includes building the trainer and capturing the CUDA graph (the issue's goal).
    """
    table = paper_table() if table is None else table
    config = TrainConfig(model=model, d=128, device="cuda", save_every_s=1e9)
    start = time.perf_counter()
    traj = fit(table, config, progress=False)
    torch.cuda.synchronize()
    return time.perf_counter() - start, float(traj.metrics[-1][0] - table.entropy)


def time_steps(table, configs: dict[str, TrainConfig], device: torch.device, budget_s: float,
               min_steps: int) -> dict[str, tuple[float, int]]:
    """Median ms/step of each config, after warm-up (graph capture included in the warm-up).

    The configs' steps are interleaved (one step of each in turn), so that load from other
    processes on a shared machine hits all of them alike and their ratios stay meaningful.
    """
    trainers = {name: make_trainer(table, [config], device)
                for name, config in configs.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for trainer in trainers.values():
        for _ in range(5 if device.type == "cuda" else 1):
            trainer.advance()  # allocation, optimizer state, graph capture on CUDA
    sync()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    start = time.perf_counter()
    while (min(map(len, times.values())) < min_steps
           or (time.perf_counter() - start < budget_s and min(map(len, times.values())) < 500)):
        for name, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.advance()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: (1e3 * statistics.median(t), len(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="m = 100 table, fewer steps")
    parser.add_argument("--full-run", action="store_true",
                        help="on CUDA: time the paper's 30k-epoch transformer run end to end")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: two were slower on the 2-core baseline machine)")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even if a goal is missed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    m = 100 if args.quick else 400
    table = paper_table(m)
    print(f"table: V={table.V} m={table.m} n={table.n} (n/m = {table.n / table.m:.1f}); "
          f"torch {torch.__version__}, {args.threads} CPU thread(s)")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows, results = [], {}
    for device in devices:
        modes = ["eager"] + (["graph"] if device.type == "cuda" else [])
        for model in ("ufm", "transformer"):
            configs = {(loss, mode): TrainConfig(model=model, d=128, loss=loss,
                                                 device=device.type,
                                                 graph="on" if mode == "graph" else "off",
                                                 threads=args.threads)
                       for loss in ("distinct", "per_sample") for mode in modes}
            slow = device.type == "cpu" and model == "transformer"
            budget = (5.0 if args.quick else 20.0) if slow else 2.0
            timed = time_steps(table, configs, device, budget, min_steps=3 if slow else 20)
            for (loss, mode), (ms, steps) in timed.items():
                results[(device.type, model, loss, mode)] = ms
                rows.append((device.type, model, loss, mode, ms, steps))
                print(f"  {device.type:4s} {model:11s} {loss:10s} {mode:5s} "
                      f"{ms:9.2f} ms/step ({steps} steps)", file=sys.stderr)
    print("\n| device | model | loss | mode | ms/step | steps timed | 30k steps |")
    print("|---|---|---|---|---|---|---|")
    for device, model, loss, mode, ms, steps in rows:
        total = ms * 30_000 / 1e3
        print(f"| {device} | {model} | {loss} | {mode} | {ms:.2f} | {steps} | "
              f"{total / 60:.1f} min |" if total >= 120 else
              f"| {device} | {model} | {loss} | {mode} | {ms:.2f} | {steps} | {total:.0f} s |")
    ok = True
    for model in ("ufm", "transformer"):
        ratio = results[("cpu", model, "per_sample", "eager")] / results[("cpu", model, "distinct",
                                                                            "eager")]
        print(f"\nCPU {model}: distinct-context step {ratio:.1f}x faster than per-sample")
        if model == "transformer":
            met = ratio >= 7
            ok &= met
            print(f"goal (transformer ≥ 7x on CPU): {'met' if met else 'MISSED'}")
    if args.full_run and torch.cuda.is_available():
        wall, excess = full_run("transformer", table)
        met = wall <= 60
        ok &= met
        print(f"\nCUDA: paper config, 30k-epoch transformer run: {wall:.1f} s wall "
              f"(CE − H {excess:.2e}); goal ≤ 60 s: {'met' if met else 'MISSED'}")
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
