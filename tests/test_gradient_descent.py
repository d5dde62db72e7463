"""The seed's gradient-descent loop, as written there: w.value -= lr * g."""

import numpy as np
import pytest

import graphnet as gn

pytestmark = pytest.mark.lecture1


def test_least_squares_by_gradient_descent():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    true_w = np.array([1.5, -2.0, 0.5], np.float32)
    Y = X @ true_w + 0.3
    with gn.Graph():
        x = gn.Input((3,), name="x")
        y = gn.Input((), name="y")
        w = gn.Parameter(np.zeros(3), name="w")
        b = gn.Parameter(np.zeros(()), name="b")
        loss = gn.mse(gn.sum(x * w, axis=1) + b, y)
    prog = gn.compile(loss, wrt=[w, b])
    lr = 0.3
    first = None
    for _ in range(200):
        value, (dw, db) = prog({x: X, y: Y})
        first = value if first is None else first
        w.value -= lr * dw
        b.value -= lr * db
    assert value < 1e-6 < first
    np.testing.assert_allclose(w.value, true_w, atol=1e-3)
    np.testing.assert_allclose(b.value, 0.3, atol=1e-3)
