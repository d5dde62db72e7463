"""Elementwise ops: forward against NumPy, float64 finite differences, broadcasting."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture1

BINARY = {
    "add": (gn.add, np.add),
    "subtract": (gn.subtract, np.subtract),
    "multiply": (gn.multiply, np.multiply),
    "divide": (gn.divide, np.divide),
    "power": (gn.power, np.power),
}
UNARY = {
    "negative": (gn.negative, np.negative, None),
    "exp": (gn.exp, np.exp, None),
    "log": (gn.log, np.log, "positive"),
    "sqrt": (gn.sqrt, np.sqrt, "positive"),
    "abs": (gn.abs, np.abs, "away_from_zero"),
}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((3, 4), ())]


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_forward_matches_numpy(name, sa, sb, rng):
    fn, ref = BINARY[name]
    a, b = _pos(rng, sa), _pos(rng, sb)
    out = run_fn(fn, a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref(a.astype(np.float32), b.astype(np.float32)), rtol=1e-5)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_gradients(name, sa, sb, rng):
    fn, _ = BINARY[name]
    check_gradients(fn, _pos(rng, sa), _pos(rng, sb))


@pytest.mark.parametrize("name", UNARY)
def test_unary_forward_and_gradients(name, rng):
    fn, ref, domain = UNARY[name]
    a = rng.normal(size=(3, 5))
    if domain == "positive":
        a = np.abs(a) + 0.5
    elif domain == "away_from_zero":
        a = np.where(np.abs(a) < 0.1, 0.5, a)
    np.testing.assert_allclose(run_fn(fn, a), ref(a.astype(np.float32)), rtol=1e-5)
    check_gradients(fn, a)


def test_operators_build_the_same_nodes(rng):
    a, b = _pos(rng, (2, 3)), _pos(rng, (3,))
    got = run_fn(lambda x, y: (x + y) * x - y / x + (-x) ** 2 + 2.0 * x - 1.0 / y, a, b)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ref = (a32 + b32) * a32 - b32 / a32 + (-a32) ** 2 + 2 * a32 - 1 / b32
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_node_used_twice_accumulates_gradient(rng):
    # d/da (a * a + a) = 2a + 1: the gradient arrives on three edges and must be summed
    a = rng.normal(size=(4,))
    (g,) = check_gradients(lambda x: x * x + x, a)
    assert g.shape == a.shape


def test_power_gradient_with_respect_to_exponent(rng):
    check_gradients(lambda x, p: x ** p, _pos(rng, (3,)), np.array([1.5, 2.0, 0.5]))


def test_unwanted_input_gradients_are_skipped(rng):
    # x ** 2 with wrt x: the exponent's gradient (a log over every element) is never formed
    import graphnet.kernels.cpu as cpu
    from graphnet.core.program import Ctx
    from graphnet.ops.elementwise import Pow

    a, b = rng.uniform(0.5, 2, (3, 4)), np.array(2.0)
    ctx = Ctx(cpu, training=True, seed=0, needs=(True, False))
    y = a ** b
    da, db = Pow().backward(ctx, np.ones_like(a), y, a, b)
    assert db is None
    np.testing.assert_allclose(da, 2 * a)


def test_stop_gradient_is_the_identity_that_backprop_treats_as_a_constant(rng):
    # forward: x itself; d/dx sum(x * stop_gradient(x)) = stop_gradient(x) = x (the product
    # rule's other term is cut), where without it the gradient would be 2x
    a = rng.normal(size=(3, 4))
    np.testing.assert_array_equal(run_fn(gn.stop_gradient, a, dtype="float64"), a)
    with gn.Graph():
        x = gn.Input((4,), dtype="float64", name="x")
        loss = gn.sum(x * gn.stop_gradient(x))
        only = gn.sum(gn.stop_gradient(x) * 3.0) + gn.sum(x)
    _, (dx,) = gn.compile(loss, wrt=[x])({x: a})
    np.testing.assert_allclose(dx, a, rtol=1e-15)
    _, (dx,) = gn.compile(only, wrt=[x])({x: a})
    np.testing.assert_array_equal(dx, np.ones_like(a))
