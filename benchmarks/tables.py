"""Table-builder throughput and memory on 2, 20 and 200 MB corpora (the sample, repeated).

Each measurement runs in a fresh subprocess, so peak RSS (ru_maxrss) is that build's alone; the
peak of numpy/Python allocations (tracemalloc) is measured in a run of its own. The
baseline is the issue's reference point: `re.findall` + `collections.Counter` over 5-gram pairs,
which holds every distinct pair in memory. Run: `make bench` or `python benchmarks/tables.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "tinystories_sample.txt"

WORKER = r"""
import json, resource, sys, time
path, kind = sys.argv[1], sys.argv[2]
if kind == "traced":  # numpy and Python allocations only, in a run of its own (tracing is slower)
    import tracemalloc
    from ntpgeom.data import corpus, ngrams
    from ntpgeom.data.tokenize import WordTokenizer
    WordTokenizer().encode(b"warm up")
    tracemalloc.start()
    ngrams.count_pairs(corpus.read_text(path), WordTokenizer(), context_length=5,
                       candidates=25600, min_count=2, progress=False)
    print(json.dumps({"traced_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
    sys.exit()
start = time.perf_counter()
if kind == "ntpgeom":
    from ntpgeom.data import corpus, ngrams
    from ntpgeom.data.tokenize import WordTokenizer
    # Warm the numba cache outside the timed region (compiled once per install).
    WordTokenizer().encode(b"warm up")
    start = time.perf_counter()
    pc = ngrams.count_pairs(corpus.read_text(path), WordTokenizer(), context_length=5,
                            candidates=25600, min_count=2, progress=False)
    pairs, nbytes = pc.corpus_pairs, pc.corpus_bytes
else:
    import re
    from collections import Counter
    text = open(path, encoding="utf-8").read().lower()
    counts = Counter()
    pairs = 0
    for doc in text.split("<|endoftext|>"):
        toks = re.findall(r"\w+|[^\w\s]", doc)
        grams = [tuple(toks[i:i + 6]) for i in range(len(toks) - 5)]
        counts.update(grams)
        pairs += len(grams)
    nbytes = len(text.encode())
dt = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "pairs": pairs, "bytes": nbytes, "peak_mb": rss}))
"""


def measure(path: Path, kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER, str(path), kind], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if not SAMPLE.is_file():
        sys.exit(f"{SAMPLE} is missing")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = SAMPLE.read_bytes()
        for repeat in (1, 10, 100):
            path = Path(tmp) / f"corpus{repeat}.txt"
            with open(path, "wb") as fh:
                for _ in range(repeat):
                    fh.write(data)
            kinds = ["ntpgeom", "baseline"] if repeat <= 10 else ["ntpgeom"]
            for kind in kinds:
                r = measure(path, kind)
                traced = measure(path, "traced")["traced_mb"] if kind == "ntpgeom" else None
                rows.append((r["bytes"] / 1e6, kind, r["bytes"] / 1e6 / r["seconds"],
                             r["pairs"] / r["seconds"] / 1e6, r["peak_mb"], traced))
                print(f"{rows[-1][0]:7.1f} MB  {kind:9s} {rows[-1][2]:6.1f} MB/s  "
                      f"{rows[-1][3]:5.2f} M pairs/s  peak RSS {rows[-1][4]:6.0f} MB  "
                      f"({r['seconds']:.1f} s)", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| corpus | builder | MB/s | M pairs/s | peak RSS | peak allocated |\n"
          "|---|---|---|---|---|---|")
    for mb, kind, speed, pps, peak, traced in rows:
        name = "ntpgeom (2 passes, exact)" if kind == "ntpgeom" else "re.findall + Counter"
        alloc = f"{traced:.0f} MB" if traced is not None else "–"
        print(f"| {mb:.0f} MB | {name} | {speed:.1f} | {pps:.2f} | {peak:.0f} MB | {alloc} |")


if __name__ == "__main__":
    main()
