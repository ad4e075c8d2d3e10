"""Chance levels of the trained-vs-predicted comparisons (issue 14).

A similarity of trained embeddings to a prediction means something only beside what embeddings
with no structure score: the structural correlation of cos(H) with cos(H^mm), over whole matrices
as the paper computes it, is ≈ 0.64 ± 0.04 for random Gaussian H on the grammar data, because both
diagonals are ones. :func:`chance_levels` evaluates a comparison on ``draws`` seeded draws of
random Gaussian embeddings W (V × d), H (d × m) and their logits L = W H, the run's own shapes,
against the same target, and returns each metric's mean and standard deviation over the draws.

Chance depends only on the shapes, the target and the support, never on the training step, so it
is computed once per (target, shape) of a run. The draws are the same for every target (one seed),
so chance levels of different targets are compared on common random numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

#: Draws per chance level: the issue's minimum of 32 puts the standard error of the mean at
#: σ/√32 ≈ 0.18 σ, small against the band (± σ) the figures draw.
CHANCE_DRAWS = 32
CHANCE_SEED = 0


def random_factors(V: int, d: int, m: int, draws: int = CHANCE_DRAWS,  # noqa: N803
                   seed: int = CHANCE_SEED):
    """Yield ``draws`` (L, W, H) with W, H i.i.d. standard Gaussian, V × d and d × m, L = W H.

    One generator seeded with ``seed``: the sequence is reproducible and the same for every caller
    with the same shapes.
    """
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        W = rng.standard_normal((V, d))
        H = rng.standard_normal((d, m))
        yield W @ H, W, H


def chance_levels(metric: Callable[[np.ndarray, np.ndarray, np.ndarray], Mapping[str, float]],
                  V: int, d: int, m: int, *, draws: int = CHANCE_DRAWS,  # noqa: N803
                  seed: int = CHANCE_SEED) -> dict[str, tuple[float, float]]:
    """name → (mean, standard deviation) of ``metric(L, W, H)`` over random Gaussian factors.

    Parameters
    ----------
    metric : callable
        (L (V × m), W (V × d), H (d × m)) → {name: value}: the comparison with one target, e.g.
        ``lambda L, W, H: compare(L, W, H, target, S=S)``.
    V, d, m : int
        The run's shapes: tokens, embedding width, contexts.
    draws, seed : int
        Number of draws (≥ 2) and the seed of :func:`random_factors`.

    Returns
    -------
    dict
        Population standard deviation (ddof = 0) over the draws; NaN draws (a metric undefined for
        that target) are left out, and a metric NaN in every draw gets (NaN, NaN).
    """
    if draws < 2:
        raise ValueError(f"chance_levels: need at least 2 draws for a spread; got {draws}")
    values: dict[str, list[float]] = {}
    for L, W, H in random_factors(V, d, m, draws, seed):
        for name, value in metric(L, W, H).items():
            values.setdefault(name, []).append(float(value))
    out = {}
    for name, vals in values.items():
        x = np.asarray(vals)
        x = x[np.isfinite(x)]
        out[name] = (float(x.mean()), float(x.std())) if x.size else (float("nan"),
                                                                       float("nan"))
    return out


def chance_variables(metric_for: Callable[[str], Callable[..., Mapping[str, float]]],
                     targets: list[str], V: int, d: int, m: int, *,  # noqa: N803
                     draws: int = CHANCE_DRAWS, seed: int = CHANCE_SEED) -> dict[str, np.ndarray]:
    """``<name>_chance`` and ``<name>_chance_std`` for every metric, one value per target.

    ``metric_for(target)`` is the comparison with that target (as for :func:`chance_levels`);
    the arrays follow the order of ``targets`` (a geometry store's ``target`` dim).
    """
    levels = [chance_levels(metric_for(t), V, d, m, draws=draws, seed=seed) for t in targets]
    names = list(dict.fromkeys(k for lv in levels for k in lv))
    out: dict[str, np.ndarray] = {}
    for name in names:
        out[f"{name}_chance"] = np.array([lv.get(name, (np.nan, np.nan))[0] for lv in levels])
        out[f"{name}_chance_std"] = np.array([lv.get(name, (np.nan, np.nan))[1]
                                              for lv in levels])
    return out


def onehot_chance(labels: np.ndarray, d: int, *, draws: int = CHANCE_DRAWS,
                  seed: int = CHANCE_SEED) -> dict[str, float]:
    """``attribute_gap`` and ``etf_distance`` (:mod:`ntpgeom.metrics.core`) of random Gaussian
    context embeddings H (d × m, m = len(labels)): ``<name>_chance`` and ``<name>_chance_std``.

    The band within which a gap is initialization noise (semantics.md check 16). For i.i.d.
    isotropic columns the pairwise cosines are uncorrelated with variance 1/d (flipping h_j flips
    cos(h_i, h_j) alone), so the gap's σ is √((1/n_share + 1/n_none)/d): the test's closed form.
    """
    from ntpgeom.metrics.core import attribute_gap, etf_distance

    m = len(labels)
    levels = chance_levels(lambda L, W, H: {"attribute_gap": attribute_gap(H, labels),
                                            "etf_distance": etf_distance(H)},
                           1, d, m, draws=draws, seed=seed)
    return {f"{name}{suffix}": value for name, (mean, std) in levels.items()
            for suffix, value in (("_chance", mean), ("_chance_std", std))}
