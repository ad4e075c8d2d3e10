"""The project's own NTP-SVM solver: ADMM on the nuclear-norm program, torch, CPU or CUDA.

The program (``docs/paper.md`` §1.5), with L in the paper's orientation V × m::

    L^mm ∈ argmin ‖L‖_*  s.t.  L ∈ C = ∩_j C_j,
    C_j = {L_{:,j} : L_zj = t_j for z ∈ S_j,  L_vj ≤ t_j − 1 for v ∉ S_j, for some t_j ∈ ℝ}.

C_j is the anchor-free form of the equalities (L constant on the support) and margins (≥ 1 between
in- and out-of-support tokens). ADMM on the split ``min ‖L‖_* + I_C(X) s.t. L = X`` (Boyd et al.
2011, §3.1 scaled form, penalty ρ, scaled dual U)::

    L ← SVT_{1/ρ}(X − U)            singular-value thresholding: prox of ‖·‖_*/ρ
    X ← Π_C(L + U)                  exact Euclidean projection, per context (water-filling)
    U ← U + L − X

Acceleration. In W = X + U the iteration is a fixed-point map W ↦ T(W) (Douglas–Rachford) that
converges linearly but slowly near the optimum; the solver applies safeguarded Anderson
acceleration to it (:class:`~ntpgeom.theory.svm.anderson.Anderson`), which cut the iterations of
r500x3000 from ~410 to ~180 and of r104x100000 from 170 to 30.

Certificate. The Lagrange dual of the program is (derivation and repair in
:mod:`ntpgeom.theory.svm.certificate`)::

    max Σ_j Σ_{v∉S_j} Y_vj   s.t.  ‖Y‖_2 ≤ 1,  Y_vj ≥ 0 (v ∉ S_j),  Σ_z Y_zj = 0 for every j,

and Y = ρU satisfies the linear constraints after every X step. Repairing any Y to exact dual
feasibility (clamp, re-center, scale to spectral norm ≤ 1) gives a lower bound on ‖L^mm‖_*; the
iterate X is exactly feasible, so ‖X‖_* is an upper bound. Their relative difference is the
*certified* gap the solver stops on (together with small residuals: the objective is flat near
the optimum, so a small gap alone under-resolves L). The primal side converges far faster than
the dual side (r104x400: ‖X‖_* is within 3e-10 of the optimum when ρU's bound is 1.8e-7 off), so
the bound is also taken at an extrapolation of the linearly converging dual sequence; any
candidate is repaired the same way, so the bound is certified whatever the candidate.

Cost per iteration (CPU, one thread, profiled on 400 × 104 and 3000 × 500): the Gram ZᵀZ, its
``eigh`` and the product Z M are each about a quarter; the projection's row sort was as large as
all three until it moved to numpy (:func:`_sort_descending`). On the CPU the iterations start in
float32 (half the cost) and finish in float64 (``float32_until``); the certificate is float64.

Only torch and numpy are imported here, so the solver runs on a bare GPU machine.

Internally L, X, U are stored contexts × tokens (m × V, row-major) so that the per-context
projection works on contiguous rows; the public functions take and return V × m.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from ntpgeom.theory.svm.anderson import Anderson
from ntpgeom.theory.svm.certificate import DTYPE, certificate
from ntpgeom.theory.svm.config import AdmmOptions, SvmConfig

log = logging.getLogger(__name__)

# The defaults of solve_admm are the `svm` section's (schemas/svm.schema.yaml documents them).
_OPTIONS = AdmmOptions()


#: ``device="auto"`` picks CUDA (when available) from this many matrix entries m·V up. Below it a
#: CPU core is faster per iteration than a kernel launch plus a host sync (baselines.md: the
#: 400×104 SVT kernel is 0.72 ms on one CPU core, 1.5 ms on an H100).
AUTO_CUDA_MIN_ENTRIES = 100_000

#: Default memory of the Anderson acceleration (:class:`Anderson`). Iterations to certified gap
#: 1e-8 on one core, memory 0 / 3 / 5 / 8 / 12: r104x400 190 / 130 / 130 / 100–110 / –,
#: r200x1000 260 / 140 / 130 / 120 / –, r500x3000 410 / 280 / 210 / 180–190 / 200. Each unit of
#: memory costs two more passes over an m × V matrix per iteration (r500x3000: ~5 ms). The value
#: is ``svm.admm.anderson``'s default (:class:`~ntpgeom.theory.svm.config.AdmmOptions`).
ANDERSON_MEMORY = _OPTIONS.anderson

#: Default ``float32_until`` on the CPU: the relative residuals at which the float32 start phase
#: hands over to float64 (see :func:`solve_admm`).
FLOAT32_UNTIL = 1e-5


@dataclass
class AdmmResult:
    """What :func:`solve_admm` returns.

    Attributes
    ----------
    L : ndarray, shape (V, m)
        The exactly feasible iterate X (the NTP-SVM solution to the reported gap).
    nuclear_norm : float
        ‖L‖_*, an upper bound on the optimal value.
    lower_bound : float
        The certified lower bound on ‖L^mm‖_* from the repaired dual.
    gap : float
        (nuclear_norm − lower_bound) / nuclear_norm.
    status : str
        ``optimal`` (gap and residual tolerances met), ``iteration_limit`` or ``time_limit``.
    iterations : int
    seconds : float
        Wall time of the iterations (device synchronised), excluding setup.
    device : str
    history : dict of str to ndarray
        One entry per convergence check: ``iteration``, ``seconds``, ``primal_residual``,
        ``dual_residual`` (both relative), ``rho``, ``nuclear_norm``, ``lower_bound``, ``gap``
        (NaN where the gap was not evaluated at that check).
    extrapolations_rejected : int
        Anderson steps dropped by the safeguard (:class:`Anderson`); 0 without acceleration.
    """

    L: np.ndarray
    nuclear_norm: float
    lower_bound: float
    gap: float
    status: str
    iterations: int
    seconds: float
    device: str
    history: dict[str, np.ndarray] = field(default_factory=dict)
    extrapolations_rejected: int = 0


def resolve_device(device: str, entries: int) -> torch.device:
    """``auto`` → CUDA for problems of at least :data:`AUTO_CUDA_MIN_ENTRIES` entries, else CPU.

    Raises
    ------
    ValueError
        For ``cuda`` without a CUDA device, or an unknown name (the caller turns this into a
        :class:`~ntpgeom.errors.UserError`; this module imports only torch and numpy).
    """
    if device == "auto":
        use_cuda = torch.cuda.is_available() and entries >= AUTO_CUDA_MIN_ENTRIES
        return torch.device("cuda" if use_cuda else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but torch sees no CUDA device "
                             f"(torch {torch.__version__}); use device=cpu or auto")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; choose from auto, cpu, cuda")


# --- the three ADMM operators --------------------------------------------------------------------

def project_constraints(Y: torch.Tensor, support: torch.Tensor, n_in: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean projection of each row of Y (m × V) onto C_j, in O(V log V) per row.

    For a level t the nearest point of C_j sets the support to t and clips the rest at t − 1, at
    squared distance φ(t) = Σ_{S_j}(y_z − t)² + Σ_{v∉S_j}(u_v − t)₊², u = y + 1. φ is convex with
    φ'(t)/2 = |S_j| t − Σ_{S_j} y_z − Σ_v (u_v − t)₊. With t_k the mean of the support values and
    the k largest u (k = 0 … V − |S_j|), Σ_{top k}(u − t) ≤ Σ_v (u_v − t)₊ shows t_k ≤ t*, and
    t_k = t* for k = #{u_v > t*}: so t* = max_k t_k ("water-filling"), one sort and a cumsum.

    Parameters
    ----------
    Y : tensor (m, V)
    support : bool tensor (m, V)
        ``support[j, z]`` iff z ∈ S_j.
    n_in : tensor (m,)
        |S_j| as floats (≥ 1).
    """
    total_in = torch.where(support, Y, 0.0).sum(dim=1)
    # In-support entries sort last (−inf); their cumsums give t_k = −inf, never the max.
    u = torch.where(support, -math.inf, Y + 1.0)
    top = _sort_descending(u)
    k = torch.arange(1, Y.shape[1] + 1, dtype=Y.dtype, device=Y.device)
    t_k = (total_in[:, None] + torch.cumsum(top, dim=1)) / (n_in[:, None] + k)
    t = torch.maximum(total_in / n_in, t_k.max(dim=1).values)
    return torch.where(support, t[:, None], torch.minimum(Y, t[:, None] - 1.0))


def _sort_descending(u: torch.Tensor) -> torch.Tensor:
    """The rows of u sorted in descending order, as a new tensor (u may be overwritten).

    On the CPU, numpy's row sort is 5–8x faster than ``torch.sort`` (m × V = 400 × 104: 0.18 vs
    1.5 ms; 3000 × 500: 16 vs 82 ms, one thread), and it was the largest single cost of an ADMM
    iteration. Both return the same values in the same order, so the projection is bit-identical.
    """
    if u.device.type != "cpu":
        return torch.sort(u, dim=1, descending=True).values
    neg = u.neg_().numpy()  # −u ascending = u descending; −(−inf) = +inf still sorts last
    neg.sort(axis=1)
    return torch.from_numpy(neg).neg_()


def _gram_eigh(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Eigen-decomposition of the smaller Gram of Z: ZᵀZ (V × V) if m ≥ V, else ZZᵀ (m × m).

    ``eigh`` of the Gram is 3–6x faster than ``svd`` of Z (baselines.md). Squaring the condition
    number costs accuracy only for singular values below ~1e-8 σ_max, which thresholding zeroes.
    """
    tall = Z.shape[0] >= Z.shape[1]
    G = Z.mT @ Z if tall else Z @ Z.mT
    lam, Q = torch.linalg.eigh(G)
    return lam, Q, tall


def singular_value_threshold(Z: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SVT_τ(Z) = U diag((σ − τ)₊) Vᵀ, the prox of τ‖·‖_* (Cai, Candès & Shen 2010).

    Computed as Z M with M = Q diag((1 − τ/σ)₊) Qᵀ from the Gram ZᵀZ = Q diag(σ²) Qᵀ (or M Z
    for wide Z), two GEMMs and one small ``eigh``. Returns the result and the shrunk singular
    values (σ − τ)₊ (so ‖SVT_τ(Z)‖_* is free).
    """
    lam, Q, tall = _gram_eigh(Z)
    sigma = lam.clamp_min(0.0).sqrt()
    # (1 − τ/σ)₊ is 0 wherever σ ≤ τ, so tiny σ never divide.
    factor = torch.where(sigma > tau, 1.0 - tau / sigma.clamp_min(tau), 0.0)
    M = (Q * factor) @ Q.mT
    return (Z @ M if tall else M @ Z), (sigma - tau).clamp_min(0.0)


# --- the solver ----------------------------------------------------------------------------------

def solve_admm(support: np.ndarray, *, device: str = _OPTIONS.device,
               gap_tol: float = SvmConfig.gap_tol, residual_tol: float = _OPTIONS.residual_tol,
               max_iter: int = _OPTIONS.max_iter, time_limit: float | None = SvmConfig.time_limit,
               check_every: int = _OPTIONS.check_every, rho: float | None = None,
               relax: float = 1.8, init: str = "centered_support",
               float32_until: float | None = _OPTIONS.float32_until, anderson: int | None = None,
               log_every_seconds: float = 10.0) -> AdmmResult:
    """Solve the NTP-SVM (``docs/paper.md`` §1.5) to a certified relative duality gap.

    Parameters
    ----------
    support : bool ndarray, shape (V, m)
        S_{zj} = 1 iff token z is in context j's support. Every column needs ≥ 1 support token,
        and some column an out-of-support token (the caller checks).
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where to iterate; see :func:`resolve_device`.
    gap_tol : float
        Stop when (‖X‖_* − lower bound)/‖X‖_* ≤ ``gap_tol`` ...
    residual_tol : float
        ... and the relative primal residual ‖L − X‖/‖X‖ and dual residual ρ‖X − X_prev‖/‖ρU‖ are
        both ≤ ``residual_tol`` (the gap bounds the objective, these bound the iterate's motion).
    max_iter : int
    time_limit : float or None
        Seconds; stop with status ``time_limit`` after this long.
    check_every : int
        Residuals, ρ balancing and the stopping test run every this many iterations: each check
        syncs the host with the device, which dominates small problems on a GPU.
    rho : float or None
        Initial penalty; default 10/‖S̄‖_2, so that the first threshold 1/ρ is a tenth of S̄'s
        largest singular value. Adapted by residual balancing (Boyd et al. 2011, §3.4.1).
    relax : float
        Over-relaxation α ∈ (0, 2); 1.8 took 26% fewer iterations than 1 on r104x400, 5% on
        r200x1000 (same certified gap).
    init : {"centered_support", "random"}
        Starting point X₀: S̄ (feasible, and already optimal for k-subset tables) or standard
        normal entries, seed 0 (used by the tests, so that the k-subset check exercises the
        iterations; note Π_C(0) = S̄, so a zero start would not).
    float32_until : float or None
        If > 0, iterate in float32 until both relative residuals are ≤ this (or have not fallen
        for 3 checks), then in float64 to the end; the certificate is only ever taken in float64,
        on a float64 feasible iterate, so the result is as certified as a float64-only run. A
        float32 iteration costs half as much on the CPU (3000 × 500: 92 vs 180 ms; 400 × 104:
        1.9 vs 3.9 ms), and 1e-5 left the iteration count unchanged on r104x400 and r500x3000
        (1e-6 added 30% on r104x400: float32 stalls). 0: float64 throughout. None (default):
        :data:`FLOAT32_UNTIL` on the CPU, 0 on CUDA (not measured there).
    anderson : int or None
        Memory of the Anderson acceleration (:class:`Anderson`); 0 runs plain ADMM; None
        (default): :data:`ANDERSON_MEMORY`, which also says what it saves.
    log_every_seconds : float
        Interval of the progress log lines (INFO).

    Returns
    -------
    AdmmResult
    """
    if check_every < 1:
        raise ValueError("check_every must be >= 1")
    if anderson is None:
        anderson = ANDERSON_MEMORY
    if anderson < 0:
        raise ValueError("anderson must be >= 0 (0 disables the acceleration)")
    S = np.asarray(support, dtype=bool)
    V, m = S.shape
    dev = resolve_device(device, V * m)
    if float32_until is None:
        float32_until = FLOAT32_UNTIL if dev.type == "cpu" else 0.0
    t_setup = time.perf_counter()
    supp = torch.as_tensor(np.ascontiguousarray(S.T), device=dev)  # (m, V)
    n_in = supp.sum(dim=1).to(DTYPE)
    # Start at S̄ = (I − 11ᵀ/V) S: feasible (margin exactly 1, §1.7) and the closed form
    # for k-subset tables, so those converge in a handful of iterations.
    S_bar = supp.to(DTYPE)
    S_bar = S_bar - S_bar.mean(dim=1, keepdim=True)
    if init == "centered_support":
        X = S_bar
    elif init == "random":
        gen = torch.Generator(device="cpu").manual_seed(0)
        X = torch.randn(S_bar.shape, generator=gen, dtype=DTYPE).to(dev)
    else:
        raise ValueError(f"unknown init {init!r}; choose from centered_support, random")
    U = torch.zeros_like(X)
    low_precision = float32_until > 0
    n_in64 = n_in
    if low_precision:
        X, U, n_in = X.float(), U.float(), n_in.float()
    stall, best_res = 0, math.inf
    accel = Anderson(anderson, X) if anderson else None
    if rho is None:
        rho = 10.0 / max(float(torch.linalg.matrix_norm(S_bar, 2)), 1e-12)
    log.info("admm: V=%d, m=%d on %s, gap_tol=%.1e, residual_tol=%.1e, rho0=%.3g", V, m, dev,
             gap_tol, residual_tol, rho)

    hist: dict[str, list[float]] = {k: [] for k in (
        "iteration", "seconds", "primal_residual", "dual_residual", "rho", "nuclear_norm",
        "lower_bound", "gap")}
    status, it = "iteration_limit", 0
    upper = lower = gap = math.nan
    # Every repaired dual bounds ‖L^mm‖_* from below, so the best one so far is kept.
    best_lower = -math.inf
    duals: deque[tuple[float, torch.Tensor]] = deque(maxlen=3)  # (ρ, U) of the last iterations
    _sync(dev)
    start = time.perf_counter()
    last_log = start
    for it in range(1, max_iter + 1):
        L, _ = singular_value_threshold(X - U, 1.0 / rho)
        check = it % check_every == 0 or it == max_iter
        X_prev = X
        # Over-relaxation (Boyd et al. 2011, §3.4.3): L̂ = αL + (1 − α)X in place of L. U stays
        # ρ⁻¹ × a normal vector of C at X, so the dual certificate is unaffected.
        # lerp(X, L, α) = X + α(L − X) = αL + (1 − α)X in one pass; W − X = U + L̂ − X.
        W = L + U if relax == 1.0 else torch.lerp(X_prev, L, relax).add_(U)
        if accel is not None:
            # The residual of the current point X_prev + U: T(W) − W = α(L − X_prev).
            W = accel.step(W, torch.sub(L, X_prev).mul_(relax))
        X = project_constraints(W, supp, n_in)
        U = W.sub_(X)
        duals.append((rho, U))
        if not check:
            continue
        # One host sync for the four norms.
        r, s, nx, nu = torch.stack([torch.linalg.vector_norm(L - X),
                                    torch.linalg.vector_norm(X - X_prev),
                                    torch.linalg.vector_norm(X),
                                    torch.linalg.vector_norm(U)]).tolist()
        r_rel = r / max(nx, 1e-300)
        s_rel = rho * s / max(rho * nu, 1e-300)
        # The gap costs an SVD and an eigh: evaluate it once the residuals say it may pass,
        # and every 10th check for the history.
        want_gap = (r_rel <= residual_tol and s_rel <= residual_tol) or it % (10 * check_every) == 0
        if low_precision:
            want_gap = False
            stall = stall + 1 if max(r_rel, s_rel) >= best_res else 0
            best_res = min(best_res, max(r_rel, s_rel))
            if max(r_rel, s_rel) <= float32_until or stall >= 3:
                low_precision = False
                X, U, n_in = X.double(), U.double(), n_in64
                duals.clear()
                if accel is not None:
                    rejected = accel.rejected
                    accel = Anderson(anderson, X)
                    accel.rejected = rejected
                log.info("admm: float64 from iteration %d (residuals %.1e, %.1e)", it, r_rel,
                         s_rel)
        if want_gap:
            upper, lower = certificate(X, duals, supp, n_in)
            best_lower = lower = max(lower, best_lower)
            gap = (upper - lower) / upper
        elapsed = time.perf_counter() - start
        nan = math.nan
        row = (it, elapsed, r_rel, s_rel, rho, *((upper, lower, gap) if want_gap else (nan,) * 3))
        for key, value in zip(hist, row, strict=True):
            hist[key].append(float(value))
        if want_gap and gap <= gap_tol and r_rel <= residual_tol and s_rel <= residual_tol:
            status = "optimal"
            break
        if time_limit is not None and elapsed > time_limit:
            status = "time_limit"
            break
        if time.perf_counter() - last_log >= log_every_seconds:
            last_log = time.perf_counter()
            log.info("admm: it %d, %.1f s, primal %.2e, dual %.2e, rho %.3g, last gap %.2e", it,
                     elapsed, r_rel, s_rel, rho, gap)
        # Residual balancing: keep the two relative residuals within 10x of each other; U is the
        # *scaled* dual (Y/ρ), so it rescales with ρ.
        if r_rel > 10 * s_rel or s_rel > 10 * r_rel:
            scale = 2.0 if r_rel > 10 * s_rel else 0.5
            rho *= scale
            U = U / scale
            if accel is not None:  # a new ρ is a new map T: the old differences do not apply
                accel.reset()
    if low_precision:  # stopped while still in float32: certify a float64 feasible point
        X = project_constraints(X.double(), supp, n_in64)
        duals = deque([(rho, U.double())])
        n_in = n_in64
    _sync(dev)
    seconds = time.perf_counter() - start
    if status != "optimal":
        # The final certificate, whatever happened at the last check.
        upper, lower = certificate(X, duals, supp, n_in)
        lower = max(lower, best_lower)
        gap = (upper - lower) / upper
        log.warning("admm: stopped by %s after %d iterations (%.1f s) at certified gap %.2e > %.1e",
                    status, it, seconds, gap, gap_tol)
    else:
        log.info("admm: optimal after %d iterations, %.2f s (setup %.2f s): ‖L‖_* = %.10g, "
                 "certified gap %.2e%s", it, seconds, start - t_setup, upper, gap,
                 f" ({accel.rejected} extrapolations rejected)" if accel is not None else "")
    return AdmmResult(L=X.T.cpu().numpy().copy(), nuclear_norm=upper, lower_bound=lower, gap=gap,
                      status=status, iterations=it, seconds=seconds, device=str(dev),
                      history={k: np.asarray(v, dtype=float) for k, v in hist.items()},
                      extrapolations_rejected=accel.rejected if accel is not None else 0)


def project_feasible(L: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Π_C(L) for L (V × m): the nearest exactly feasible matrix (repairs a solver's ~eps
    constraint violations before the nuclear norm is certified as an upper bound)."""
    supp = torch.as_tensor(np.ascontiguousarray(np.asarray(support, dtype=bool).T))
    n_in = supp.sum(dim=1).to(DTYPE)
    Y = torch.as_tensor(np.ascontiguousarray(L.T), dtype=DTYPE)
    return project_constraints(Y, supp, n_in).T.numpy().copy()


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
