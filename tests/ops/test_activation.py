"""Activations: forward against NumPy and PyTorch, float64 finite differences, stability."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.activation import CODES, _act_flat, activation, activation_grad, code_of
from graphnet.ops.activation import ACTIVATIONS, activate
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture1

_erf = np.vectorize(math.erf)

# Independent NumPy references, written out.
REF = {
    "sigmoid": (gn.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (gn.tanh, np.tanh),
    "relu": (gn.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (gn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (gn.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "gelu": (gn.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
}


def _away_from_kinks(rng, shape):
    # finite differences with eps 1e-6 are exact only away from relu's kink at 0
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


@pytest.mark.parametrize("name", REF)
def test_forward_matches_numpy(name, rng):
    fn, ref = REF[name]
    x = rng.normal(scale=2.0, size=(3, 5)).astype(np.float32)
    out = run_fn(fn, x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", REF)
def test_gradients(name, rng):
    fn, _ = REF[name]
    check_gradients(fn, _away_from_kinks(rng, (2, 3, 4)))


@pytest.mark.parametrize("alpha", [0.01, 0.5])
def test_alpha_arguments(alpha, rng):
    x = _away_from_kinks(rng, (4, 3))
    np.testing.assert_allclose(run_fn(lambda t: gn.leaky_relu(t, alpha=alpha), x,
                                      dtype="float64"), np.where(x > 0, x, alpha * x))
    np.testing.assert_allclose(run_fn(lambda t: gn.elu(t, alpha=alpha), x, dtype="float64"),
                               np.where(x > 0, x, alpha * np.expm1(x)))
    check_gradients(lambda t: gn.leaky_relu(t, alpha=alpha), x)
    check_gradients(lambda t: gn.elu(t, alpha=alpha), x)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1e4, -80.0, -20.0, 0.0, 20.0, 100.0, 1e4], np.float32)
    with np.errstate(over="raise"):
        out = run_fn(gn.sigmoid, x)
    assert np.all(np.isfinite(out))
    # e^-80 = 1.8e-35 is still a normal float32, so the relative error stays small
    np.testing.assert_allclose(out, [0, math.exp(-80), 1 / (1 + math.exp(20)), 0.5, 1, 1, 1],
                               rtol=1e-6, atol=0)
    assert out[1] > 0  # a tiny positive number, not a rounded 0 from 1 - 1


def test_relu_passes_nan_through():
    out = run_fn(gn.relu, np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(out[0]) and list(out[1:]) == [0.0, 2.0]


def test_relu_gradient_is_zero_at_the_kink():
    (g,) = check_gradients(gn.relu, np.array([-1.0, 2.0]))
    x = np.zeros(3)
    dx = activation_grad(np.ones(3), x, activation(x, "relu"), "relu")
    np.testing.assert_array_equal(dx, 0.0)
    assert g.shape == (2,)


def test_activate_resolves_names(rng):
    x = rng.normal(size=(2, 3))
    with gn.Graph():
        t = gn.Parameter(x, dtype="float64")
        assert activate(t, None) is t and activate(t, "linear") is t
        assert activate(t, "relu").op_name == "relu"
        assert activate(t, "softmax").op_name == "softmax"
        with pytest.raises(gn.GraphError, match="unknown activation 'swish'"):
            activate(t, "swish")


def test_kernel_codes_cover_the_op_names():
    # the op layer's list and the kernels' codes name the same activations
    assert set(ACTIVATIONS) == set(CODES)


def test_float_input_required():
    with gn.Graph():
        i = gn.Input((3,), dtype="int64")
        with pytest.raises(gn.GraphError, match="relu node 'relu'.*float"):
            gn.relu(i)


@pytest.mark.usefixtures("parallel_kernels")
def test_parallel_twin_matches_serial(rng):
    # above the parallel threshold the prange twin runs; it must agree with the serial loop
    x = rng.normal(size=(300, 256)).astype(np.float32)
    for kind in ("relu", "gelu", "sigmoid", "tanh", "leaky_relu", "elu", "linear"):
        k = _act_flat.of(CODE=code_of(kind))
        par = activation(x, kind)
        ser = np.empty_like(x)
        getattr(k, "serial", k)(x.reshape(-1), ser.reshape(-1), np.float32(0))
        np.testing.assert_array_equal(par, ser)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.normal(scale=3.0, size=(4, 6))
    t = torch.tensor(x)
    ref = {"sigmoid": torch.sigmoid(t), "tanh": torch.tanh(t), "relu": F.relu(t),
           "leaky_relu": F.leaky_relu(t, 0.2), "elu": F.elu(t, 1.0), "gelu": F.gelu(t)}
    for name, (fn, _) in REF.items():
        np.testing.assert_allclose(run_fn(fn, x, dtype="float64"), ref[name].numpy(),
                                   rtol=1e-12, atol=1e-14, err_msg=name)
    # and their gradients, for an upstream gradient of ones
    for name, (fn, _) in REF.items():
        tt = torch.tensor(x, requires_grad=True)
        {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu,
         "leaky_relu": lambda a: F.leaky_relu(a, 0.2), "elu": F.elu,
         "gelu": F.gelu}[name](tt).sum().backward()
        with gn.Graph():
            p = gn.Parameter(x, dtype="float64")
            y = gn.sum(fn(p))
        _, (g,) = gn.compile(y, wrt=[p])({})
        np.testing.assert_allclose(g, tt.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_float32_sigmoid_and_tanh_within_two_ulp_everywhere(kind):
    # the vectorizable float32 exp (kernels/cpu/activation.py::exp_neg) against float64
    x = np.concatenate([np.linspace(-100, 100, 200001), np.linspace(-1, 1, 20001),
                        np.random.default_rng(0).normal(0, 5, 200000),
                        [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, -87.29, -87.31]]).astype(np.float32)
    out = activation(x, kind)
    x64 = x.astype(np.float64)
    ref = 1 / (1 + np.exp(-x64)) if kind == "sigmoid" else np.tanh(x64)
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    big = np.abs(ref) > 1e-37  # below float32's normal range the fast exp returns 0
    assert np.all(np.abs(out - ref)[big] <= 2 * ulp[big])
    assert np.all(np.abs(out[~big]) <= 1e-37)


def test_run_time_code_matches_each_constant_code(rng):
    # a code known only at run time takes act's branches (_act_any); a constant one is typed
    # as its own function: both must agree, values and derivatives
    import numba

    from graphnet.kernels.cpu.activation import act, act_grad

    @numba.njit
    def by_code(code, x, alpha, y, d):
        for i in range(x.size):
            y[i] = act(code, x[i], alpha)
            d[i] = act_grad(code, x[i], y[i], alpha)

    x = rng.normal(scale=2.0, size=17).astype(np.float32)
    alpha = np.float32(0.2)
    for name, code in CODES.items():
        y, d = np.empty_like(x), np.empty_like(x)
        by_code(code, x, alpha, y, d)
        np.testing.assert_allclose(y, activation(x, name, 0.2), rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(d, activation_grad(np.ones_like(x), x, y, name, 0.2),
                                   rtol=1e-6, err_msg=name)
