"""Dropout: identity at inference; in training about `rate` zeros, survivors scaled by
1/(1 - rate), the backward pass reusing the forward mask, and seeds that repeat."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.dropout import dropout as dropout_kernel
from graphnet.testing import check_gradients

pytestmark = pytest.mark.lecture1


def _run(x, rate, training, seed=None, prog_seed=0, calls=1, dtype="float32"):
    """Outputs of `calls` successive forward calls of dropout(x) and d sum(y) / dx."""
    with gn.Graph():
        p = gn.Parameter(x, dtype=dtype)
        y = gn.dropout(p, rate, seed=seed)
        loss = gn.sum(y)
    prog = gn.compile([loss, y], wrt=[p], training=training, seed=prog_seed)
    runs = []
    for _ in range(calls):
        (_, yv), grads = prog({})
        runs.append((yv, grads))
    return runs


def test_identity_at_inference(rng):
    x = rng.normal(size=(8, 16)).astype(np.float32)
    (y, (g,)), = _run(x, 0.5, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(g, np.ones_like(x))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_training_drops_about_rate_and_rescales(rate, rng):
    x = rng.uniform(0.5, 1.5, size=(100, 100)).astype(np.float32)
    (y, (g,)), = _run(x, rate, training=True)
    kept = y != 0
    assert abs(1 - kept.mean() - rate) < 0.02  # 10^4 draws: 3 sigma is below 0.015
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    # backward uses the same mask: d sum(y) / dx = mask / (1 - rate)
    np.testing.assert_allclose(g, kept / np.float32(1 - rate), rtol=1e-6)


def test_gradient_check_with_a_fixed_seed(rng):
    # seed= fixes the mask, so the many forward calls of finite differences see one function
    x = rng.normal(size=(3, 4))
    (g,) = check_gradients(lambda t: gn.dropout(t, 0.5, seed=7), x, training=True)
    assert 0 < np.count_nonzero(g) < g.size  # some elements were dropped, some kept


def test_masks_change_per_call_but_repeat_per_program_seed(rng):
    x = np.ones((64, 64), np.float32)
    a1, a2 = (y for y, _ in _run(x, 0.5, training=True, calls=2))
    assert not np.array_equal(a1, a2)  # a fresh mask every training step
    b1, b2 = (y for y, _ in _run(x, 0.5, training=True, calls=2))
    np.testing.assert_array_equal(a1, b1)  # the same program seed repeats the run
    np.testing.assert_array_equal(a2, b2)
    (c1, _), = _run(x, 0.5, training=True, prog_seed=1)
    assert not np.array_equal(a1, c1)
    f1, f2 = (y for y, _ in _run(x, 0.5, training=True, seed=3, calls=2))
    np.testing.assert_array_equal(f1, f2)  # a fixed seed: the same mask every call


def test_mask_is_the_same_in_float32_and_float64():
    # the mask depends on (seed, index) only, as a GPU twin with the same hash will
    x = np.ones(1000)
    m32 = dropout_kernel(x.astype(np.float32), 0.3, 11) != 0
    m64 = dropout_kernel(x, 0.3, 11) != 0
    np.testing.assert_array_equal(m32, m64)
    assert not np.array_equal(m64, dropout_kernel(x, 0.3, 12) != 0)


@pytest.mark.usefixtures("parallel_kernels")
def test_parallel_twin_draws_the_serial_mask():
    # 2^17 elements run the prange twin; the mask must not depend on the thread split
    x = np.ones(1 << 17, np.float32)
    big = dropout_kernel(x, 0.25, 5)
    small = dropout_kernel(x[:1000], 0.25, 5)
    np.testing.assert_array_equal(big[:1000], small)
    assert abs((big == 0).mean() - 0.25) < 0.01


def test_rate_zero_is_identity_in_training(rng):
    x = rng.normal(size=(4, 4)).astype(np.float32)
    (y, _), = _run(x, 0.0, training=True)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("rate", [1.0, -0.1])
def test_bad_rate_is_a_build_error(rate):
    with gn.Graph():
        x = gn.Input((3,))
        with pytest.raises(gn.GraphError, match=r"dropout node 'dropout'.*rate must be in"):
            gn.dropout(x, rate)
