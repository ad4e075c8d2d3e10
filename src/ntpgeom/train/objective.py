"""The training objective: the NTP cross-entropy over distinct contexts (or per sample) + ridge.

The loss is the NTP cross-entropy over the m distinct contexts (``docs/paper.md`` §1.1):

    CE(W, θ) = −Σ_j π_j Σ_{z∈S_j} P_zj log softmax(W h_θ(x̄_j))_z,

the same function (value and gradient) as the paper code's mean over all n samples, at m/n of the
cost, optionally plus the explicit ridge λ(‖W‖_F² + ‖H‖_F²) of the regularization path (§1.2).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ntpgeom.data.table import Table


def distinct_targets(table: Table) -> np.ndarray:
    """Q = diag(π) Pᵀ, (m, V): the weight of −log softmax(W h_j)_z in the distinct-context CE.

    Σ Q = 1, so CE = −Σ_{j,z} Q_jz log softmax(l_j)_z is a weighted mean like the paper's.
    """
    Q = np.zeros((table.m, table.V))
    Q[table.column, table.indices] = table.pi[table.column] * table.prob
    return Q


def per_sample_rows(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """The n training samples of the paper's code: context index and next token of each, (n,) each.

    Pair (j, z) with count c appears c times; rows are in context-major order.
    """
    return (np.repeat(table.column, table.pair_count), np.repeat(table.indices, table.pair_count))


def distinct_ce(logits: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """CE = −Σ_j π_j Σ_z P_zj log softmax(l_j)_z from logits (m, V) and Q = diag(π) Pᵀ (m, V)."""
    return -(Q * F.log_softmax(logits, dim=-1)).sum()


def per_sample_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper code's loss: mean cross-entropy over the n samples, logits (n, V), targets (n,).

    The code back-propagates the sum and reports sum / n; AdamW is invariant to that scale (up to
    eps), GD is not, so the mean is the form that equals the distinct-context CE.
    """
    return F.cross_entropy(logits, targets)


class Objective(torch.nn.Module):
    """CE (distinct or per-sample form) + λ(‖W‖² + ‖H‖²), and the metrics logged at each step.

    ``forward()`` returns (objective, metrics) with metrics = [CE, ‖W‖_F, ‖H‖_F] (3,), all computed
    at the current parameters, before the update, as one tensor so that a CUDA graph can leave it
    in a static buffer.
    """

    def __init__(self, model: torch.nn.Module, table: Table, form: str, ridge: float, *,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model, self.form, self.ridge = model, form, ridge
        if form == "distinct":
            self.register_buffer("Q", torch.tensor(distinct_targets(table), dtype=dtype))
        else:
            rows, tokens = per_sample_rows(table)
            self.register_buffer("rows", torch.from_numpy(rows))
            self.register_buffer("tokens", torch.from_numpy(tokens))
            # First sample of each context: the distinct embeddings, for ‖H‖ and the ridge.
            first = np.concatenate([[0], np.cumsum(table.count)[:-1]])
            self.register_buffer("first", torch.from_numpy(first.astype(np.int64)))

    def forward(self, ridge: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective, metrics); ``ridge``: a λ that replaces the module's own (a batch's per-run
        λ, :class:`ntpgeom.train.engine.VmapRuns`)."""
        if self.form == "distinct":
            logits, h = self.model()  # (m, V), (m, d)
            ce = distinct_ce(logits, self.Q)
        else:
            logits, h = self.model(self.rows)  # (n, V), (n, d)
            ce = per_sample_ce(logits, self.tokens)
            h = h[self.first]  # (m, d)
        W = self.model.W  # (V, d)
        norm_W2, norm_H2 = W.pow(2).sum(), h.pow(2).sum()
        if ridge is not None:
            objective = ce + ridge * (norm_W2 + norm_H2)
        else:
            objective = ce + self.ridge * (norm_W2 + norm_H2) if self.ridge else ce
        metrics = torch.stack([ce, norm_W2.sqrt(), norm_H2.sqrt()]).detach()
        return objective, metrics
