"""softmax and log_softmax: NumPy and PyTorch references, any axis, large logits, gradients."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = [pytest.mark.lecture1, pytest.mark.lecture2]


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


CASES = [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0)]


@pytest.mark.parametrize("shape,axis", CASES)
def test_forward_matches_numpy(shape, axis, rng):
    x = rng.normal(scale=3.0, size=shape).astype(np.float32)
    y = run_fn(lambda t: gn.softmax(t, axis=axis), x)
    ly = run_fn(lambda t: gn.log_softmax(t, axis=axis), x)
    assert y.dtype == ly.dtype == np.float32 and y.shape == ly.shape == shape
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, np_softmax(x64, axis), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ly, np_log_softmax(x64, axis), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape,axis", CASES)
def test_gradients(shape, axis, rng):
    x = rng.normal(size=shape)
    check_gradients(lambda t: gn.softmax(t, axis=axis), x)
    check_gradients(lambda t: gn.log_softmax(t, axis=axis), x)


def test_large_logits_stay_finite():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 0.0]], np.float32)
    y = run_fn(gn.softmax, x)
    ly = run_fn(gn.log_softmax, x)
    np.testing.assert_allclose(y, [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-7)
    # log 2 keeps its digits next to 1e4: the maximum is subtracted before anything is added
    np.testing.assert_allclose(ly, [[0, -1e4, -2e4], [-np.log(2), -np.log(2), -1e4 - np.log(2)]],
                               rtol=1e-6, atol=2e-3)
    np.testing.assert_allclose(ly[1, :2], -np.log(2), rtol=1e-6)
    with gn.Graph():
        p = gn.Parameter(x)
        _, (g,) = gn.compile(gn.sum(gn.log_softmax(p)), wrt=[p])({})
    assert np.all(np.isfinite(g))


def test_scalar_and_bad_axis_are_build_errors():
    with gn.Graph():
        s = gn.Parameter(np.float32(1.0))
        with pytest.raises(gn.GraphError, match="softmax node 'softmax'.*at least one axis"):
            gn.softmax(s)
        x = gn.Input((3,))
        with pytest.raises(gn.GraphError, match="axis 2 is out of range"):
            gn.log_softmax(x, axis=2)


@pytest.mark.usefixtures("parallel_kernels")
def test_parallel_rows_match_numpy(rng):
    # 1024 rows x 80 classes is above the parallel threshold: the prange twin runs
    x = rng.normal(size=(1024, 80)).astype(np.float32)
    np.testing.assert_allclose(run_fn(gn.softmax, x), np_softmax(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-8)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(scale=2.0, size=(3, 4, 5))
    for axis in (-1, 1):
        for fn, tfn in ((gn.softmax, torch.softmax), (gn.log_softmax, torch.log_softmax)):
            t = torch.tensor(x, requires_grad=True)
            ty = tfn(t, dim=axis)
            w = rng.normal(size=x.shape)
            (ty * torch.tensor(w)).sum().backward()
            with gn.Graph():
                p = gn.Parameter(x, dtype="float64")
                out = fn(p, axis=axis)
                loss = gn.sum(out * gn.constant(w, dtype="float64"))
            y = gn.compile(out)({})
            _, (g,) = gn.compile(loss, wrt=[p])({})
            np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
