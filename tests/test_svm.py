"""Tests of ntpgeom.theory.svm: the NTP-SVM solvers against the closed form (§1.7) and against each
other.

Tolerances:
- admm is stopped at certified gap 1e-8 and residuals 1e-7; on k-subset tables (started away from
  S̄) it lands within ~1e-9 of the closed form, so 1e-7 relative is tight but not flaky.
- SCS runs at eps 1e-8; its solutions agree with the closed form / admm to ~1e-8 on these small
  problems, so 1e-5 in direction (the issue's bound) and 1e-6 in nuclear norm leave slack for
  SCS's platform-dependent iterates but would catch any formulation error (those are ≥ 1e-2).
- Every stored L is exactly feasible (projection), so violations are checked at 1e-7 (the issue)
  and in fact are 0 up to rounding.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.data.table import Table, load
from ntpgeom.errors import UserError
from ntpgeom.store import open_store, solver_name
from ntpgeom.theory.reference import centered_support, constraint_violation, nuclear_norm, reldir
from ntpgeom.theory.svm import SOLVERS, check_table, is_ksubset, solve, solve_options
from ntpgeom.theory.svm.admm import (
    ANDERSON_MEMORY,
    project_constraints,
    singular_value_threshold,
    solve_admm,
)
from ntpgeom.theory.svm.anderson import Anderson
from ntpgeom.theory.svm.certificate import certificate, dual_bound, extrapolated_dual
from ntpgeom.theory.svm.cvx import estimate_memory_mb, solve_cvx

ROOT = Path(__file__).resolve().parents[1]
KSUBSETS = [(5, 1), (6, 2), (7, 3), (9, 2)]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- the operators -------------------------------------------------------------------------------

def test_projection_is_the_nearest_feasible_point():
    """Water-filling against a 1-D convex minimisation of the distance over the level t."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(1)
    V, m = 12, 40
    S = rng.random((V, m)) < 0.3
    S[0, ~S.any(axis=0)] = True
    Y = rng.normal(scale=2.0, size=(V, m))
    supp = torch.as_tensor(S.T.copy())
    X = project_constraints(torch.as_tensor(Y.T.copy()), supp, supp.sum(1).double()).T.numpy()
    assert max(constraint_violation(X, S)) <= 1e-12
    for j in range(m):
        y, s = Y[:, j], S[:, j]

        def dist2(t, y=y, s=s):
            return ((y[s] - t) ** 2).sum() + (np.maximum(y[~s] - t + 1, 0) ** 2).sum()

        t = minimize_scalar(dist2, bounds=(y.min() - 2, y.max() + 2), method="bounded",
                            options={"xatol": 1e-12}).x
        expected = np.where(s, t, np.minimum(y, t - 1))
        np.testing.assert_allclose(X[:, j], expected, atol=1e-7)
        assert ((X[:, j] - y) ** 2).sum() <= dist2(t) + 1e-12


def _project_with_torch_sort(Y, supp, n_in):
    """The water-filling projection exactly as first written (``torch.sort``): the reference."""
    total_in = torch.where(supp, Y, 0.0).sum(dim=1)
    u = torch.where(supp, -math.inf, Y + 1.0)
    top = torch.sort(u, dim=1, descending=True).values
    k = torch.arange(1, Y.shape[1] + 1, dtype=Y.dtype)
    t_k = (total_in[:, None] + torch.cumsum(top, dim=1)) / (n_in[:, None] + k)
    t = torch.maximum(total_in / n_in, t_k.max(dim=1).values)
    return torch.where(supp, t[:, None], torch.minimum(Y, t[:, None] - 1.0))


@pytest.mark.parametrize(("V", "m", "density"), [(12, 40, 0.3), (104, 400, 0.05), (50, 30, 0.9)])
def test_projection_is_bit_identical_to_the_torch_sort_reference(V, m, density):  # noqa: N803
    """The CPU projection sorts with numpy (faster); it must give exactly the same numbers,
    including with ties (integer-valued inputs) and rows with a single out-of-support token."""
    rng = np.random.default_rng(V)
    S = rng.random((m, V)) < density
    S[~S.any(axis=1), 0] = True
    S[0] = True
    S[0, 1] = False  # one out-of-support token only
    supp = torch.as_tensor(S)
    n_in = supp.sum(1).double()
    for Y in (rng.normal(scale=3.0, size=(m, V)), rng.integers(-3, 3, size=(m, V)).astype(float)):
        Y = torch.as_tensor(Y)
        assert torch.equal(project_constraints(Y, supp, n_in),
                           _project_with_torch_sort(Y, supp, n_in))


@pytest.mark.parametrize("shape", [(50, 12), (12, 50)])
def test_singular_value_threshold_matches_svd(shape):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=shape)
    tau = 1.5
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    expected = (U * np.maximum(s - tau, 0)) @ Vt
    got, shrunk = singular_value_threshold(torch.as_tensor(Z), tau)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(np.sort(shrunk.numpy())[::-1][: len(s)], np.maximum(s - tau, 0),
                               atol=1e-10)


def test_dual_bound_never_exceeds_the_optimum():
    """Weak duality: any Y, repaired, bounds ‖L^mm‖_* from below; S̄ bounds it from above."""
    table = random_table(15, 40, seed=3)
    S = table.S()
    opt = solve_admm(S, device="cpu").nuclear_norm
    supp = torch.as_tensor(S.T.copy())
    n_in = supp.sum(1).double()
    rng = np.random.default_rng(0)
    for _ in range(20):
        Y = torch.as_tensor(rng.normal(size=(40, 15)))
        assert float(dual_bound(Y, supp, n_in)) <= opt * (1 + 1e-12)
    assert opt <= nuclear_norm(centered_support(S)) * (1 + 1e-12)


def test_dual_extrapolation_is_exact_on_a_geometric_sequence_and_stays_a_bound():
    rng = np.random.default_rng(4)
    Y_star, E = (torch.as_tensor(rng.normal(size=(30, 8))) for _ in range(2))
    # Y_k = Y* + q^k E with ρ changing in between (ρU is what counts): the limit is Y*.
    duals = [(rho, (Y_star + 0.9**k * E) / rho) for k, rho in ((10, 1.0), (11, 2.0), (12, 2.0))]
    np.testing.assert_allclose(extrapolated_dual(duals).numpy(), Y_star.numpy(), atol=1e-12)
    assert extrapolated_dual(duals[1:]) is None
    # Diverging (q > 1): no extrapolation, the newest dual itself.
    grow = [(1.0, Y_star + 2.0**k * E) for k in range(3)]
    assert torch.equal(extrapolated_dual(grow), grow[-1][1])
    # Whatever the candidates, the certificate is a lower bound on the optimum.
    table = random_table(15, 40, seed=3)
    S = table.S()
    opt = solve_admm(S, device="cpu").nuclear_norm
    supp = torch.as_tensor(S.T.copy())
    for _ in range(10):
        duals = [(1.0, torch.as_tensor(rng.normal(size=(40, 15)))) for _ in range(3)]
        X = torch.as_tensor(centered_support(S).T.copy())
        upper, lower = certificate(X, duals, supp, supp.sum(1).double())
        assert lower <= opt * (1 + 1e-12) <= upper * (1 + 2e-12)


# --- k-subset tables: L^mm = S̄ ------------------------------------------------------------------

@pytest.mark.parametrize(("V", "k"), KSUBSETS)
def test_admm_from_a_random_start_finds_the_closed_form(V, k):  # noqa: N803
    S = ksubset_table(V, k).S()
    res = solve_admm(S, device="cpu", init="random")
    assert res.status == "optimal" and res.gap <= 1e-8
    assert rel(res.L, centered_support(S)) <= 1e-7
    assert res.lower_bound <= res.nuclear_norm


@pytest.mark.parametrize(("V", "k"), KSUBSETS)
@pytest.mark.parametrize("solver", ["admm", "scs", "closed_form"])
def test_every_solver_equals_S_bar_on_ksubsets(V, k, solver):  # noqa: N803
    table = ksubset_table(V, k)
    ds = solve(table, solver=solver)
    S_bar = centered_support(table.S())
    tol = {"admm": 1e-7, "scs": 1e-6, "closed_form": 1e-14}[solver]
    assert rel(ds["L_mm"].values, S_bar) <= tol
    assert ds.attrs["closed_form_reldir"] <= tol
    # admm stops on the certified gap; SCS stops on its own residuals (eps 1e-8) and lands near it.
    assert ds.attrs["gap"] <= (1e-6 if solver == "scs" else 1e-8)
    assert ds.attrs["rank"] == V - 1  # S̄ S̄ᵀ ∝ I − 11ᵀ/V


def test_is_ksubset():
    assert is_ksubset(ksubset_table(6, 2).S())
    S = ksubset_table(6, 2).S()
    assert not is_ksubset(S[:, 1:])                              # one subset missing
    assert not is_ksubset(np.concatenate([S[:, :1], S[:, :-1]], axis=1))  # a duplicate
    assert not is_ksubset(random_table(6, 15, seed=0).S())


# --- random tables: admm and SCS agree -----------------------------------------------------------

@pytest.mark.parametrize(("V", "m", "seed"), [(20, 60, 0), (30, 90, 1)])
def test_admm_and_scs_agree_on_random_tables(V, m, seed):  # noqa: N803
    table = random_table(V, m, seed=seed)
    a = solve(table, solver="admm", device="cpu")
    s = solve(table, solver="scs")
    La, Ls = a["L_mm"].values, s["L_mm"].values
    assert reldir(La, Ls) <= 1e-5
    assert abs(a.attrs["nuclear_norm"] - s.attrs["nuclear_norm"]) <= 1e-6 * a.attrs["nuclear_norm"]
    # Cross-certification: each solver's lower bound is below the other's feasible objective.
    assert a.attrs["lower_bound"] <= s.attrs["nuclear_norm"] * (1 + 1e-12)
    assert s.attrs["lower_bound"] <= a.attrs["nuclear_norm"] * (1 + 1e-12)
    for ds in (a, s):
        assert ds.attrs["max_violation"] <= 1e-7
        assert max(constraint_violation(ds["L_mm"].values, table.S())) <= 1e-7
        assert ds.attrs["gap"] <= 1e-6
    assert a.attrs["gap"] <= 1e-8
    # The solution is not the proxy S̄ (else this test would not test much).
    assert reldir(La, centered_support(table.S())) > 1e-2


def test_store_contract_and_factor_identities(tmp_path):
    table = random_table(20, 50, seed=2)
    ds = solve(table, solver="admm", device="cpu", config={"svm": {"solvers": ["admm"]}})
    L, W, H, sigma = (ds[k].values for k in ("L_mm", "W_mm", "H_mm", "singular_values"))
    assert ds["L_mm"].dims == ("token", "context")
    assert ds["W_mm"].dims == ("token", "rank") and ds["H_mm"].dims == ("rank", "context")
    assert list(ds["token"].values) == table.tokens
    assert list(ds["context"].values) == table.contexts
    np.testing.assert_allclose(W @ H, L, atol=1e-9 * np.abs(L).max())
    assert math.isclose((W**2).sum() + (H**2).sum(), 2 * ds.attrs["nuclear_norm"], rel_tol=1e-9)
    assert math.isclose(sigma.sum(), nuclear_norm(L), rel_tol=1e-9)
    for key in ("solver", "status", "nuclear_norm", "max_violation", "gap", "solve_seconds",
                "rank", "solver_options", "config", "ntpgeom_version"):
        assert key in ds.attrs, key
    assert ds.attrs["rank"] == W.shape[1]
    hist = ds["history_gap"]
    assert hist.dims == ("iteration",) and np.nanmin(hist.values) <= 1e-8
    # Round trip through the store (JSON attrs, NaN in the history).
    from ntpgeom.store import write_store

    back = open_store(write_store(ds, tmp_path / "admm.zarr"))
    np.testing.assert_array_equal(back["L_mm"].values, L)
    assert back.attrs["solver_options"]["device"] == "cpu"


def test_iteration_limit_keeps_a_valid_certificate():
    S = random_table(30, 90, seed=1).S()
    res = solve_admm(S, device="cpu", max_iter=20, check_every=10)
    assert res.status == "iteration_limit" and res.iterations == 20
    assert res.lower_bound <= res.nuclear_norm and res.gap > 1e-8
    assert max(constraint_violation(res.L, S)) <= 1e-12


@pytest.mark.parametrize("float32_until", [0.0, 1e-5])
def test_float32_phase_keeps_the_float64_certificate(float32_until):
    """A float32 start phase changes the path, not the answer: same optimum within the gap,
    an exactly feasible float64 L, and a certified gap (closed form from a random start too)."""
    S = random_table(30, 90, seed=1).S()
    ref = solve_admm(S, device="cpu", float32_until=0.0)
    res = solve_admm(S, device="cpu", float32_until=float32_until)
    assert res.status == "optimal" and res.gap <= 1e-8 and res.L.dtype == np.float64
    assert max(constraint_violation(res.L, S)) <= 1e-12
    assert abs(res.nuclear_norm - ref.nuclear_norm) <= 2e-8 * ref.nuclear_norm
    assert res.lower_bound <= ref.nuclear_norm * (1 + 1e-12)
    assert reldir(res.L, ref.L) <= 1e-5
    K = ksubset_table(7, 3).S()  # noqa: N806
    k = solve_admm(K, device="cpu", init="random", float32_until=float32_until)
    assert k.status == "optimal" and rel(k.L, centered_support(K)) <= 1e-7


def test_iteration_limit_in_the_float32_phase_certifies_in_float64():
    S = random_table(30, 90, seed=1).S()
    res = solve_admm(S, device="cpu", max_iter=20, float32_until=1e-9)
    assert res.status == "iteration_limit" and res.L.dtype == np.float64
    assert max(constraint_violation(res.L, S)) <= 1e-12
    assert res.lower_bound <= res.nuclear_norm and np.isfinite(res.gap)


def test_anderson_solves_an_affine_fixed_point_like_gmres():
    """On T(w) = Aw + b (symmetric A, ‖A‖ < 1) type-II Anderson with memory ≥ d is GMRES on
    (I − A)w = b, exact after d + 1 steps; plain iteration (rate 0.95) is still ~0.7 off."""
    d = 6
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = torch.as_tensor(Q @ np.diag(np.linspace(-0.5, 0.95, d)) @ Q.T)
    b = torch.as_tensor(rng.normal(size=d))
    w_star = torch.linalg.solve(torch.eye(d, dtype=A.dtype) - A, b)
    w = torch.zeros(d, dtype=A.dtype)
    accel = Anderson(d, w)
    for _ in range(d + 2):
        Tw = A @ w + b
        w = accel.step(Tw, Tw - w)
    assert accel.rejected == 0
    assert float(torch.linalg.vector_norm(w - w_star) / torch.linalg.vector_norm(w_star)) <= 1e-10


def test_anderson_rejects_an_extrapolation_that_raises_the_residual():
    """The safeguard: if ‖G‖ at an extrapolated point exceeds the last point's, the next W is
    the last point's plain step T(W), and the memory is emptied."""
    accel = Anderson(3, torch.zeros(2, dtype=torch.float64))

    def t(values):
        return torch.tensor(values, dtype=torch.float64)

    assert torch.equal(accel.step(t([1.0, 0.0]), t([1.0, 0.0])), t([1.0, 0.0]))  # no memory yet
    T_prev = t([1.5, 0.2])
    accel.step(T_prev, t([0.5, 0.2]))  # extrapolated from the first difference
    assert accel.extrapolated
    W = accel.step(t([9.0, 9.0]), t([3.0, 3.0]))  # ‖G‖ grew: rejected
    assert accel.rejected == 1 and torch.equal(W, T_prev) and accel.filled == 0
    assert accel.wait == 3  # plain steps before the next extrapolation


@pytest.mark.parametrize("anderson", [0, 3, 8])
def test_anderson_changes_the_path_not_the_answer(anderson):
    """Accelerated or not, the same certified optimum (and the closed form from a random start)."""
    S = random_table(30, 90, seed=1).S()
    ref = solve_admm(S, device="cpu", anderson=0, float32_until=0.0)
    res = solve_admm(S, device="cpu", anderson=anderson)
    assert res.status == "optimal" and res.gap <= 1e-8
    assert max(constraint_violation(res.L, S)) <= 1e-12
    assert abs(res.nuclear_norm - ref.nuclear_norm) <= 2e-8 * ref.nuclear_norm
    assert reldir(res.L, ref.L) <= 1e-5
    K = ksubset_table(7, 3).S()  # noqa: N806
    k = solve_admm(K, device="cpu", init="random", anderson=anderson)
    assert k.status == "optimal" and rel(k.L, centered_support(K)) <= 1e-7


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_admm_on_cuda_matches_cpu():
    S = random_table(40, 200, seed=0).S()
    gpu = solve_admm(S, device="cuda")
    cpu = solve_admm(S, device="cpu")
    assert gpu.status == "optimal" and gpu.device.startswith("cuda")
    assert reldir(gpu.L, cpu.L) <= 1e-6
    assert math.isclose(gpu.nuclear_norm, cpu.nuclear_norm, rel_tol=1e-8)


# --- options and config --------------------------------------------------------------------------

def test_schema_defaults_map_onto_solve():
    import yaml
    from snakemake.utils import validate

    section: dict = {}
    validate(section, schema=str(ROOT / "schemas" / "svm.schema.yaml"))
    assert section["solvers"] == ["admm", "scs"] and section["gap_tol"] == 1e-8
    with open(ROOT / "config.yaml") as fh:
        assert yaml.safe_load(fh)["svm"]["solvers"] == ["admm", "scs"]
    table = ksubset_table(5, 2)
    for solver in SOLVERS:
        options = solve_options(section, solver)
        assert options["solver"] == solver
        if solver != "mosek":  # no licence here: covered by test_mosek_without_licence
            assert solve(table, **options).attrs["status"] == "optimal"
    assert solve_options(section, "admm")["device"] == "auto"
    assert solve_options(section, "admm")["anderson"] == ANDERSON_MEMORY  # one default, two places
    assert solve_options(section, "auto")["eps"] == 1e-8
    with pytest.raises(UserError, match="unknown solver 'mosk'; choose from admm"):
        solve_options(section, "mosk")


# --- bad input: one line, nothing written --------------------------------------------------------

def full_support_table() -> Table:
    return Table.from_pairs([("a",), ("b",)], {0: {"x": 1, "y": 2}, 1: {"x": 3, "y": 1}})


def test_no_out_of_support_token_is_refused():
    with pytest.raises(UserError, match="out-of-support"):
        solve(full_support_table(), solver="admm")


def test_unknown_solver_and_device_are_refused():
    table = ksubset_table(5, 2)
    with pytest.raises(UserError, match="unknown solver 'cvx'; choose from admm, scs"):
        solve(table, solver="cvx")
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        solve(table, solver="admm", device="tpu")
    with pytest.raises(UserError, match="svm solver admm: anderson must be >= 0"):
        solve(table, solver="admm", anderson=-1)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            solve(table, solver="admm", device="cuda")


def test_closed_form_refused_on_other_tables():
    with pytest.raises(UserError, match="only when the supports are exactly all k-subsets"):
        solve(random_table(10, 20), solver="closed_form")


def test_too_large_for_cvxpy_memory_is_refused_before_solving():
    # ~16 GB estimated for r500x3000 (baselines.md: > 8.9 GB when killed), refused under 8 GB.
    with pytest.raises(UserError, match=r"needs about .* GB.*use solver admm"):
        solve_cvx(random_table(500, 3000).S(), solver="scs", memory_limit_mb=8192)
    with pytest.raises(UserError, match="use solver admm"):
        solve(ksubset_table(6, 2), solver="scs", memory_limit_mb=1)
    # The estimate grows with the PSD order: r500x3000 must be refused on a 64 GB machine too.
    assert estimate_memory_mb(500, 3000, "scs") > 10_000
    assert estimate_memory_mb(104, 400, "scs") < 1_000


def bad_store(tmp_path: Path, kind: str) -> Path:
    """A table.zarr with NaN or negative probabilities, as a broken upstream tool could write."""
    from ntpgeom.store import write_store

    ds = ksubset_table(5, 2).to_dataset()
    if kind == "nan":
        ds["prob"].values[3] = np.nan
    else:
        ds["prob"].values[3] = -0.2
        ds["pair_count"].values[3] = -1
    return write_store(ds, tmp_path / f"{kind}.zarr")


@pytest.mark.parametrize("kind", ["nan", "negative"])
def test_bad_probabilities_are_refused(tmp_path, kind):
    path = bad_store(tmp_path, kind)
    with pytest.raises(UserError, match="prob has non-finite or non-positive entries"):
        load(path)


def test_check_table_refuses_nan_probabilities_in_memory():
    table = ksubset_table(5, 2)
    object.__setattr__(table, "pair_count", table.pair_count.astype(float))
    table.pair_count[0] = np.nan
    with pytest.raises(UserError, match="finite and in"):
        check_table(table)


# --- the command line ----------------------------------------------------------------------------

def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntpgeom.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_help_explains_every_option():
    out = run_cli("solve", "--help").stdout
    for option in ("--solver", "--out", "--gap-tol", "--time-limit", "--device", "--residual-tol",
                   "--max-iter", "--check-every", "--anderson", "--float32-until", "--threads",
                   "--eps", "--max-iters",
                   "--memory-limit-mb", "closed_form"):
        assert option in out, option


def test_cli_solves_and_refuses_without_writing(tmp_path):
    table = tmp_path / "table.zarr"
    ksubset_table(6, 2).save(table)
    out = tmp_path / "svm" / "admm.zarr"
    proc = run_cli("solve", str(table), "--solver", "admm", "--device", "cpu", "--anderson", "0",
                   "--float32-until", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "zarr.json").read_text())["attributes"]
    assert meta["solver"] == "admm" and meta["status"] == "optimal"
    assert meta["solver_options"]["anderson"] == 0 and meta["solver_options"]["float32_until"] == 0
    assert meta["extrapolations_rejected"] == 0  # nothing to reject without acceleration
    bad = tmp_path / "too_big.zarr"
    proc = run_cli("solve", str(table), "--solver", "scs", "--memory-limit-mb", "1", "--out",
                   str(bad))
    assert proc.returncode == 2 and "use solver admm" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    nan = bad_store(tmp_path, "nan")
    proc = run_cli("solve", str(nan), "--out", str(bad))
    assert proc.returncode == 2 and "non-finite" in proc.stderr
    assert not bad.exists() and not list(tmp_path.glob(".too_big.zarr*"))


def test_mosek_without_licence(tmp_path):
    """The real no-licence path: mosek installed, no licence findable (HOME and the licence
    variable point nowhere), in a fresh process because MOSEK reads them when cvxpy is imported."""
    pytest.importorskip("mosek")
    table = tmp_path / "table.zarr"
    ksubset_table(5, 2).save(table)
    env = {**os.environ, "HOME": str(tmp_path),
           "MOSEKLM_LICENSE_FILE": str(tmp_path / "nowhere" / "mosek.lic")}
    out = tmp_path / "mosek.zarr"
    proc = run_cli("solve", str(table), "--solver", "mosek", "--out", str(out), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "MOSEK cannot solve here" in proc.stderr and "mosek.lic" in proc.stderr
    assert "licence" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
    auto = tmp_path / "auto.zarr"
    proc = run_cli("solve", str(table), "--solver", "auto", "--out", str(auto), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "MOSEK unavailable" in proc.stderr and "falling back to SCS" in proc.stderr
    meta = json.loads((auto / "zarr.json").read_text())["attributes"]
    assert meta["solver"] == "scs" and meta["status"] == "optimal"
    # What ran is attr solver; what was asked, which labels it downstream, is solver_name.
    assert meta["solver_name"] == "auto" and solver_name(open_store(auto)) == "auto"


def test_a_solution_is_named_by_the_solver_asked_for():
    """Figures, the report and geometry stores label each L^mm by attr solver_name, never by a
    file name; a store without it (an older ntpgeom's) is one line asking for a rerun."""
    import xarray as xr

    ds = solve(ksubset_table(4, 2), solver="closed_form")
    assert solver_name(ds) == "closed_form" == ds.attrs["solver"]
    with pytest.raises(UserError, match="lacks attr solver_name.*rerun its svm_solve step"):
        solver_name(xr.Dataset(attrs={"solver": "scs"}))
