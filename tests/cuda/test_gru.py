"""The GRU kernels on the GPU (simulated) against their CPU twins, and a fused GRU program on
device="cuda" against device="cpu"."""

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


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_forward_and_backward(K, C, r, reset_after):
    x, W, Uk = f32(r, B, T, N_IN), f32(r, N_IN, 3 * U), f32(r, U, 3 * U)
    b = f32(r, 2, 3 * U) if reset_after else f32(r, 3 * U)
    h0 = f32(r, B, U)
    y, state = check(K, C, "gru_forward", x, W, Uk, b, h0, reset_after=reset_after)
    g = f32(r, *y.shape)
    check(K, C, "gru_backward", g, state, W, Uk, reset_after=reset_after, need_h0=True)
    check(K, C, "gru_backward", g, state, W, Uk, reset_after=reset_after, need_dx=False,
          bias=False)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_mask(K, C, r, reset_after):
    # recurrent dropout's mask: U reads h_{t-1} m (r h_{t-1} m before); dmask, dh0 through it
    x, W, Uk = f32(r, B, T, N_IN), f32(r, N_IN, 3 * U), f32(r, U, 3 * U)
    b = f32(r, 2, 3 * U) if reset_after else f32(r, 3 * U)
    h0, m = f32(r, B, U), f32(r, B, U, lo=0.0, hi=2.0)
    y, state = check(K, C, "gru_forward", x, W, Uk, b, h0, reset_after=reset_after, mask=m)
    check(K, C, "gru_backward", f32(r, *y.shape), state, W, Uk, reset_after=reset_after,
          need_h0=True, need_mask=True)


def test_gru_without_bias_and_other_activations(K, C, r):
    x, W, Uk = f32(r, B, T, N_IN), f32(r, N_IN, 3 * U), f32(r, U, 3 * U)
    for after in (True, False):
        y, state = check(K, C, "gru_forward", x, W, Uk, None, None, "relu", "tanh", after)
        check(K, C, "gru_backward", f32(r, *y.shape), state, W, Uk, "relu", "tanh", after,
              bias=False)


def test_fused_gru_program_matches_cpu():
    rng = np.random.default_rng(1)
    with gn.Graph("gru"):
        x = gn.Input((T, N_IN), name="x")
        h0 = gn.Input((U,), name="h0")
        W = gn.Parameter(rng.normal(size=(N_IN, 3 * U)).astype(np.float32), name="W")
        Uk = gn.Parameter(rng.normal(size=(U, 3 * U)).astype(np.float32) * 0.5, name="U")
        b = gn.Parameter(rng.normal(size=(2, 3 * U)).astype(np.float32), name="b")
        m = gn.Input((U,), name="mask")  # a recurrent mask, its gradient wanted too
        loss = gn.mean(gn.gru(x, W, Uk, b, h0, mask=m) ** 2)
    feeds = {x: rng.normal(size=(B, T, N_IN)).astype(np.float32),
             h0: rng.normal(size=(B, U)).astype(np.float32),
             m: rng.uniform(0.0, 2.0, size=(B, U)).astype(np.float32)}
    wrt = [W, Uk, b, x, h0, m]
    cpu_val, cpu_grads = gn.compile(loss, wrt=wrt)(feeds)
    val, grads = gn.compile(loss, wrt=wrt, device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        assert isinstance(g, np.ndarray) and g.shape == cg.shape
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)


def test_bidirectional_gru_program_matches_cpu():
    # go_backwards reverses time with a negative-step slice: on the device too
    from graphnet.layers import GRU, Bidirectional

    rng = np.random.default_rng(2)
    with gn.Graph("bigru"):
        x = gn.Input((T, N_IN), name="x")
        bi = Bidirectional(GRU(U, return_sequences=True, reset_after=False, seed=1))
        loss = gn.mean(bi(x) ** 2)
    feeds = {x: rng.normal(size=(B, T, N_IN)).astype(np.float32)}
    wrt = [*bi.weights, x]
    cpu_val, cpu_grads = gn.compile(loss, wrt=wrt)(feeds)
    val, grads = gn.compile(loss, wrt=wrt, device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)
