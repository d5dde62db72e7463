"""matmul: 2-D and batched products against NumPy and PyTorch, gradients, shape errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.core.backend import get_backend
from graphnet.testing import check_gradients
from tests.conftest import run_fn

cpu = get_backend("cpu")

pytestmark = pytest.mark.lecture1

CASES = [
    ((3, 4), (4, 5)),           # dense: x @ W
    ((2, 3, 4), (4, 5)),        # dense on a sequence: one GEMM over all rows
    ((2, 3, 4), (2, 4, 5)),     # attention: batched Q K^T, A V
    ((3, 4), (2, 4, 5)),        # a shared left operand
    ((2, 1, 3, 4), (3, 4, 2)),  # broadcast leading dimensions
    ((1, 3, 4), (2, 4, 5)),     # a batch of one against a batch of two
]

# NumPy's 1-D rules: a vector on the left is a row, on the right a column, and the added
# axis leaves the result
VECTOR_CASES = [
    ((3, 4), (4,)),             # matrix @ vector -> (3,)
    ((4,), (4, 5)),             # vector @ matrix -> (5,)
    ((4,), (4,)),               # vector @ vector -> scalar
    ((2, 3, 4), (4,)),          # batched matrices @ vector -> (2, 3)
    ((4,), (2, 4, 5)),          # vector @ batched matrices -> (2, 5)
    ((2, 1, 3, 4), (4,)),       # a vector against 4-D
    ((4,), (3, 1, 4, 2)),
]


@pytest.mark.parametrize("sa,sb", CASES + VECTOR_CASES)
def test_forward_matches_numpy(sa, sb, rng):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    out = run_fn(gn.matmul, a, b)
    want = np.matmul(a.astype(np.float32), b.astype(np.float32))
    assert out.shape == want.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sa,sb", CASES + VECTOR_CASES)
def test_gradients(sa, sb, rng):
    check_gradients(gn.matmul, rng.normal(size=sa), rng.normal(size=sb))


def test_operators_and_batch_dimension(rng):
    W = rng.normal(size=(4, 5)).astype(np.float32)
    xb = rng.normal(size=(6, 3, 4)).astype(np.float32)
    with gn.Graph():
        x = gn.Input((3, 4))
        w = gn.Parameter(W)
        y = x @ w
        z = np.ones((2, 3), np.float32) @ x  # __rmatmul__: an array on the left
        assert y.shape == (None, 3, 5) and y.op_name == "matmul"
        assert z.shape == (None, 2, 4)
        yv, zv = gn.compile([y, z])({x: xb})
    np.testing.assert_allclose(yv, xb @ W, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(zv, np.ones((2, 3), np.float32) @ xb, rtol=1e-5, atol=1e-5)


def test_gradient_of_a_shared_weight_over_a_batch(rng):
    # d/dW sum(x @ W) with x batched: every batch entry adds x_i^T 1
    xb = rng.normal(size=(5, 3, 4))
    with gn.Graph():
        x = gn.Input((3, 4), dtype="float64")
        W = gn.Parameter(rng.normal(size=(4, 2)), dtype="float64")
        loss = gn.sum(x @ W)
    _, (dW,) = gn.compile(loss, wrt=[W])({x: xb})
    np.testing.assert_allclose(dW, xb.reshape(-1, 4).sum(0)[:, None] * np.ones((1, 2)))


def test_kernels_transpose_flags_and_summed_weight_gradient(rng):
    a, b, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 6))
    np.testing.assert_allclose(cpu.matmul(a, b, trans_b=True), a @ b.transpose(0, 2, 1))
    np.testing.assert_allclose(cpu.matmul(a, g, trans_a=True), a.transpose(0, 2, 1) @ g)
    np.testing.assert_allclose(cpu.matmul(a, rng.normal(size=(6, 4)), trans_b=True).shape,
                               (2, 3, 6))
    np.testing.assert_allclose(cpu.matmul_at_sum(a, g), np.einsum("bmk,bmn->kn", a, g))


@pytest.mark.parametrize("sa,sb,msg", [
    ((3, 4), (5, 6), r"inner dimensions differ: \(3, 4\) @ \(5, 6\)"),
    ((4,), (5, 2), r"inner dimensions differ: \(4,\) @ \(5, 2\)"),
    ((3, 4), (5,), r"inner dimensions differ: \(3, 4\) @ \(5,\)"),
    ((4,), (5,), r"inner dimensions differ: \(4,\) @ \(5,\)"),
    ((2, 3, 4), (5,), r"inner dimensions differ: \(2, 3, 4\) @ \(5,\)"),
    ((), (4, 2), "rank >= 1"),
    ((2, 3, 4), (3, 4, 5), r"batch dimensions of \(2, 3, 4\) and \(3, 4, 5\)"),
])
def test_shape_errors(sa, sb, msg):
    with gn.Graph():
        a, b = gn.Parameter(np.zeros(sa)), gn.Parameter(np.zeros(sb))
        with pytest.raises(gn.GraphError, match=f"matmul node .*{msg}"):
            a @ b


def test_dtype_mismatch_is_a_graph_error():
    with gn.Graph():
        a = gn.Parameter(np.zeros((2, 3)), dtype="float64")
        b = gn.Parameter(np.zeros((3, 2)), dtype="float32")
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.matmul(a, b)


@pytest.mark.parametrize("sa,sb", CASES + VECTOR_CASES)
def test_matches_torch(sa, sb, rng):
    torch = pytest.importorskip("torch")
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    with gn.Graph():
        pa, pb = gn.Parameter(a, dtype="float64"), gn.Parameter(b, dtype="float64")
        y = pa @ pb
        R = gn.constant(rng.normal(size=y.shape))
        loss = gn.sum(y * R)
    value, (da, db) = gn.compile(loss, wrt=[pa, pb])({})
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    tl = (ta @ tb * torch.tensor(R.value)).sum()
    tl.backward()
    np.testing.assert_allclose(value.item(), tl.item(), rtol=1e-10)
    np.testing.assert_allclose(da, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sa,sb,want", [
    ((2,), (2,), ()), ((None, 2), (2,), (None,)), ((2,), (None, 2, 3), (None, 3)),
    ((None, 3, 4), (4,), (None, 3)), ((None, 3, 4), (1, 4, 5), (None, 3, 5)),
])
def test_vector_shapes_with_the_batch_axis(sa, sb, want):
    # the batch axis None is an unknown dimension: it broadcasts like any size
    with gn.Graph():
        a = gn.Input(sa[1:]) if sa[:1] == (None,) else gn.Parameter(np.zeros(sa, np.float32))
        b = gn.Input(sb[1:]) if sb[:1] == (None,) else gn.Parameter(np.zeros(sb, np.float32))
        assert (a @ b).shape == want


def test_batched_vector_operands_run_as_numpy(rng):
    xb, W, v = rng.normal(size=(5, 3, 4)), rng.normal(size=(4,)), rng.normal(size=(3,))
    with gn.Graph():
        x = gn.Input((3, 4), dtype="float64")
        w = gn.Parameter(W, dtype="float64")
        u = gn.Parameter(v, dtype="float64")
        right, left = x @ w, u @ x
        loss = gn.sum(right * right) + gn.sum(left)
        assert right.shape == (None, 3) and left.shape == (None, 4)
        rv, lv, _ = gn.compile([right, left, loss])({x: xb})
        _, (dw, du) = gn.compile(loss, wrt=[w, u])({x: xb})
    np.testing.assert_allclose(rv, np.matmul(xb, W))
    np.testing.assert_allclose(lv, np.matmul(v, xb))
    r = np.matmul(xb, W)
    np.testing.assert_allclose(dw, np.einsum("bi,bik->k", 2 * r, xb))
    np.testing.assert_allclose(du, xb.sum(axis=(0, 2)))


def test_the_seeds_perceptron_builds_and_trains(rng):
    # Lecture 1's perceptron in one line: z = w0 + x @ w with w a vector of shape (2,)
    X = rng.normal(size=(64, 2))
    Y = (X @ np.array([1.5, -2.0]) + 0.5 > 0).astype(np.float64)
    with gn.Graph():
        x = gn.Input((2,), dtype="float64")
        y = gn.Input((), dtype="float64")
        w = gn.Parameter(np.zeros(2), dtype="float64")
        w0 = gn.Parameter(np.zeros(()), dtype="float64")
        z = w0 + x @ w
        assert z.shape == (None,)
        p = gn.sigmoid(z)
        loss = gn.mean(-(y * gn.log(p + 1e-9) + (1 - y) * gn.log(1 - p + 1e-9)))
        prog = gn.compile(loss, wrt=[w, w0])
    first = None
    for _ in range(200):
        value, (dw, dw0) = prog({x: X, y: Y})
        first = value if first is None else first
        w.value -= 0.5 * dw
        w0.value -= 0.5 * dw0
    assert value < 0.3 * first
    acc = np.mean((X @ w.value + w0.value > 0) == (Y > 0.5))
    assert acc > 0.95
