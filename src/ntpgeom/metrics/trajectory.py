"""Per-step metrics of the runs the studies train: grid points (UFM/transformer) and linear runs.

The same functions of :mod:`ntpgeom.metrics.core` as the geometry stage, under the same names
(:mod:`ntpgeom.metrics.vocabulary`), for the few quantities a grid point or a linear run keeps at
each recorded step. Pure arrays in, arrays out; the studies build their stores from these.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ntpgeom.metrics.core import (
    correlation,
    logit_metrics,
    numerical_rank,
    rank_limited_distance,
    singular_values,
)
from ntpgeom.theory.linear import project_F_W
from ntpgeom.theory.reference import RANK_RTOL, reldir

#: The per-step names :func:`run_metrics` returns (besides ``step``, ``loss``, ``dist_L``).
LOGIT_METRICS = ("ce_minus_entropy", "in_support_error", "norm_L", "norm_W", "norm_H")


def run_metrics(run: Mapping[str, np.ndarray], *, S: np.ndarray, P: np.ndarray,  # noqa: N803
                pi: np.ndarray, entropy: float, L_star: np.ndarray,  # noqa: N803
                targets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The geometry of one run at each recorded step (``docs/paper.md`` §3, Metrics).

    Parameters
    ----------
    run : mapping
        ``step`` (k,), ``loss`` (k,), ``W`` (k, V, d), ``H`` (k, d, m); the logits are W H.
    S, P, pi, entropy, L_star
        The table's support, probabilities, context frequencies, entropy and L*.
    targets : mapping of str to ndarray (V, m)
        The predictions whose direction distance ``dist_L`` is recorded, in order.

    Returns
    -------
    dict
        ``step``, ``loss``, each of :data:`LOGIT_METRICS` (k,), ``dist_L`` (k, len(targets)) and
        ``L_final`` (V, m), the logits at the last step.
    """
    out: dict[str, list[float]] = {k: [] for k in LOGIT_METRICS}
    dist = []
    for W, H in zip(run["W"], run["H"], strict=True):
        L = W @ H
        for key, value in logit_metrics(L, W, H, P=P, pi=pi, entropy=entropy, L_star=L_star,
                                        S=S).items():
            out[key].append(value)
        dist.append([reldir(L, T) for T in targets.values()])
    res = {k: np.asarray(v) for k, v in out.items()}
    res["dist_L"] = np.asarray(dist, dtype=float).reshape(len(dist), len(targets))
    res["step"] = np.asarray(run["step"])
    res["loss"] = np.asarray(run["loss"])
    res["L_final"] = run["W"][-1] @ run["H"][-1]
    return res


def target_metrics(targets: Mapping[str, np.ndarray], *, d: int, rank_rtol: float = RANK_RTOL
                   ) -> dict[str, np.ndarray]:
    """Per target T (in order): ``target_rank`` (σ > rank_rtol · σ_1), ``target_nuclear_norm``
    and ``rank_limit``, the distance of T's direction from the nearest rank-d direction."""
    sigmas = [singular_values(T) for T in targets.values()]
    return {"target_rank": np.array([numerical_rank(s, rank_rtol) for s in sigmas]),
            "target_nuclear_norm": np.array([float(s.sum()) for s in sigmas]),
            "rank_limit": np.array([rank_limited_distance(s, d) for s in sigmas])}


def linear_metrics(W_steps: np.ndarray, *, W_star: np.ndarray, W_mm: np.ndarray,  # noqa: N803
                   basis: np.ndarray) -> dict[str, np.ndarray]:
    """Per checkpoint (W_steps: (k, V, d)) of a linear run, the NeurIPS Fig. 3 quantities.

    ``corr_W`` = ⟨W_k/‖W_k‖, W^mm/‖W^mm‖⟩ (→ 1, Thm 2), ``corr_W_offset`` the same for W_k − W*,
    ``in_support_error_W`` = ‖P_F(W_k) − W*‖_F (→ 0) and ``dist_W`` = ‖W_k/‖W_k‖ −
    W^mm/‖W^mm‖‖_F (NaN at W_k = 0). ``basis`` spans F (:class:`ntpgeom.theory.linear.InSupport`).
    """
    Wk = np.asarray(W_steps, dtype=float)
    proj = project_F_W(Wk, basis)
    return {
        "corr_W": np.array([correlation(w, W_mm) for w in Wk]),
        "corr_W_offset": np.array([correlation(w - W_star, W_mm) for w in Wk]),
        "in_support_error_W": np.linalg.norm((proj - W_star).reshape(len(Wk), -1), axis=1),
        "dist_W": np.array([reldir(w, W_mm) if np.linalg.norm(w) > 0 else np.nan for w in Wk]),
    }
