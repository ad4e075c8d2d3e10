"""Tests of ntpgeom.train.model: shapes, the paper's architecture arithmetic, and the attention
against a
hand-written reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from ntpgeom.train.model import (
    UFM,
    Attention,
    Transformer,
    TransformerConfig,
    UFMConfig,
    build_model,
)


def _transformer(d: int = 24, n_heads: int = 3, m: int = 5, T: int = 4, seed: int = 0,  # noqa: N803
                 **kw) -> Transformer:
    torch.manual_seed(seed)
    ids = torch.randint(0, 9, (m, T))
    return Transformer(TransformerConfig(vocab_in=9, V=7, context_length=T, d=d, n_heads=n_heads,
                                         **kw), ids)


def test_ufm_orientation_and_logits():
    torch.manual_seed(0)
    model = UFM(UFMConfig(m=5, V=7, d=3))
    assert model.W.shape == (7, 3) and model.H().shape == (3, 5)
    logits, h = model()
    # Rows are contexts inside the module; L = W H in the paper's orientation.
    torch.testing.assert_close(logits.t(), model.W @ model.H(), rtol=0, atol=1e-6)
    rows = torch.tensor([4, 0, 4])
    torch.testing.assert_close(model(rows)[1], h[rows], rtol=0, atol=0)


def test_ufm_default_init_is_the_paper_codes():
    # nn.Linear's default: U(±1/√fan_in), fan_in = m for H and d for W.
    torch.manual_seed(0)
    model = UFM(UFMConfig(m=400, V=104, d=128))
    assert model.H().abs().max() <= 1 / math.sqrt(400)
    assert model.W.abs().max() <= 1 / math.sqrt(128)
    assert model.H().abs().max() > 0.9 / math.sqrt(400)  # not a narrower init


def test_paper_transformer_parameter_count():
    # d = 128, 6 heads of (128 // 6 // 2)·2 = 20: q, k, v are 128→120, wo 120→128; SwiGLU 512.
    model = build_model("transformer", m=3, V=104, d=128, context_ids=torch.zeros(3, 5, dtype=int),
                        vocab_in=200)
    assert model.layers[0].attention.wq.weight.shape == (120, 128)
    assert model.layers[0].attention.wo.weight.shape == (128, 120)
    assert model.layers[0].feed_forward.w1.weight.shape == (512, 128)
    per_layer = 4 * 128 * 120 + 3 * 128 * 512 + 2 * 128
    expected = 200 * 128 + 4 * per_layer + 128 + 104 * 128
    assert sum(p.numel() for p in model.parameters()) == expected
    assert len(model.layers) == 4


def test_transformer_init_scales_residual_projections():
    model = build_model("transformer", m=3, V=50, d=128, context_ids=torch.zeros(3, 5, dtype=int),
                        vocab_in=300)
    std = 0.02 / math.sqrt(2 * 4)
    w3 = torch.cat([b.feed_forward.w3.weight.flatten() for b in model.layers])
    w1 = torch.cat([b.feed_forward.w1.weight.flatten() for b in model.layers])
    # 4·512·128 samples: the sample std is within ~1% of the true one.
    assert w3.std().item() == pytest.approx(std, rel=0.02)
    assert w1.std().item() == pytest.approx(0.02, rel=0.02)


def _reference_attention(att: Attention, x: torch.Tensor) -> torch.Tensor:
    """Causal multi-head attention written out with explicit loops and a mask."""
    B, T, _ = x.shape
    nh, hd = att.n_heads, att.head_dim
    q, k, v = (w(x).view(B, T, nh, hd) for w in (att.wq, att.wk, att.wv))
    out = torch.zeros(B, T, nh, hd, dtype=x.dtype)
    for t in range(T):
        for head in range(nh):
            scores = torch.einsum("bd,bsd->bs", q[:, t, head], k[:, : t + 1, head]) / math.sqrt(hd)
            out[:, t, head] = torch.einsum("bs,bsd->bd", scores.softmax(-1), v[:, : t + 1, head])
    return att.wo(out.reshape(B, T, nh * hd))


def test_attention_matches_reference_and_is_causal():
    model = _transformer().double()
    att = model.layers[0].attention
    x = torch.randn(4, 4, 24, dtype=torch.float64)
    # float64: both are the same sums in another order, so agreement to ~1e-15 relative.
    torch.testing.assert_close(att(x), _reference_attention(att, x), rtol=1e-12, atol=1e-12)
    y = x.clone()
    y[:, -1] += 1.0  # change the last position only: earlier outputs must not move
    torch.testing.assert_close(att(y)[:, :-1], att(x)[:, :-1], rtol=0, atol=1e-14)


def test_transformer_features_are_last_position_final_norm():
    model = _transformer().double()
    ids = model.context_ids
    x = model.tok_embeddings(ids)
    for layer in model.layers:
        x = layer(x)
    rms = x[:, -1].pow(2).mean(-1, keepdim=True).add(model.config.norm_eps).sqrt()
    expected = x[:, -1] / rms * model.norm.weight
    torch.testing.assert_close(model.features(), expected, rtol=1e-12, atol=1e-12)
    logits, h = model(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(logits, F.linear(h, model.W), rtol=0, atol=0)
    torch.testing.assert_close(h, model.features()[[2, 2, 0]], rtol=1e-12, atol=1e-12)
    assert model.H().shape == (24, 5) and model.W.shape == (7, 24)


def test_transformer_reads_word_order():
    # No positional encoding, but causal attention makes the last output order-dependent.
    model = _transformer(m=2, T=3)
    model.context_ids.copy_(torch.tensor([[1, 2, 3], [2, 1, 3]]))
    h = model.features()
    assert not torch.allclose(h[0], h[1], atol=1e-4)


def test_layer_states_are_the_last_position_after_each_block_and_the_norm():
    model = _transformer(n_layers=3).double()
    states = model.layer_states()
    assert states.shape == (5, 5, 24)
    assert model.layer_names == ["embed", "block1", "block2", "block3", "norm"]
    x = model.tok_embeddings(model.context_ids)
    torch.testing.assert_close(states[0], x[:, -1], rtol=0, atol=0)
    for i, layer in enumerate(model.layers):
        x = layer(x)
        torch.testing.assert_close(states[i + 1], x[:, -1], rtol=0, atol=0)
    # The last entry is the context embedding itself, bit for bit.
    torch.testing.assert_close(states[-1], model.features(), rtol=0, atol=0)
    torch.testing.assert_close(model.layer_states(torch.tensor([3, 1]))[:, 0], states[:, 3],
                               rtol=0, atol=0)
