"""Fused attention on the GPU against its CPU twin (B=2, T=3, d=2; simulated unless
GRAPHNET_REAL_GPU=1), and one attention program on device="cuda" against device="cpu"."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture2]


@pytest.fixture
def r():
    return np.random.default_rng(0)


@pytest.mark.parametrize("causal", [False, True])
def test_forward_and_backward(K, C, r, causal):
    q, k, v = f32(r, 2, 3, 2), f32(r, 2, 3, 2), f32(r, 2, 3, 2)
    y, a = check(K, C, "attention", q, k, v, causal)
    if causal:
        assert np.all(a[:, 0, 1:] == 0)
    g = f32(r, *y.shape)
    check(K, C, "attention_grad", g, q, k, v, a, 0.5)
    check(K, C, "attention_grad", g, q, k, v, a, None, (False, True, False))


def test_heads_and_unequal_lengths(K, C, r):
    # (batch, heads, T, d) with Tq=2, Tk=3 and a value depth of 1, custom scale
    q, k, v = f32(r, 2, 2, 2, 2), f32(r, 2, 2, 3, 2), f32(r, 2, 2, 3, 1)
    y, a = check(K, C, "attention", q, k, v, True, 0.7)
    check(K, C, "attention_grad", f32(r, *y.shape), q, k, v, a, 0.7)
    with pytest.raises(ValueError, match="queries have depth 2 but keys 3"):
        K.attention(K.asarray(q), K.asarray(f32(r, 2, 2, 3, 3)), K.asarray(v))


def test_heads_last(K, C, r):
    # (batch, T, heads, d): Tq=2, Tk=3, 2 heads, causal
    q, k, v = f32(r, 2, 2, 2, 2), f32(r, 2, 3, 2, 2), f32(r, 2, 3, 2, 1)
    y, a = check(K, C, "attention", q, k, v, True, None, heads_last=True)
    check(K, C, "attention_grad", f32(r, *y.shape), q, k, v, a, None, heads_last=True)


def test_program_on_cuda_matches_cpu(r):
    with gn.Graph("attn"):
        x = gn.Input((3, 2), name="x")
        Wq, Wk, Wv = (gn.Parameter(f32(r, 2, 2), name=n) for n in ("Wq", "Wk", "Wv"))
        y = gn.attention(x @ Wq, x @ Wk, x @ Wv, causal=True)
        loss = gn.mean(y * y)
    feeds = {x: f32(r, 2, 3, 2)}
    want, gw = gn.compile(loss, wrt=[Wq, Wk, Wv])(feeds)
    got, gg = gn.compile(loss, wrt=[Wq, Wk, Wv], device="cuda")(feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gg, gw):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_multi_head_attention_layer_on_cuda_matches_cpu(r):
    # projections, head split (reshape + transpose), fused node, merge: forward and gradients
    with gn.Graph("mha"):
        x = gn.Input((3, 4), name="x")
        layer = gn.layers.MultiHeadAttention(2, 2, seed=0)
        loss = gn.mean(layer(x, use_causal_mask=True) ** 2.0)
    feeds = {x: f32(r, 2, 3, 4)}
    want, gw = gn.compile(loss, wrt=layer.weights)(feeds)
    got, gg = gn.compile(loss, wrt=layer.weights, device="cuda")(feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gg, gw):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
