"""The key numbers the report quotes, read from the stores: per dataset (:func:`dataset_numbers`),
per linear-study embedding (:func:`linear_numbers`) and per semantics run
(:func:`semantics_numbers`). :mod:`ntpgeom.plots.report` lays them out as HTML tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ntpgeom.metrics.claims import run_claims, svm_claims
from ntpgeom.theory.reference import RANK_RTOL, nuclear_norm, reldir


def dataset_numbers(table, reference, svm: Mapping[str, Any],
                    runs: Mapping[str, Any]) -> dict[str, Any]:
    """The key numbers of one dataset.

    Parameters
    ----------
    table : ntpgeom.data.table.Table
    reference : xarray.Dataset
        ``reference.zarr`` (``S_bar``).
    svm : mapping of str to xarray.Dataset
        ``svm/{solver}.zarr`` per solver (``L_mm``, attrs ``nuclear_norm``, ``rank``).
    runs : mapping of str to xarray.Dataset
        ``"{model}/{run}"`` → the run's geometry store.

    Returns
    -------
    dict
        ``n, m, V, entropy, nuclear_norm_S_bar, rank_S_bar``; ``solvers``: per solver
        ``nuclear_norm`` (‖L^mm‖_*, recomputed from L_mm), ``dist_to_S_bar``
        (‖L^mm/‖L^mm‖ − S̄/‖S̄‖‖_F), ``rank``; ``runs``: per run the final step and, at it,
        CE − H, ‖P_F(L) − L*‖_F, ‖L − L*‖/‖L‖ and the direction distances of L and P_F⊥(L) to
        each solver's L^mm and to S̄ (raw and centered, ``dist_L_centered:{target}``);
        ``similarity``: per run, target and metric of :data:`SIMILARITIES` the last step's value,
        its chance level and the chance's σ; ``claims``: per run its claims 1–6
        (:func:`ntpgeom.metrics.claims.run_claims`, against the first solver), and ``svm_claims``:
        claim 7 per solver.
    """
    S_bar = reference["S_bar"].transpose("token", "context").values
    out: dict[str, Any] = {"n": table.n, "m": table.m, "V": table.V, "entropy": table.entropy,
                           "nuclear_norm_S_bar": nuclear_norm(S_bar),
                           "rank_S_bar": int(reference.sizes.get("rank", 0)),
                           "solvers": {}, "runs": {}, "similarity": {}, "claims": {},
                           "svm_claims": svm_claims(table, reference, svm)}
    for solver, ds in svm.items():
        L_mm = ds["L_mm"].transpose("token", "context").values
        out["solvers"][solver] = {"nuclear_norm": nuclear_norm(L_mm),
                                  "dist_to_S_bar": reldir(L_mm, S_bar),
                                  "rank": int(ds.attrs.get("rank", ds.sizes.get("rank", 0)))}
    for name, g in runs.items():
        last = g.isel(step=-1)
        row = {"step": int(last["step"]),
               "ce_minus_entropy": float(last["ce_minus_entropy"]),
               "in_support_error": float(last["in_support_error"]),
               "relative_offset": float(last["relative_offset"])}
        for target in [str(t) for t in g["target"].values if str(t) != "S"]:
            row[f"dist_L:{target}"] = float(last["dist_L"].sel(target=target))
            row[f"dist_L_perp:{target}"] = float(last["dist_L_perp"].sel(target=target))
            if "dist_L_centered" in g:
                row[f"dist_L_centered:{target}"] = float(last["dist_L_centered"].sel(
                    target=target))
        out["runs"][name] = row
        out["similarity"][name] = {
            str(t): {v: (float(last[v].sel(target=t)), float(g[f"{v}_chance"].sel(target=t)),
                         float(g[f"{v}_chance_std"].sel(target=t)))
                     for v in SIMILARITIES if v in g and f"{v}_chance" in g}
            for t in g["target"].values}
        if svm:
            out["claims"][name] = run_claims(g, next(iter(svm)))
    return out


#: The similarities the report prints beside their chance levels (each ``<name>_chance`` in the
#: geometry store), with their column headers.
SIMILARITIES = {"corr_cos_H": "corr cos(H)", "corr_cos_H_offdiag": "corr cos(H) off-diag",
                "corr_cos_W": "corr cos(W)", "corr_cos_W_offdiag": "corr cos(W) off-diag",
                "cka_H": "CKA H", "cka_W": "CKA W", "rsa_H": "RSA H", "rsa_W": "RSA W",
                "knn_H": "k-NN H", "knn_W": "k-NN W"}


def linear_numbers(reference, runs: Mapping[str, Any]) -> dict[str, Any]:
    """The key numbers of one (dataset, embedding) of the linear-model study.

    Parameters
    ----------
    reference : xarray.Dataset
        ``linear/{embedding}/reference.zarr`` (``H_bar``, ``W_star``, ``W_mm``,
        ``W_mm_by_solver``; attrs of the feasibility solves: ``compatible``,
        ``compatibility_residual``, ``separable``, ``margin``, ``statuses``, ``max_violation``).
    runs : mapping of str to xarray.Dataset
        optimizer name → ``linear/{embedding}/train/{optimizer}.zarr``.

    Returns
    -------
    dict
        ``d, m, V, n, entropy``; ``rank_H_bar`` and ``overparameterized`` (d > m and rank(H̄) = m,
        Lemma 1) recomputed from ``H_bar``; the checks' verdicts with their residual and margin γ*
        (from the solves' attrs); ``norm_W_star``, ``norm_W_mm`` from the stored matrices;
        ``solvers``: per solver its status, ‖W^mm‖ and worst constraint violation;
        ``solver_agreement`` = max over solver pairs of ‖W_a − W_b‖_F/‖W_b‖_F, recomputed from
        ``W_mm_by_solver`` (NaN when not separable); ``runs``: per optimizer its step size, last
        step and, there, CE − H, ‖W‖_F, ``corr_W`` ⟨Ŵ, Ŵ^mm⟩, ``corr_W_offset`` (that of W − W*)
        and ``in_support_error_W`` ‖P_F(W) − W*‖_F.
    """
    from ntpgeom.theory.linear import overparameterized

    a = reference.attrs
    H_bar = reference["H_bar"].transpose("dim", "context").values
    d, m = H_bar.shape
    over, rank = overparameterized(H_bar, a.get("rank_rtol", RANK_RTOL))
    by_solver = reference["W_mm_by_solver"].transpose("solver", "token", "dim").values
    names = [str(s) for s in reference["solver"].values]
    statuses = list(a.get("statuses", [])) or [a.get("status", "")] * len(names)
    violations = list(a.get("max_violation", [])) or [float("nan")] * len(names)
    finite = [W for W in by_solver if np.isfinite(W).all()]
    agreement = (max((np.linalg.norm(A - B) / np.linalg.norm(B) for i, A in enumerate(finite)
                      for j, B in enumerate(finite) if i != j), default=0.0)
                 if finite else float("nan"))
    W_mm = reference["W_mm"].values
    out: dict[str, Any] = {
        "d": d, "m": m, "V": int(reference.sizes["token"]), "n": a.get("n"),
        "entropy": a.get("entropy"), "rank_H_bar": rank, "overparameterized": over,
        "compatible": bool(a.get("compatible")),
        "compatibility_residual": float(a.get("compatibility_residual", np.nan)),
        "separable": bool(a.get("separable")), "margin": float(a.get("margin", np.nan)),
        "stuck_constraints": a.get("stuck_constraints"),
        "margin_constraints": a.get("margin_constraints"),
        "norm_W_star": float(np.linalg.norm(reference["W_star"].values)),
        "norm_W_mm": float(np.linalg.norm(W_mm)) if np.isfinite(W_mm).all() else float("nan"),
        "solver_agreement": float(agreement), "solvers": {}, "runs": {}}
    for name, W, status, violation in zip(names, by_solver, statuses, violations, strict=False):
        out["solvers"][name] = {"status": status, "violation": float(violation),
                                "norm": float(np.linalg.norm(W)) if np.isfinite(W).all()
                                else float("nan")}
    for name, ds in runs.items():
        last = ds.isel(step=-1)
        out["runs"][name] = {
            "optimizer": ds.attrs.get("optimizer_name", ds.attrs.get("optimizer", name)),
            "lr": ds.attrs.get("lr"), "step": int(ds["trace_step"].values[-1]),
            "ce_minus_entropy": float(ds["trace_ce_minus_entropy"].values[-1]),
            "norm_W": float(ds["trace_norm_W"].values[-1]),
            "corr_W": float(last["corr_W"]), "corr_W_offset": float(last["corr_W_offset"]),
            "in_support_error_W": float(last["in_support_error_W"])}
    return out


def semantics_numbers(ds) -> dict[str, Any]:
    """A semantics store's report numbers: per block of S̄ its σ, size and learning steps, whether
    they are non-decreasing as σ decreases, and the words of each cluster at the largest k."""
    s = ds.sel(target="S_bar")
    blocks = s["block"].values
    rows = []
    for b in np.unique(blocks[blocks >= 0]):
        k = int(np.flatnonzero(blocks == b)[0])
        row = {"sigma": float(s["sigma"].values[k]), "size": int((blocks == b).sum()),
               "learn_step": float(s["learn_step"].values[k])}
        if "L_mm" in ds["target"].values:
            row["learn_step_L_mm"] = float(ds["learn_step"].sel(target="L_mm").values[k])
        rows.append(row)
    steps = np.array([r["learn_step"] for r in rows])
    learned = steps[np.isfinite(steps)]
    tokens = [str(t) for t in ds["token"].values]
    ids = ds["orthant_W"].values[-1]
    counts = np.bincount(ids)
    clusters = [{"id": int(c), "size": int(counts[c]),
                 "words": [tokens[z] for z in np.flatnonzero(ids == c)]}
                for c in np.argsort(-counts, kind="stable")]
    out = {"blocks": rows, "ordered": bool((np.diff(learned) >= 0).all()),
           "unlearned": int((~np.isfinite(steps)).sum()), "theta": ds.attrs.get("theta"),
           "k": int(ds["k"].values[-1]), "k_used": int(ds["k_used"].values[-1]),
           "clusters": clusters,
           "poles": [(str(a), str(b)) for a, b in zip(ds["pole_pos_W"].values,
                                                      ds["pole_neg_W"].values, strict=True)]}
    if "ari_W" in ds:
        out["ari"] = {name: ds[name].values.tolist()
                      for name in ("ari_W", "ari_W_in_S_bar", "ari_kmeans_W")}
        out["ari_target"] = ds["ari_target_W"].sel(target="S_bar").values.tolist()
        out["resolve"] = [float(v) for v in ds["resolve_step"].values]
    return out
