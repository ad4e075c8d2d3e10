"""ntpgeom.theory.conic, the one cvxpy layer: the anchor form against a brute-force reading of the
constraints, the options (one default for both callers) and the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ntpgeom.errors import UserError
from ntpgeom.theory import conic


def test_anchor_constraints_are_the_paper_constraints():
    """Each index pair is (z, j) vs (a_j, j) with a_j the lowest support token, column-major, and
    together they are exactly: every support token vs the anchor, every off-support token vs it."""
    rng = np.random.default_rng(0)
    S = rng.random((5, 7)) < 0.5
    S[rng.integers(0, 5, 7), np.arange(7)] = True  # every context has a support token
    V, m = S.shape
    eq, eq_anchor, out, out_anchor = conic.anchor_constraints(S)
    want_eq, want_out = set(), set()
    for j in range(m):
        a = min(z for z in range(V) if S[z, j])
        for z in range(V):
            if S[z, j] and z != a:
                want_eq.add((z + V * j, a + V * j))
            elif not S[z, j]:
                want_out.add((z + V * j, a + V * j))
    assert set(zip(eq.tolist(), eq_anchor.tolist(), strict=True)) == want_eq
    assert set(zip(out.tolist(), out_anchor.tolist(), strict=True)) == want_out
    assert len(eq) == len(want_eq) and len(out) == len(want_out)


def test_anchor_form_holds_exactly_at_a_feasible_point():
    import cvxpy as cp

    S = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=bool)
    L = np.where(S, 2.0, 0.0)  # equal on supports, margin 2 everywhere
    cons = conic.anchor_form(cp.Constant(L), S, 1)
    assert len(cons) == 2 and all(c.value() for c in cons)
    cons = conic.anchor_form(cp.Constant(L), S, 3)  # margin 3 is not met
    assert cons[0].value() and not cons[-1].value()


def test_one_scs_default_for_svm_and_linear():
    schema = yaml.safe_load((Path(__file__).parents[1] / "schemas/svm.schema.yaml").read_text())
    assert schema["properties"]["scs"]["properties"]["max_iters"]["default"] == conic.SCS_MAX_ITERS
    scs = conic.solver_options("scs", eps=1e-8)
    assert scs == {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": conic.SCS_MAX_ITERS,
                   "linear_solver": "qdldl"}
    assert conic.solver_options("scs", eps=1e-8, time_limit=5)["time_limit_secs"] == 5.0
    mosek = conic.solver_options("mosek", eps=1e-9, time_limit=2)["mosek_params"]
    assert mosek["MSK_DPAR_INTPNT_CO_TOL_REL_GAP"] == 1e-9
    assert mosek["MSK_DPAR_OPTIMIZER_MAX_TIME"] == 2.0
    assert conic.solver_options("clarabel", eps=1e-9)["tol_feas"] == 1e-9


def test_unknown_solver_is_one_line():
    with pytest.raises(UserError, match=r"^linear.solvers: unknown cvxpy solver 'cvx'; choose "
                                        r"from clarabel, scs, mosek, auto$"):
        conic.resolve_solver("cvx", where="linear.solvers", fallback="clarabel",
                             choices=("clarabel", "scs", "mosek"), alternatives="fista")
