"""The fused dense op: every activation against NumPy, 2-D and 3-D inputs, gradients, errors."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.dense import dense as dense_kernel
from graphnet.kernels.cpu.dense import dense_grad
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture1

_erf = np.vectorize(math.erf)

# Independent NumPy references of each activation, written out.
ACT = {
    None: lambda z: z,
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "leaky_relu": lambda z: np.where(z > 0, z, 0.2 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "gelu": lambda z: 0.5 * z * (1 + _erf(z / np.sqrt(2))),
}


def _data(rng, xshape, n_out=5):
    x = rng.normal(size=xshape)
    W = rng.normal(size=(xshape[-1], n_out)) / np.sqrt(xshape[-1])
    b = rng.normal(size=n_out)
    # keep every pre-activation away from relu's kink so finite differences are exact
    assert np.abs(x @ W + b).min() > 1e-3
    return x, W, b


@pytest.mark.parametrize("activation", list(ACT))
def test_forward_matches_numpy(activation, rng):
    x, W, b = _data(rng, (4, 3))
    out = run_fn(lambda x, W, b: gn.dense(x, W, b, activation=activation), x, W, b)
    assert out.dtype == np.float32 and out.shape == (4, 5)
    x32, W32, b32 = (a.astype(np.float32) for a in (x, W, b))
    np.testing.assert_allclose(out, ACT[activation]((x32 @ W32 + b32).astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", [a for a in ACT if a is not None])
def test_gradients_2d(activation, rng):
    x, W, b = _data(rng, (4, 3))
    check_gradients(lambda x, W, b: gn.dense(x, W, b, activation=activation), x, W, b)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_gradients_3d_without_bias(activation, rng):
    # a sequence batch (B, T, in): every (b, t) is a row of the GEMM
    x, W, _ = _data(rng, (2, 3, 4), n_out=3)
    check_gradients(lambda x, W: gn.dense(x, W, activation=activation), x, W)


def test_3d_input_with_batch_none(rng):
    x, W, b = _data(rng, (2, 3, 4))
    with gn.Graph():
        xi = gn.Input((3, 4), name="x")
        Wp, bp = gn.Parameter(W), gn.Parameter(b)
        y = gn.dense(xi, Wp, bp, activation="sigmoid")
        assert y.shape == (None, 3, 5) and y.op_name == "dense"
    out = gn.compile(y)({xi: x})
    np.testing.assert_allclose(out, ACT["sigmoid"](x @ W + b), rtol=1e-5)


def test_one_node_matches_composed_ops(rng):
    # the fused node computes what matmul, add and relu compute as three nodes
    x, W, b = _data(rng, (4, 3))
    with gn.Graph() as g:
        xp, Wp, bp = (gn.Parameter(a, dtype="float64") for a in (x, W, b))
        fused = gn.dense(xp, Wp, bp, activation="relu")
        composed = gn.relu(xp @ Wp + bp)
    assert [t.op_name for t in g.nodes if t.kind == "op"][0] == "dense"
    a, c = gn.compile([fused, composed])({})
    np.testing.assert_allclose(a, c, rtol=1e-12)


def test_backward_formulas_against_numpy(rng):
    # dZ = g act'(z); dx = dZ W^T; dW = x^T dZ; db = sum of dZ over rows (tanh: 1 - y^2)
    x, W, b = _data(rng, (6, 3))
    g = rng.normal(size=(6, 5))
    y, z = dense_kernel(x, W, b, "tanh")
    dx, dW, db = dense_grad(g, x, W, z, y, "tanh")
    dZ = g * (1 - np.tanh(x @ W + b) ** 2)
    np.testing.assert_allclose(dx, dZ @ W.T, rtol=1e-12)
    np.testing.assert_allclose(dW, x.T @ dZ, rtol=1e-12)
    np.testing.assert_allclose(db, dZ.sum(0), rtol=1e-12)
    assert dense_grad(g, x, W, z, y, "tanh", bias=False)[2] is None


@pytest.mark.usefixtures("parallel_kernels")
def test_large_batch_runs_the_parallel_pass(rng):
    # 512 x 160 outputs: above the parallel threshold, bias + activation and the fused dZ/db
    # pass run their prange twins (db from per-thread partial sums)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    W = rng.normal(size=(8, 160)).astype(np.float32)
    b = rng.normal(size=160).astype(np.float32)
    y, z = dense_kernel(x, W, b, "gelu", keep_z=True)
    zr = x.astype(np.float64) @ W + b
    np.testing.assert_allclose(z, zr, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y, ACT["gelu"](zr), rtol=1e-4, atol=1e-4)
    g = np.ones_like(y)
    dx, dW, db = dense_grad(g, x, W, z, y, "gelu")
    d = 0.5 * (1 + _erf(zr / np.sqrt(2))) + zr * np.exp(-zr * zr / 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(db, d.sum(0), rtol=1e-4)
    np.testing.assert_allclose(dW, x.T.astype(np.float64) @ d, rtol=1e-3, atol=1e-2)


def test_build_errors_name_the_shapes():
    with gn.Graph():
        x = gn.Input((3,), name="x")
        W = gn.Parameter(np.zeros((4, 2), np.float32), name="W")
        with pytest.raises(gn.GraphError, match=r"dense node 'dense'.*x \(None, 3\) has 3 "
                                                r"features but W \(4, 2\) expects 4"):
            gn.dense(x, W)
        W3 = gn.Parameter(np.zeros((3, 2), np.float32))
        with pytest.raises(gn.GraphError, match=r"bias must have shape \(2,\)"):
            gn.dense(x, W3, gn.Parameter(np.zeros(3, np.float32)))
        with pytest.raises(gn.GraphError, match="apply gn.softmax"):
            gn.dense(x, W3, activation="softmax")
        with pytest.raises(gn.GraphError, match="unknown activation 'swish'"):
            gn.dense(x, W3, activation="swish")
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.dense(x, gn.Parameter(np.zeros((3, 2)), dtype="float64"))


@pytest.mark.parametrize("n_in", [1, 16, 17, 40])  # the small-k loop and the GEMM
@pytest.mark.parametrize("bias", [True, False])
def test_small_and_large_inner_dimensions_match_numpy(n_in, bias, rng):
    x = rng.normal(size=(33, n_in)).astype(np.float32)
    W = rng.normal(size=(n_in, 20)).astype(np.float32)
    b = rng.normal(size=20).astype(np.float32) if bias else None
    y, z = dense_kernel(x, W, b, "relu", keep_z=True)
    zr = x.astype(np.float64) @ W + (b if bias else 0)
    np.testing.assert_allclose(z, zr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, np.maximum(zr, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_in", [3, 17])  # dW summed in the pass, or by a GEMM
def test_gradients_of_narrow_and_wide_inputs_match_numpy(n_in, rng):
    x = rng.normal(size=(41, n_in)).astype(np.float32)
    W = rng.normal(size=(n_in, 7)).astype(np.float32)
    b = rng.normal(size=7).astype(np.float32)
    y, z = dense_kernel(x, W, b, "tanh")
    g = rng.normal(size=y.shape).astype(np.float32)
    dx, dW, db = dense_grad(g, x, W, z, y, "tanh")
    dz = g.astype(np.float64) * (1 - y.astype(np.float64) ** 2)
    np.testing.assert_allclose(dW, x.T.astype(np.float64) @ dz, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dz.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, dz @ W.T.astype(np.float64), rtol=1e-4, atol=1e-4)
