"""Pooling on the CUDA backend (simulated) against the CPU kernels, and a whole program."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = pytest.mark.lecture3

# (pool_size, strides, pads): whole windows, overlapping windows with TF "same" pads,
# a stride larger than the window
CASES = [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 1), (1, 1, 1, 1)),
         ((2, 1), (3, 2), (0, 1, 0, 0))]


@pytest.mark.parametrize("pool_size, strides, pads", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d_and_its_gradient_match_cpu(K, C, kind, pool_size, strides, pads):
    r = np.random.default_rng(0)
    x = r.permutation(2 * 5 * 4 * 2).reshape(2, 5, 4, 2).astype(np.float32)  # no ties
    y, arg = check(K, C, "pool2d", x, pool_size, strides, pads, kind, exact=kind == "max")
    g = f32(r, *y.shape)
    check(K, C, "pool2d_grad", g, arg, x.shape, pool_size, strides, pads, kind)


def test_max_ties_pick_the_first_cell_on_both(K, C):
    x = np.ones((1, 2, 2, 1), np.float32)
    check(K, C, "pool2d", x, (2, 2), (2, 2), (0, 0, 0, 0), "max", exact=True)
    _, arg = K.pool2d(K.asarray(x), (2, 2), (2, 2), (0, 0, 0, 0), "max")
    assert K.to_host(arg).ravel().tolist() == [0]


def test_bad_pads_raise_the_cpu_error(K):
    with pytest.raises(ValueError, match="smaller than the pool"):
        K.pool2d(K.asarray(np.zeros((1, 3, 3, 1), np.float32)), (2, 2), (1, 1), (2, 0, 0, 0),
                 "max")


def test_program_on_cuda_matches_cpu():
    r = np.random.default_rng(1)
    with gn.Graph("pool"):
        x = gn.Input((5, 5, 2), name="x")
        W = gn.Parameter(r.normal(size=(2, 3)).astype(np.float32), name="W")
        h = gn.max_pool2d(gn.matmul(x, W), 3, 2, padding="same")
        out = gn.sum(gn.avg_pool2d(h, 2, 1) * h[:, :2, :2, :])
    feeds = {x: r.normal(size=(2, 5, 5, 2)).astype(np.float32)}
    cpu_val, (cpu_dW,) = gn.compile(out, wrt=[W])(feeds)
    val, (dW,) = gn.compile(out, wrt=[W], device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    np.testing.assert_allclose(dW, cpu_dW, rtol=1e-4, atol=1e-6)
