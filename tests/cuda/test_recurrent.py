"""The recurrent kernels on the GPU (simulated) against their CPU twins, and a fused LSTM
program on device="cuda" against device="cpu"."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture2]

B, T, N_IN, U = 2, 3, 2, 3


@pytest.fixture
def r():
    return np.random.default_rng(0)


@pytest.mark.parametrize("activation, with_bias, with_h0",
                         [("tanh", True, True), ("relu", False, False)])
def test_simple_rnn_forward_and_backward(K, C, r, activation, with_bias, with_h0):
    x, W, Uk = f32(r, B, T, N_IN), f32(r, N_IN, U), f32(r, U, U)
    b = f32(r, U) if with_bias else None
    h0 = f32(r, B, U) if with_h0 else None
    y, state = check(K, C, "rnn_forward", x, W, Uk, b, h0, activation)
    g = f32(r, *y.shape)
    check(K, C, "rnn_backward", g, state, W, Uk, activation, bias=with_bias, need_h0=with_h0)
    check(K, C, "rnn_backward", g, state, W, Uk, activation, need_dx=False)


@pytest.mark.parametrize("return_cell", [False, True])
def test_lstm_forward_and_backward(K, C, r, return_cell):
    x, W, Uk, b = f32(r, B, T, N_IN), f32(r, N_IN, 4 * U), f32(r, U, 4 * U), f32(r, 4 * U)
    h0, c0 = (f32(r, B, U), f32(r, B, U)) if return_cell else (None, None)
    y, state = check(K, C, "lstm_forward", x, W, Uk, b, h0, c0, return_cell=return_cell)
    g = f32(r, *y.shape)
    check(K, C, "lstm_backward", g, state, W, Uk, need_h0=return_cell, need_c0=return_cell)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_recurrent_mask(K, C, r, cell):
    # recurrent dropout's mask: U reads h_{t-1} m; the mask's gradient, dh0 through it
    G = 4 if cell == "lstm" else 1
    x, W, Uk, b = f32(r, B, T, N_IN), f32(r, N_IN, G * U), f32(r, U, G * U), f32(r, G * U)
    h0, m = f32(r, B, U), f32(r, B, U, lo=0.0, hi=2.0)
    if cell == "lstm":
        y, state = check(K, C, "lstm_forward", x, W, Uk, b, h0, None, mask=m)
        check(K, C, "lstm_backward", f32(r, *y.shape), state, W, Uk, need_h0=True,
              need_mask=True)
    else:
        y, state = check(K, C, "rnn_forward", x, W, Uk, b, h0, "tanh", mask=m)
        check(K, C, "rnn_backward", f32(r, *y.shape), state, W, Uk, need_h0=True,
              need_mask=True)


def test_lstm_without_bias_and_other_activations(K, C, r):
    x, W, Uk = f32(r, B, T, N_IN), f32(r, N_IN, 4 * U), f32(r, U, 4 * U)
    y, state = check(K, C, "lstm_forward", x, W, Uk, None, None, None, "relu", "tanh")
    check(K, C, "lstm_backward", f32(r, *y.shape), state, W, Uk, "relu", "tanh", bias=False)


def _lstm_program(rng):
    with gn.Graph("lstm"):
        x = gn.Input((T, N_IN), name="x")
        h0 = gn.Input((U,), name="h0")
        m = gn.Input((U,), name="mask")  # a recurrent mask, its gradient wanted too
        W = gn.Parameter(rng.normal(size=(N_IN, 4 * U)).astype(np.float32), name="W")
        Uk = gn.Parameter(rng.normal(size=(U, 4 * U)).astype(np.float32) * 0.5, name="U")
        b = gn.Parameter(rng.normal(size=4 * U).astype(np.float32), name="b")
        c0 = gn.Parameter(rng.normal(size=(B, U)).astype(np.float32), name="c0")
        y = gn.lstm(x, W, Uk, b, h0, c0, return_cell=True, mask=m)
        loss = gn.mean(y * y)
    feeds = {x: rng.normal(size=(B, T, N_IN)).astype(np.float32),
             h0: rng.normal(size=(B, U)).astype(np.float32),
             m: rng.uniform(0.0, 2.0, size=(B, U)).astype(np.float32)}
    return loss, [W, Uk, b, c0, x, h0, m], feeds


def test_fused_lstm_program_matches_cpu():
    loss, wrt, feeds = _lstm_program(np.random.default_rng(1))
    cpu_val, cpu_grads = gn.compile(loss, wrt=wrt)(feeds)
    val, grads = gn.compile(loss, wrt=wrt, device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        assert isinstance(g, np.ndarray) and g.shape == cg.shape
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)
