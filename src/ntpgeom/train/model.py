"""The two models of the paper, all of it in this one file: the NTP-UFM and the 4-layer transformer.

Both map the m distinct contexts of a table to context embeddings H = [h_1 … h_m] ∈ ℝ^{d×m} and
decode them with word embeddings W ∈ ℝ^{V×d} (no bias), so that the logits are L = W H ∈ ℝ^{V×m}
(``docs/paper.md`` §1.2, §2.2). Inside the modules rows are contexts (``(B, d)``, ``(B, V)``),
as torch's layers want; the public accessors :meth:`UFM.H`/:meth:`Transformer.H` and ``W`` return
the paper's orientation.

References
----------
- Zhao, Behnia, Vakilian, Thrampoulidis, "Implicit Geometry of Next-token Prediction", COLM 2024
  (arXiv 2408.15417): the NTP-UFM and the "4 layer Transformer pos off" of its code
  (``YizeZhao/Next_Token_yz``, ``Model.py``), itself llama2.c's model without positional encoding.
- Karpathy, nanoGPT ``model.py`` and llama2.c ``model.py``: the layout of this file.

The end of the file builds a run's model from a table and its :class:`~ntpgeom.train.config.
TrainConfig` (:func:`init_model`: the seeded initial draw every backend of the engine starts from).

Imports torch and numpy only, so that it runs on a GPU machine without the I/O stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch convention)
from torch import nn

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.train.config import DTYPES, TrainConfig

# -----------------------------------------------------------------------------------------------
# NTP-UFM: free context embeddings


@dataclass(frozen=True)
class UFMConfig:
    m: int  # number of distinct contexts: one free embedding h_j per context
    V: int  # next-token vocabulary: one decoder row w_z per token  # noqa: N815
    d: int = 128  # embedding width; the paper's d = 128 (≥ V − 1 = 103, the theorem's condition)


class UFM(nn.Module):
    """Unconstrained features: H (d × m) and W (V × d) are both free parameters (paper §1.2).

    Built as the paper's code builds it, ``Linear(m, d)`` on the one-hot context id followed by
    ``Linear(d, V)``, both without bias, so the initialisation is torch's default
    (Kaiming-uniform, U(±1/√fan_in)): H ~ U(±1/√m), W ~ U(±1/√d).
    """

    def __init__(self, config: UFMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.m, config.d, bias=False)  # weight = H, (d, m)
        self.output = nn.Linear(config.d, config.V, bias=False)  # weight = W, (V, d)

    @property
    def W(self) -> torch.Tensor:  # noqa: N802 (the paper's letter)
        """Word embeddings, (V, d)."""
        return self.output.weight

    def features(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Context embeddings as rows: h_j for j in ``rows`` (all m when None), (B, d).

        Indexing the weight is the one-hot matmul of the paper's code without the zeros.
        """
        H = self.embed.weight  # (d, m)
        return H.t() if rows is None else H.t()[rows]  # (m, d) or (B, d)

    def H(self) -> torch.Tensor:  # noqa: N802
        """All context embeddings in the paper's orientation, (d, m)."""
        return self.features().t()

    def forward(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, V) and features (B, d) of the contexts ``rows`` (all m when None)."""
        h = self.features(rows)  # (B, d)
        return self.output(h), h  # (B, d) @ (d, V) -> (B, V)


# -----------------------------------------------------------------------------------------------
# The transformer: llama2.c without positional encoding, read out at the last position


@dataclass(frozen=True)
class TransformerConfig:
    vocab_in: int  # input vocabulary (the table's input_token coord)
    V: int  # next-token vocabulary, rows of the decoder W  # noqa: N815
    context_length: int  # tokens per context (the paper: 5); attention is causal within it
    d: int = 128  # model width; the paper's "4-layer TF, d = 128"
    n_layers: int = 4  # the paper's 4 layers
    n_heads: int = 6  # the paper's 6 heads; head_dim = (d // n_heads // 2) * 2 = 20 at d = 128
    ffn_hidden: int | None = None  # SwiGLU hidden width; None = 4·d = 512 as in the paper's code
    norm_eps: float = 1e-5  # llama2.c's RMSNorm epsilon

    @property
    def head_dim(self) -> int:
        # llama2.c's arithmetic, kept so the parameter count matches the paper's model: with
        # d = 128 and 6 heads, q/k/v map 128 -> 120 and wo maps 120 -> 128.
        return (self.d // self.n_heads // 2) * 2

    @property
    def hidden(self) -> int:
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.d


class RMSNorm(nn.Module):
    """x / rms(x) · g, the llama norm (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    """Causal multi-head self-attention, no positional encoding (the paper's ``pos_enc="off"``).

    Without positions, causality is what lets the model tell word order apart: position t sees
    only tokens ≤ t, so the last position's output depends on the order of the context.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        assert self.head_dim >= 2, f"d = {config.d} is too narrow for {config.n_heads} heads"
        inner = config.n_heads * config.head_dim
        self.wq = nn.Linear(config.d, inner, bias=False)
        self.wk = nn.Linear(config.d, inner, bias=False)
        self.wv = nn.Linear(config.d, inner, bias=False)
        self.wo = nn.Linear(inner, config.d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape  # batch of contexts, context length, model width d
        q, k, v = (w(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))  # (B, nh, T, hd) each
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))  # (B, T, nh·hd) -> (B, T, d)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) ⊙ w3 x)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.d, config.hidden, bias=False)
        self.w2 = nn.Linear(config.hidden, config.d, bias=False)
        self.w3 = nn.Linear(config.d, config.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, d) -> (B, T, hidden) -> (B, T, d)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.d, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.d, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    """The paper's transformer; h(x̄_j) is the final RMSNorm output at the last position.

    ``context_ids`` (m, T), the table's contexts as input-token ids, is a buffer, so the model
    reads each distinct context's tokens itself and ``forward(rows)`` takes context indices, like
    the UFM. It is not persistent: checkpoints hold parameters only, the table is checked apart.
    """

    def __init__(self, config: TransformerConfig, context_ids: torch.Tensor) -> None:
        super().__init__()
        assert context_ids.ndim == 2 and context_ids.shape[1] == config.context_length, \
            f"context_ids must be (m, {config.context_length}), got {tuple(context_ids.shape)}"
        self.config = config
        self.register_buffer("context_ids", context_ids.long(), persistent=False)
        self.tok_embeddings = nn.Embedding(config.vocab_in, config.d)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d, config.norm_eps)
        self.output = nn.Linear(config.d, config.V, bias=False)  # weight = W, (V, d); untied
        # llama2.c's init: N(0, 0.02) everywhere, and the residual projections scaled down by
        # √(2·n_layers) (GPT-2) so the residual stream's variance does not grow with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("w3.weight", "wo.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def W(self) -> torch.Tensor:  # noqa: N802
        """Word embeddings (the decoder), (V, d)."""
        return self.output.weight

    def _stream(self, rows: torch.Tensor | None) -> Iterator[torch.Tensor]:
        """The residual stream (B, T, d) after the token embedding and after each block."""
        ids = self.context_ids if rows is None else self.context_ids[rows]  # (B, T)
        x = self.tok_embeddings(ids)  # (B, T, d)
        yield x
        for layer in self.layers:
            x = layer(x)  # (B, T, d)
            yield x

    def features(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """h(x̄_j) for j in ``rows`` (all m when None), (B, d)."""
        *_, x = self._stream(rows)  # the last block's output (autograd keeps the rest anyway)
        # Only the last position is read out (the paper's ``if_ar=False``): the context
        # embedding is the final norm of the last position, h = norm(x[:, -1]).
        return self.norm(x[:, -1, :])  # (B, d)

    @property
    def layer_names(self) -> list[str]:
        """Labels of :meth:`layer_states`: ``embed``, ``block1`` … ``block{n}``, ``norm``."""
        return ["embed", *(f"block{i + 1}" for i in range(len(self.layers))), "norm"]

    def layer_states(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The last position's representation at every depth, (n_layers + 2, B, d): after the
        token embedding, after each block, and after the final norm (= :meth:`features`).

        For the geometry at every layer (issue 17); read at checkpoints only, so training's
        forward keeps no intermediate states.
        """
        states = [x[:, -1, :] for x in self._stream(rows)]  # (B, d) each
        return torch.stack([*states, self.norm(states[-1])])

    def H(self) -> torch.Tensor:  # noqa: N802
        """All context embeddings in the paper's orientation, (d, m)."""
        return self.features().t()

    def forward(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, V) and features (B, d) of the contexts ``rows`` (all m when None)."""
        h = self.features(rows)  # (B, d)
        return self.output(h), h  # (B, V)


# -----------------------------------------------------------------------------------------------
# The linear model of the NeurIPS paper: fixed context embeddings, trained decoder


class Linear(nn.Module):
    """Fixed context embeddings H̄ = [h̄_1 … h̄_m] (d × m, a buffer), trained W (V × d) only.

    The setting of Thrampoulidis, "Implicit Optimization Bias of Next-Token Prediction in Linear
    Models" (NeurIPS 2024; ``docs/paper.md`` §1.9): logits W h̄_j, loss convex in W. W starts at
    torch's default ``Linear`` initialisation, U(±1/√d) (the paper's App. A: "random LeCun
    initialization").
    """

    def __init__(self, H_bar: torch.Tensor, V: int) -> None:  # noqa: N803
        super().__init__()
        d, _ = H_bar.shape
        self.register_buffer("H_bar", H_bar.detach().clone())  # (d, m), never trained
        self.output = nn.Linear(d, V, bias=False)  # weight = W, (V, d)

    @property
    def W(self) -> torch.Tensor:  # noqa: N802
        """Word embeddings (decoder rows), (V, d)."""
        return self.output.weight

    def features(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """h̄_j as rows for j in ``rows`` (all m when None), (B, d)."""
        return self.H_bar.t() if rows is None else self.H_bar.t()[rows]

    def H(self) -> torch.Tensor:  # noqa: N802
        """The fixed context embeddings, (d, m)."""
        return self.H_bar

    def forward(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, V) and features (B, d) of the contexts ``rows`` (all m when None)."""
        h = self.features(rows)  # (B, d)
        return self.output(h), h  # (B, d) @ (d, V) -> (B, V)


def build_model(kind: str, *, m: int, V: int, d: int,  # noqa: N803
                context_ids: torch.Tensor | None = None, vocab_in: int | None = None,
                features: torch.Tensor | None = None,
                **transformer: int | float | None) -> UFM | Transformer | Linear:
    """``ufm``, ``transformer`` or ``linear`` for a table of m contexts and V next tokens, width d.

    ``linear`` needs the fixed embeddings ``features`` (d, m).
    The transformer needs ``context_ids`` (m, T) and ``vocab_in`` (default: max id + 1);
    ``transformer`` holds the other :class:`TransformerConfig` fields (``n_layers``, ``n_heads``,
    ``ffn_hidden``, ``norm_eps``).
    """
    if kind == "ufm":
        return UFM(UFMConfig(m=m, V=V, d=d))
    if kind == "transformer":
        assert context_ids is not None, "the transformer reads context_ids"
        if vocab_in is None:
            vocab_in = int(context_ids.max()) + 1 if context_ids.numel() else 1
        config = TransformerConfig(vocab_in=vocab_in, V=V, context_length=context_ids.shape[1],
                                   d=d, **transformer)  # type: ignore[arg-type]
        return Transformer(config, context_ids)
    if kind == "linear":
        assert features is not None and tuple(features.shape) == (d, m), \
            f"linear: features must be (d, m) = ({d}, {m})"
        return Linear(features, V)
    raise ValueError(f"unknown model {kind!r}")


def layer_snapshot(model: nn.Module) -> np.ndarray | None:
    """The transformer's :meth:`Transformer.layer_states` in the paper's orientation, (layers, d,
    m), in the run's dtype; None for a model without layers. Taken at checkpoints only: the
    training step keeps no extra state."""
    if not isinstance(model, Transformer):
        return None
    with torch.no_grad():
        return model.layer_states().transpose(1, 2).detach().cpu().numpy().copy()


# -----------------------------------------------------------------------------------------------
# A run's model from a table and its settings


def check_train_table(table: Table) -> None:
    """Refuse a table with nothing to train on (one line)."""
    if table.m == 0:
        raise UserError("train: the table has no contexts (m = 0); nothing to train on: rebuild "
                        "it with looser selection settings")
    if table.V == 0:
        raise UserError("train: the table has no next tokens (V = 0)")


def check_features(table: Table, config: TrainConfig, features: np.ndarray | None) -> None:
    """The fixed embeddings H̄ (d, m) of the linear model: present exactly when it is trained,
    and the shape of the table and of ``d``."""
    if config.model != "linear":
        assert features is None, "fixed features are for model linear only"
        return
    if features is None:
        raise UserError("train.model linear: the fixed context embeddings H̄ are missing")
    shape = tuple(np.shape(features))
    if shape != (config.d, table.m):
        raise UserError(f"train.model linear: the embeddings are {shape[0]} × {shape[1]} but d = "
                        f"{config.d} and the table has m = {table.m} contexts; they must be "
                        "d × m: set d to the embeddings' width or use embeddings of this table")
    if not np.isfinite(features).all():
        raise UserError("train.model linear: the embeddings contain NaN or inf")


def init_model(table: Table, config: TrainConfig, device: torch.device,
               features: np.ndarray | None = None) -> nn.Module:
    """The run's model at its initial draw: seeded by ``config.seed`` alone, without touching the
    caller's RNG (the only randomness of full-batch training), then moved to device and dtype."""
    dtype = DTYPES[config.dtype]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        extra = {}
        if config.model == "transformer":
            extra = {"n_layers": config.n_layers, "n_heads": config.n_heads,
                     "ffn_hidden": config.ffn_hidden}
        fixed = torch.as_tensor(features, dtype=dtype) if features is not None else None
        model = build_model(config.model, m=table.m, V=table.V, d=config.d,
                            context_ids=torch.from_numpy(table.context_ids),
                            vocab_in=max(len(table.input_tokens), 1), features=fixed, **extra)
        if config.init_scale is not None:
            small_init(model, config.init_scale)
    return model.to(device=device, dtype=dtype)


@torch.no_grad()
def small_init(model: nn.Module, scale: float) -> None:
    """Redraw the factors of L = W H with entries of RMS ``scale`` (in place, from torch's RNG).

    UFM: W and H i.i.d. N(0, scale²). Transformer: the decoder W ~ N(0, scale²) and the final
    RMSNorm's gain set to ``scale``: the norm's output has unit RMS whatever the weights below
    it, so its gain is what sets the size of h(x̄) (the interior keeps llama2.c's draw, which
    the network needs to pass signal). Linear model: W only (H̄ is fixed). Small ``scale``
    makes L = W H start near 0, where the CE gradient is −M₀ (semantics.md §2.1).
    """
    if isinstance(model, UFM):
        nn.init.normal_(model.embed.weight, mean=0.0, std=scale)
    elif isinstance(model, Transformer):
        model.norm.weight.fill_(scale)
    nn.init.normal_(model.output.weight, mean=0.0, std=scale)
