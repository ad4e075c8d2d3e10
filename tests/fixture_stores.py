"""Stores in the shape the solver and training stages write (docs/artifacts.md), made in tests.

- the table and ``reference.zarr`` come from the package (``Table.save``, ``reference_dataset``);
- ``svm/{solver}.zarr`` holds L^mm solved here with cvxpy + SCS (or S̄ for k-subset tables,
  where it is the exact solution, paper §1.7), factored with ``reference.factorize``;
- ``train/{model}/{run}.zarr`` is a real trajectory of the NTP-UFM (W H, full-batch Adam on the
  distinct-context loss, float64), checkpointed at log-spaced steps with dense ``trace_*``
  series. The "transformer" fixture is a second UFM run (another width and seed) under that
  model name: the geometry stage only reads W, H and the logits, whatever produced them.
- ``linear/{embedding}/reference.zarr`` and ``.../train/{optimizer}.zarr`` (the linear study)
  are made by the package's own entry points (``ntpgeom.studies.linear.linear_reference_for``,
  ``train_linear``, what the rules' scripts call) and read and written as those scripts do, in
  this process and with few steps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from ntpgeom.data.table import Table, load
from ntpgeom.store import open_store, write_store
from ntpgeom.theory.reference import centered_support, factorize, nuclear_norm, reference_dataset


def solve_mm(S: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """L^mm = argmin ‖L‖_* s.t. L constant on each support and ≥ 1 above every other entry."""
    import cvxpy as cp

    V, m = S.shape
    L, t = cp.Variable((V, m)), cp.Variable(m)
    cons = []
    for j in range(m):
        inside, outside = np.flatnonzero(S[:, j]), np.flatnonzero(~S[:, j])
        cons.append(L[inside, j] == t[j])
        if outside.size:
            cons.append(L[outside, j] <= t[j] - 1)
    cp.Problem(cp.Minimize(cp.normNuc(L)), cons).solve(solver="SCS", eps_abs=eps, eps_rel=eps,
                                                       max_iters=200_000)
    return np.asarray(L.value)


def svm_dataset(table: Table, L_mm: np.ndarray, solver: str) -> xr.Dataset:
    W, H, sigma = factorize(L_mm)
    coords = {"token": np.array(table.tokens, dtype=object),
              "context": np.array(table.contexts, dtype=object)}
    return xr.Dataset(
        {"L_mm": (("token", "context"), L_mm), "W_mm": (("token", "rank"), W),
         "H_mm": (("rank", "context"), H), "singular_values": ("rank", sigma)},
        coords=coords,
        attrs={"solver_name": solver, "solver": solver, "status": "optimal",
               "nuclear_norm": nuclear_norm(L_mm),
               "rank": len(sigma)})


def checkpoints(steps: int) -> list[int]:
    """0, then about 4 log-spaced steps per decade, then the last step."""
    grid = np.unique(np.round(np.logspace(0, np.log10(steps), 4 * int(np.log10(steps)) + 1)))
    return sorted({0, *map(int, grid), steps})


def train_ufm(table: Table, *, model: str = "ufm", d: int = 16, steps: int = 2000,
              lr: float = 0.05, seed: int = 0, decay: bool = True,
              init: float | None = None) -> xr.Dataset:
    """Full-batch Adam on CE(W H) = −Σ_j π_j Σ_z P_zj log softmax(W h_j)_z, as a training store.

    NumPy with the closed-form gradient ∂CE/∂L = (softmax(L) − P) diag(π), ∂W = G Hᵀ, ∂H = Wᵀ G
    (torch's per-call overhead made these 10 × 14 problems 20× slower). The step size halves at
    1/2 and 3/4 of the run, as the paper's MultiStepLR schedule decays it; ``decay=False`` keeps
    it constant (tests/test_claims.py). The entries of W and H start i.i.d. N(0, init²), init =
    1/√d by default; a small ``init`` removes what training cannot: the part of each h_j in the
    null space of W gets no gradient (∂H = Wᵀ G), so with d > V its random start persists and
    only shrinks relative to ‖H‖, which grows about logarithmically.
    """
    from ntpgeom.metrics.core import cross_entropy, log_softmax

    rng = np.random.default_rng(seed)
    P, pi = table.P(), table.pi
    scale = d**-0.5 if init is None else init
    params = [rng.standard_normal((table.V, d)) * scale,
              rng.standard_normal((d, table.m)) * scale]
    moments = [[np.zeros_like(x), np.zeros_like(x)] for x in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    keep = set(checkpoints(steps))
    trace: dict[str, list[float]] = {k: [] for k in ("loss", "norm_W", "norm_H")}
    snaps: dict[str, list] = {"W": [], "H": [], "logits": [], "loss": []}
    for step in range(steps + 1):
        W, H = params
        L = W @ H                                              # (V, d) @ (d, m) -> (V, m)
        loss = cross_entropy(L, P, pi)
        trace["loss"].append(loss)
        trace["norm_W"].append(float(np.linalg.norm(W)))
        trace["norm_H"].append(float(np.linalg.norm(H)))
        if step in keep:
            snaps["W"].append(W.copy())
            snaps["H"].append(H.copy())
            snaps["logits"].append(L)
            snaps["loss"].append(loss)
        if step == steps:
            break
        G = (np.exp(log_softmax(L)) - P) * pi                 # ∂CE/∂L, (V, m)
        rate = lr * 0.5 ** ((step >= steps // 2) + (step >= 3 * steps // 4)) if decay else lr
        for x, grad, (m1, m2) in zip(params, (G @ H.T, W.T @ G), moments, strict=True):
            m1 += (1 - b1) * (grad - m1)
            m2 += (1 - b2) * (grad**2 - m2)
            x -= rate * (m1 / (1 - b1 ** (step + 1))) / (np.sqrt(m2 / (1 - b2 ** (step + 1))) + eps)
    H_ent = table.entropy
    ckpt = sorted(keep)
    loss_c = np.array(snaps["loss"])
    return xr.Dataset(
        {"loss": ("step", loss_c), "ce_minus_entropy": ("step", loss_c - H_ent),
         "norm_W": ("step", np.linalg.norm(snaps["W"], axis=(1, 2))),
         "norm_H": ("step", np.linalg.norm(snaps["H"], axis=(1, 2))),
         "W": (("step", "token", "dim"), np.array(snaps["W"])),
         "H": (("step", "dim", "context"), np.array(snaps["H"])),
         "logits": (("step", "token", "context"), np.array(snaps["logits"])),
         "trace_loss": ("trace_step", np.array(trace["loss"])),
         "trace_ce_minus_entropy": ("trace_step", np.array(trace["loss"]) - H_ent),
         "trace_norm_W": ("trace_step", np.array(trace["norm_W"])),
         "trace_norm_H": ("trace_step", np.array(trace["norm_H"]))},
        coords={"step": ckpt, "trace_step": np.arange(steps + 1),
                "token": np.array(table.tokens, dtype=object),
                "context": np.array(table.contexts, dtype=object)},
        attrs={"model": model, "d": d, "lr": lr, "steps": steps, "seed": seed,
               "entropy": H_ent})


# (model, run, d, seed): run names as rules/common.smk makes them for d: [16], seeds: [0];
# the two trajectories differ by the initialization seed.
RUNS = (("ufm", "d16-seed0", 16, 0), ("transformer", "d16-seed0", 16, 1))


def write_results(root: Path, dataset: str, table: Table, *, steps: int = 2000,
                  solvers: tuple[str, ...] = ("scs",), runs=RUNS) -> dict[str, object]:
    """Write table, reference, svm and training stores of ``dataset`` under ``root/results``.

    Returns the in-memory datasets too (``table``, ``reference``, ``svm``, ``train``).
    """
    base = Path(root) / "results" / dataset
    table.attrs["dataset"] = dataset  # as build_table records it
    table.save(base / "table.zarr")
    ref = reference_dataset(table)
    write_store(ref, base / "reference.zarr")
    closed = table.attrs.get("closed_form") == "S_bar"
    L_mm = centered_support(table.S()) if closed else solve_mm(table.S())
    svm = {s: svm_dataset(table, L_mm, s) for s in solvers}
    for s, ds in svm.items():
        write_store(ds, base / "svm" / f"{s}.zarr")
    train = {}
    for model, run, d, seed in runs:
        ds = train_ufm(table, model=model, d=d, steps=steps, seed=seed)
        ds.attrs.update(dataset=dataset, run=run)  # the identity the training stage records
        write_store(ds, base / "train" / model / f"{run}.zarr")
        train[(model, run)] = ds
    return {"table": table, "reference": ref, "svm": svm, "train": train}


#: The fixture's linear study (rules/linear.smk): random embeddings with d = 16 > m = 14 (Lemma 1:
#: compatible and separable), two optimizers, few steps; and the 2-D toy.
LINEAR = {"embeddings": {"random": {"source": "random", "d": 16, "seed": 0}},
          "epochs": 150, "checkpoints_per_decade": 4, "toy": True,
          "optimizers": {"gd": {"optimizer": "gd", "lr": "auto"},
                         "adam": {"optimizer": "adam", "lr": 0.05, "betas": [0.9, 0.99]}}}


def write_linear(root: Path, dataset: str, linear: dict = LINEAR) -> None:
    """Write the linear stores of ``dataset`` (its table must exist) for the ``linear`` section,
    with LinearConfig's defaults for the keys it does not set (the schema's, which the rules'
    validated section has)."""
    from ntpgeom.studies.linear import LinearConfig, linear_reference_for, train_linear

    base = Path(root) / "results" / dataset
    section = LinearConfig.from_dict(linear)
    # As scripts/linear_reference.py and scripts/linear_train.py: the table and the reference
    # read back from their stores.
    table = load(base / "table.zarr")
    for emb, spec in section.embeddings.items():
        ref = base / "linear" / emb / "reference.zarr"
        write_store(linear_reference_for(table, embedding=spec, linear=section), ref)
        reference = open_store(ref)
        for name, opt in section.optimizers.items():
            train_linear(table, reference,
                         out=str(base / "linear" / emb / "train" / f"{name}.zarr"), spec=opt,
                         linear=section, run=name, where=str(ref))


REPO = Path(__file__).resolve().parents[1]
_WORKFLOW: dict[str, Path] = {}


def snakemake(workdir: Path, *targets: str, extra: tuple[str, ...] = ()):
    """Run the repository's workflow in ``workdir`` on ``workdir/config.yaml``."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *extra, *targets]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def workflow_results(tmp_path_factory) -> Path:
    """Once per test session: fixture stores of dataset ``rand`` (a random 10 × 14 table, two
    solvers, a UFM and a "transformer" run, the linear study of :data:`LINEAR`), then Snakemake
    builds every geometry store, every figure (the dataset's, the overlays, the linear ones and
    the 2-D toy) and ``results/report.html`` from them. Returns the working directory.

    Under pytest-xdist the workers share it: it is built once, in the session's common temporary
    folder, by the first worker that asks (the others wait on a file lock), since building it
    takes a minute and two cores."""
    if "root" not in _WORKFLOW:
        import fcntl
        import json
        import os

        from ntpgeom.data.synthetic import random_table

        base = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent  # shared by the workers of this session
        root, done_marker = base / "workflow", base / "workflow.done"
        with open(base / "workflow.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done_marker.exists():
                shutil.rmtree(root, ignore_errors=True)  # a worker's half-built attempt
                root.mkdir()
                write_results(root, "rand", random_table(V=10, m=14, max_support=3, seed=3),
                              steps=2000, solvers=("scs", "admm"))
                write_linear(root, "rand")
                (root / "config.yaml").write_text(
                    "datasets:\n  rand: {source: synthetic, synthetic: {kind: grammar}}\n"
                    "train: {models: [ufm, transformer], d: [16], seeds: [0]}\n"
                    "geometry: {knn_k: 3}\n"
                    f"linear: {json.dumps(LINEAR)}\n")
                done = snakemake(root, "results/report.html")
                assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
                done_marker.touch()
        _WORKFLOW["root"] = root
    return _WORKFLOW["root"]
