"""The normalization kernels on the GPU (simulated) against their CPU twins, and a program
with both layers' ops on device="cuda" against device="cpu" (moving statistics included)."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import _same, check, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture3]


@pytest.fixture
def r():
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape, k", [((3, 4), 4), ((2, 2, 3), 6), ((9, 2), 2)])
def test_layer_norm_forward_and_backward(K, C, r, shape, k):
    x = f32(r, *shape)
    gamma, beta = f32(r, *shape[len(shape) - (1 if k == shape[-1] else 2):]), None
    beta = f32(r, *gamma.shape)
    y, mean, rstd = check(K, C, "layer_norm", x, gamma, beta, 1e-3)
    check(K, C, "layer_norm_grad", f32(r, *y.shape), x, gamma, mean, rstd)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (2, 2, 2, 3), (0, 3)])
def test_batch_norm_forward_backward_and_moving_statistics(K, C, r, shape, training):
    x, gamma, beta = f32(r, *shape, lo=-2, hi=3), f32(r, 3), f32(r, 3)
    mm, mv = f32(r, 3), f32(r, 3, lo=0.5, hi=2.0)
    cm, cv = mm.copy(), mv.copy()
    want = C.batch_norm(x, gamma, beta, cm, cv, 1e-3, 0.9, training)
    dm, dv = K.asarray(mm), K.asarray(mv)
    got = K.batch_norm(K.asarray(x), K.asarray(gamma), K.asarray(beta), dm, dv, 1e-3, 0.9,
                       training)
    _same([K.to_host(a) for a in got], list(want))
    _same([K.to_host(dm), K.to_host(dv)], [cm, cv])  # updated in place (or kept) alike
    assert np.array_equal(cm, mm) != (training and shape[0] > 0)
    _, mean, rstd = want
    check(K, C, "batch_norm_grad", f32(r, *shape), x, gamma, mean, rstd, training)


def _program(rng, device):
    with gn.Graph("norm"):
        x = gn.Input((2, 3), name="x")
        ps = {n: gn.Parameter(rng.normal(size=s).astype(np.float32), name=n)
              for n, s in [("lg", (3,)), ("lb", (3,)), ("bg", (3,)), ("bb", (3,))]}
        mm = gn.Parameter(np.zeros(3, np.float32), name="mm", trainable=False)
        mv = gn.Parameter(np.ones(3, np.float32), name="mv", trainable=False)
        h = gn.layer_norm(x, ps["lg"], ps["lb"])
        y = gn.batch_norm(h * 2.0 + 1.0, ps["bg"], ps["bb"], mm, mv, momentum=0.8)
        loss = gn.mean(y * y * gn.constant(np.arange(3, dtype=np.float32)))
    train = gn.compile(loss, wrt=list(ps.values()), device=device, training=True)
    infer = gn.compile(y, device=device)
    return x, train, infer, mm, mv


def test_program_on_cuda_matches_cpu():
    feeds = np.random.default_rng(1).normal(size=(4, 2, 3)).astype(np.float32)
    res = {}
    for dev in ("cpu", "cuda"):
        x, train, infer, mm, mv = _program(np.random.default_rng(0), dev)
        out = [train({x: feeds}) for _ in range(2)]
        res[dev] = (out, infer({x: feeds}), mm.value, mv.value)
    (c_out, c_y, c_mm, c_mv), (g_out, g_y, g_mm, g_mv) = res["cpu"], res["cuda"]
    for (cl, cg), (gl, gg) in zip(c_out, g_out):
        np.testing.assert_allclose(gl, cl, rtol=1e-5, atol=1e-6)
        for a, b in zip(gg, cg):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_y, c_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_mm, c_mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_mv, c_mv, rtol=1e-5, atol=1e-6)
    assert not np.allclose(c_mv, 1.0)  # two training steps moved them
