"""The geometry stage's store: every metric of :mod:`ntpgeom.metrics.core` at every checkpoint.

:func:`run_geometry` evaluates one training run against the theory's predictions (each solver's
L^mm, S̄ and the raw support S; paper §1.4–1.8, §3) and returns the
``results/{dataset}/geometry/{model}/{run}.zarr`` dataset (``scripts/geometry.py`` reads and
writes the stores).
Variable names and meanings: :mod:`ntpgeom.metrics.vocabulary`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ntpgeom.config import from_section, to_section
from ntpgeom.errors import UserError
from ntpgeom.metrics.chance import CHANCE_DRAWS, CHANCE_SEED, chance_variables, onehot_chance
from ntpgeom.metrics.core import (
    COMPARE_METRICS,
    attribute_gap,
    compare,
    compare_contexts,
    effective_rank,
    etf_distance,
    group_cosines,
    logit_metrics,
    numerical_rank,
    relative_offset,
    singular_values,
    subspace_collapse,
    twonn_dimension,
)
from ntpgeom.metrics.vocabulary import describe
from ntpgeom.store import provenance
from ntpgeom.theory.reference import RANK_RTOL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeometryConfig:
    """The ``geometry`` section: how a run is compared with the predictions.

    The defaults stated here are the section's (``schemas/geometry.schema.yaml`` documents the same
    values; ``tests/test_config.py`` proves they agree) and :func:`run_geometry`'s.
    """

    knn_k: int = 5  # neighbours of the k-NN overlap (capped at m − 1, V − 1)
    rank_rtol: float = RANK_RTOL  # singular values ≤ rank_rtol × σ_1 count as zero in rank(L_k)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "geometry") -> GeometryConfig:
        """From a ``geometry`` section (missing keys: the defaults; unknown keys: refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)



def targets_from_stores(reference, svm: Mapping[str, Any], S: np.ndarray) -> dict[str, dict]:
    """The predictions a run is compared with: each solver's L^mm, S̄, and the raw support S.

    ``svm`` maps a solver name to its ``svm/{solver}.zarr`` dataset. The raw support is compared
    as the paper's cos(S,S) and cos(Sᵀ,Sᵀ) proxies (paper §1.8): word z is the row S_z (m-vector),
    context j the column S_{:,j} (V-vector), written as factors W = S (V × m), H = S (V × m).
    """
    out: dict[str, dict] = {}
    for solver, ds in svm.items():
        out[str(solver)] = {"L": ds["L_mm"].values, "W": ds["W_mm"].values,
                            "H": ds["H_mm"].values}
    out["S_bar"] = {"L": reference["S_bar"].values, "W": reference["W_bar"].values,
                    "H": reference["H_bar"].values}
    S = np.asarray(S, dtype=float)
    out["S"] = {"W": S, "H": S}
    return out


def run_geometry(train, table, reference, svm: Mapping[str, Any], *,
                 knn_k: int = GeometryConfig.knn_k, rank_rtol: float = GeometryConfig.rank_rtol):
    """The geometry dataset of one training run: every metric of :mod:`ntpgeom.metrics.core`
    at every checkpoint.

    Parameters
    ----------
    train : xarray.Dataset
        ``results/{dataset}/train/{model}/{run}.zarr`` (``W`` (step, token, dim), ``H`` (step,
        dim, context), ``logits`` (step, token, context)).
    table : ntpgeom.data.table.Table
        The run's table (S, P, π, H).
    reference : xarray.Dataset
        ``reference.zarr`` (``L_star``, ``S_bar``, ``W_bar``, ``H_bar``).
    svm : mapping of str to xarray.Dataset
        ``svm/{solver}.zarr`` per solver (``L_mm``, ``W_mm``, ``H_mm``).
    knn_k : int
        Neighbours of the k-NN overlap.
    rank_rtol : float
        Relative cut of the numerical rank.

    Returns
    -------
    xarray.Dataset
        Dims ``step`` (the run's checkpoints), ``target`` (solver names, ``S_bar``, ``S``) and
        ``sv`` (singular-value index); per-step metrics on ``step``, comparisons on
        (``step``, ``target``), the targets' own numbers on ``target``; the run's dense
        ``trace_*`` series are carried over on ``trace_step``. A table with latent attributes
        (``context_label``, the one-hot regime) adds ``attribute_gap`` and ``etf_distance`` on
        ``step`` and their chance levels (scalars). A transformer run with ``H_layer`` (step,
        layer, dim, context) adds the context-side comparisons at every depth on (``step``,
        ``layer``, ``target``), see :func:`layer_metrics`.
    """
    start = time.perf_counter()
    train = train.transpose("step", "token", "dim", "context", ...)
    tokens = [str(t) for t in train["token"].values]
    contexts = [str(c) for c in train["context"].values]
    if tokens != list(table.tokens) or contexts != list(table.contexts):
        raise UserError("geometry: the training store's token/context labels differ from the "
                        "table's; rebuild the training run from this table")
    S, P, pi, entropy = table.S(), table.P(), table.pi, table.entropy
    L_star = reference["L_star"].transpose("token", "context").values
    targets = targets_from_stores(reference.transpose("token", "rank", "context", ...),
                                  {k: v.transpose("token", "rank", "context", ...)
                                   for k, v in svm.items()}, S)
    names = list(targets)
    steps = train["step"].values
    n_sv = min(table.V, table.m)

    per_step: dict[str, list[float]] = {k: [] for k in (
        "ce_minus_entropy", "norm_W", "norm_H", "norm_L", "nuclear_norm_L", "rank_L",
        "effective_rank_L", "in_support_error", "relative_offset", "twonn_W", "twonn_H",
        "collapse_H", "cos_within_groups_H", "cos_across_groups_H")}
    labels = table.context_label
    if labels is not None:
        per_step.update(attribute_gap=[], etf_distance=[])
    spectra = np.zeros((len(steps), n_sv))
    comparisons = {k: np.full((len(steps), len(names)), np.nan) for k in COMPARE_METRICS}
    for i in range(len(steps)):
        W = train["W"].values[i].astype(float)          # (V, d)
        H = train["H"].values[i].astype(float)          # (d, m)
        L = train["logits"].values[i].astype(float)     # (V, m)
        sigma = singular_values(L)
        spectra[i] = sigma[:n_sv]
        for key, value in logit_metrics(L, W, H, P=P, pi=pi, entropy=entropy, L_star=L_star,
                                        S=S).items():
            per_step[key].append(value)
        per_step["nuclear_norm_L"].append(float(sigma.sum()))
        per_step["rank_L"].append(numerical_rank(sigma, rank_rtol))
        per_step["effective_rank_L"].append(effective_rank(sigma))
        per_step["relative_offset"].append(relative_offset(L, L_star))
        per_step["twonn_W"].append(twonn_dimension(W))
        per_step["twonn_H"].append(twonn_dimension(H.T))
        per_step["collapse_H"].append(subspace_collapse(H, S))
        within, across = group_cosines(H, S)
        per_step["cos_within_groups_H"].append(within)
        per_step["cos_across_groups_H"].append(across)
        if labels is not None:
            per_step["attribute_gap"].append(attribute_gap(H, labels))
            per_step["etf_distance"].append(etf_distance(H))
        for t, name in enumerate(names):
            for key, value in compare(L, W, H, targets[name], S=S, knn_k=knn_k).items():
                comparisons[key][i, t] = value

    target_sv = np.full((len(names), n_sv), np.nan)
    target_numbers: dict[str, list[float]] = {k: [] for k in (
        "target_nuclear_norm", "target_rank", "target_twonn_W", "target_twonn_H",
        "target_collapse_H", "target_cos_within_groups_H", "target_cos_across_groups_H")}
    for t, name in enumerate(names):
        tgt = targets[name]
        if "L" in tgt:
            sigma = singular_values(tgt["L"])
            target_sv[t] = sigma[:n_sv]
            target_numbers["target_nuclear_norm"].append(float(sigma.sum()))
            target_numbers["target_rank"].append(numerical_rank(sigma, rank_rtol))
        else:
            target_numbers["target_nuclear_norm"].append(float("nan"))
            target_numbers["target_rank"].append(float("nan"))
        target_numbers["target_twonn_W"].append(twonn_dimension(tgt["W"]))
        target_numbers["target_twonn_H"].append(twonn_dimension(tgt["H"].T))
        target_numbers["target_collapse_H"].append(subspace_collapse(tgt["H"], S))
        within, across = group_cosines(tgt["H"], S)
        target_numbers["target_cos_within_groups_H"].append(within)
        target_numbers["target_cos_across_groups_H"].append(across)
    layers = layer_metrics(train, targets, names, labels)
    # Chance levels depend on the shapes and the target only: once per target, not per step.
    chance = chance_variables(
        lambda name: lambda L, W, H: compare(L, W, H, targets[name], S=S, knn_k=knn_k),
        names, table.V, int(train.sizes["dim"]), table.m)

    data: dict[str, Any] = {k: ("step", np.asarray(v, dtype=float)) for k, v in per_step.items()}
    data["singular_values_L"] = (("step", "sv"), spectra)
    data.update({k: (("step", "target"), v) for k, v in comparisons.items()})
    data.update({k: ("target", np.asarray(v, dtype=float)) for k, v in target_numbers.items()})
    data["target_singular_values"] = (("target", "sv"), target_sv)
    data.update({k: ("target", v) for k, v in chance.items()})
    if labels is not None:
        data.update({k: ((), v) for k, v in onehot_chance(labels, int(train.sizes["dim"])).items()})
    data.update(layers)
    for name in train.data_vars:
        if str(name).startswith("trace_"):
            data[str(name)] = ("trace_step", train[name].values)
    coords: dict[str, Any] = {"step": steps, "target": np.array(names, dtype=object),
                              "sv": np.arange(n_sv)}
    if "trace_step" in train.coords:
        coords["trace_step"] = train["trace_step"].values
    if layers:
        coords["layer"] = np.array([str(x) for x in train["layer"].values], dtype=object)
    ds = xr.Dataset(data, coords=coords)
    describe(ds)
    options = GeometryConfig(knn_k=knn_k, rank_rtol=rank_rtol)
    ds.attrs = provenance(
        options.to_dict(), wall_seconds=time.perf_counter() - start,
        # The run's identity, carried over from its training store (figures match runs by it).
        dataset=str(train.attrs.get("dataset", "")), model=str(train.attrs.get("model", "")),
        run=str(train.attrs.get("run", "")), entropy=entropy, knn_k=int(knn_k),
        rank_rtol=float(rank_rtol), solvers=[str(s) for s in svm],
        norm_L_star=float(np.linalg.norm(L_star)), seed=train.attrs.get("seed"),
        chance_draws=CHANCE_DRAWS, chance_seed=CHANCE_SEED)
    log.info("geometry: %d checkpoints × %d targets; final CE − H = %.3g, dist_L(%s) = %.3g",
             len(steps), len(names), per_step["ce_minus_entropy"][-1], names[0],
             comparisons["dist_L"][-1, 0])
    return ds




def layer_metrics(train, targets: Mapping[str, Mapping[str, np.ndarray]], names: list[str],
                  labels: np.ndarray | None) -> dict[str, Any]:
    """The H-side metrics at every transformer layer: ``dist_gram_H_layer`` and
    ``corr_cos_H_layer`` on (step, layer, target) (:func:`~ntpgeom.metrics.core.compare_contexts`,
    the same function as the last layer's ``dist_gram_H``/``corr_cos_H``), and with latent
    attributes ``attribute_gap_layer``/``etf_distance_layer`` on (step, layer).

    Empty for a run without ``H_layer`` (the UFM, older stores). Every layer has the width d of
    H, so the chance levels are the final layer's (``corr_cos_H_chance`` …).
    """
    if "H_layer" not in train:
        return {}
    HL = train["H_layer"].transpose("step", "layer", "dim", "context").values
    n_steps, n_layers = HL.shape[:2]
    out = {k: np.full((n_steps, n_layers, len(names)), np.nan)
           for k in ("dist_gram_H_layer", "corr_cos_H_layer")}
    onehot = {k: np.full((n_steps, n_layers), np.nan)
              for k in ("attribute_gap_layer", "etf_distance_layer")} if labels is not None else {}
    for i in range(n_steps):
        for j in range(n_layers):
            H = HL[i, j].astype(float)                  # (d, m)
            for t, name in enumerate(names):
                for key, value in compare_contexts(H, targets[name]).items():
                    out[f"{key}_layer"][i, j, t] = value
            if onehot:
                onehot["attribute_gap_layer"][i, j] = attribute_gap(H, labels)
                onehot["etf_distance_layer"][i, j] = etf_distance(H)
    data: dict[str, Any] = {k: (("step", "layer", "target"), v) for k, v in out.items()}
    data.update({k: (("step", "layer"), v) for k, v in onehot.items()})
    return data
