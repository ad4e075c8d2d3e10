"""The ``svm`` config section as frozen dataclasses: :class:`SvmConfig` and its solvers' options.

The defaults stated here are the section's: :func:`ntpgeom.theory.svm.solve`,
:func:`ntpgeom.theory.svm.admm.solve_admm` and ``ntpgeom solve``'s options read them, and
``schemas/svm.schema.yaml`` documents the same values (``tests/test_config.py`` proves they agree).
No torch or cvxpy here: Snakemake imports this module while it parses the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ntpgeom.config import from_section, to_section
from ntpgeom.errors import UserError
from ntpgeom.theory.conic import SCS_MAX_ITERS
from ntpgeom.theory.reference import RANK_RTOL

#: Solver names accepted in ``svm.solvers`` and by ``ntpgeom solve --solver``.
SOLVERS = ("admm", "scs", "mosek", "auto", "closed_form")


@dataclass(frozen=True)
class AdmmOptions:
    """``svm.admm``: options of :func:`ntpgeom.theory.svm.admm.solve_admm`."""

    device: str = "auto"  # auto = CUDA when available and m·V ≥ 1e5, else cpu; or cuda[:N]
    residual_tol: float = 1e-7  # also require relative primal and dual residuals below this
    max_iter: int = 100_000  # iteration cap
    check_every: int = 10  # iterations between convergence checks (each syncs a GPU)
    # Memory of the Anderson acceleration (0 = plain ADMM): r500x3000 takes 180 iterations with
    # 8, ~410 without.
    anderson: int = 8
    float32_until: float | None = None  # float32 until the residuals reach this; None = 1e-5 on
    # the CPU, 0 on CUDA (admm.FLOAT32_UNTIL)


@dataclass(frozen=True)
class ScsOptions:
    """``svm.scs``: options of the cvxpy + SCS solver (also used by ``auto``)."""

    eps: float = 1e-8  # SCS eps_abs = eps_rel
    max_iters: int = SCS_MAX_ITERS  # SCS iteration cap (the cvxpy layer's, shared with linear)
    memory_limit_mb: float | None = None  # refuse problems estimated above this (None = available)


@dataclass(frozen=True)
class MosekOptions:
    """``svm.mosek``: options of the cvxpy + MOSEK solver."""

    eps: float = 1e-8  # MOSEK's relative gap and feasibility tolerances
    memory_limit_mb: float | None = None  # refuse problems estimated above this (None = available)


@dataclass(frozen=True)
class SvmConfig:
    """The ``svm`` section: which solvers run and how (``schemas/svm.schema.yaml``)."""

    solvers: tuple[str, ...] = ("admm", "scs")
    gap_tol: float = 1e-8  # admm stops at this certified relative duality gap
    time_limit: float | None = None  # seconds per solve (None = none)
    rank_rtol: float = RANK_RTOL  # singular values ≤ rank_rtol × σ_max are cut from W_mm, H_mm
    admm: AdmmOptions = field(default_factory=AdmmOptions)
    scs: ScsOptions = field(default_factory=ScsOptions)
    mosek: MosekOptions = field(default_factory=MosekOptions)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "svm") -> SvmConfig:
        """From an ``svm`` section (missing keys take the defaults; unknown keys are refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)

    def solve_options(self, solver: str) -> dict[str, Any]:
        """The keyword arguments of :func:`ntpgeom.theory.svm.solve` for one solver (``auto``
        takes the ``scs`` options, ``closed_form`` none).

        Raises
        ------
        UserError
            An unknown solver name.
        """
        if solver not in SOLVERS:
            raise UserError(f"svm.solvers: unknown solver {solver!r}; choose from "
                            f"{', '.join(SOLVERS)}")
        out = {"solver": solver, "gap_tol": self.gap_tol, "time_limit": self.time_limit,
               "rank_rtol": self.rank_rtol}
        per_solver = {"admm": self.admm, "scs": self.scs, "auto": self.scs, "mosek": self.mosek}
        if solver in per_solver:
            out.update(to_section(per_solver[solver]))
        return out
