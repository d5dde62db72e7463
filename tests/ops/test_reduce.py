"""Reductions: forward against NumPy, float64 finite differences, batch shapes, errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.core.backend import get_backend
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture1
cpu = get_backend("cpu")

OPS = {"sum": (gn.sum, np.sum), "mean": (gn.mean, np.mean), "max": (gn.max, np.max)}
AXES = [None, 0, 1, -1, (0, 2), (1, 2), (-3, -2), ()]


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_forward_matches_numpy(name, axis, keepdims, rng):
    fn, ref = OPS[name]
    a = rng.normal(size=(2, 3, 4))
    out = run_fn(lambda x: fn(x, axis=axis, keepdims=keepdims), a)
    want = ref(a.astype(np.float32), axis=axis, keepdims=keepdims)
    assert out.shape == want.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_gradients(name, axis, keepdims, rng):
    fn, _ = OPS[name]
    check_gradients(lambda x: fn(x, axis=axis, keepdims=keepdims), rng.normal(size=(2, 3, 4)))


@pytest.mark.parametrize("name", OPS)
def test_gradient_of_a_reduction_of_a_broadcast(name, rng):
    # the reduction's backward feeds the broadcast add's sum_to
    fn, _ = OPS[name]
    check_gradients(lambda x, b: fn(x + b, axis=0), rng.normal(size=(3, 4)),
                    rng.normal(size=(4,)))


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2), (1, 2), (0, 1, 2), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_against_numpy(axes, dtype, rng):
    x = rng.normal(size=(2, 3, 4)).astype(dtype)
    for got, want in [(cpu.sum(x, axes), x.sum(axes)), (cpu.mean(x, axes), x.mean(axes)),
                      (cpu.max(x, axes)[0], x.max(axes))]:
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    g = rng.normal(size=x.sum(axes).shape).astype(dtype)
    keep = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    bc = cpu.broadcast_to(g, x.shape, axes, 0.5)
    assert bc.dtype == dtype
    np.testing.assert_allclose(bc, np.broadcast_to(g.reshape(keep) * dtype(0.5), x.shape))
    # max_grad puts g at the first maximum: compare with a one-hot of NumPy's argmax
    _, arg = cpu.max(x, axes)
    keep_axes = tuple(i for i in range(3) if i not in axes)
    block = x.transpose(keep_axes + axes).reshape(g.size, -1)
    onehot = np.zeros_like(block)
    onehot[np.arange(g.size), block.argmax(1)] = g.reshape(-1)
    perm = keep_axes + axes
    want = onehot.reshape([x.shape[i] for i in perm]).transpose(np.argsort(perm))
    np.testing.assert_array_equal(cpu.max_grad(g, arg, x.shape, axes), want)



@pytest.mark.parametrize("axes", [(1,), (1, 2), (0, 1), (2,), (0, 1, 2)])
def test_sum_over_a_run_of_axes_in_4d(axes, rng):
    # a run of adjacent axes before the last is summed in place as (before, run, after)
    # blocks, large enough for the parallel twin too
    for shape in [(2, 3, 4, 5), (4, 64, 64, 128)]:
        x = rng.normal(size=shape).astype(np.float32)
        want = x.astype(np.float64).sum(axes)
        got = cpu.sum(x, axes)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        # its backward spreads g back along the run (the parallel twin on the large shape)
        keep = tuple(1 if i in axes else d for i, d in enumerate(shape))
        out = np.full(shape, np.nan, np.float32)
        assert cpu.broadcast_to(got, shape, axes, 0.25, out=out) is out
        np.testing.assert_array_equal(out, np.broadcast_to(got.reshape(keep) * np.float32(0.25),
                                                           shape))

def test_max_gradient_flows_to_the_first_maximum():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    with gn.Graph():
        p = gn.Parameter(x, dtype="float64")
        loss = gn.sum(gn.max(p, axis=1) * gn.constant(np.array([10.0, 20.0])))
    value, (g,) = gn.compile(loss, wrt=[p])({})
    assert value == pytest.approx(70.0)
    np.testing.assert_array_equal(g, [[0.0, 10.0, 0.0], [20.0, 0.0, 0.0]])


def test_max_over_leading_and_middle_axes_finds_first_maximum():
    # ties across a (0, 2) block: NumPy's argmax over the flattened block picks the first
    x = np.zeros((2, 2, 2))
    x[0, 1, 0] = x[1, 1, 1] = 5.0
    with gn.Graph():
        p = gn.Parameter(x, dtype="float64")
        loss = gn.sum(gn.max(p, axis=(0, 2)))
    _, (g,) = gn.compile(loss, wrt=[p])({})
    want = np.zeros_like(x)
    want[0, 0, 0] = 1.0  # the block of axis-1 index 0 is all zeros: the first one wins
    want[0, 1, 0] = 1.0
    np.testing.assert_array_equal(g, want)


def test_batch_dimension_stays_none_unless_reduced():
    with gn.Graph():
        x = gn.Input((3, 4))
        s1, s0 = gn.sum(x, axis=-1), gn.mean(x, axis=0)
        sk, sa = gn.max(x, axis=(0, 1), keepdims=True), gn.sum(x)
        assert s1.shape == (None, 3)
        assert s0.shape == (3, 4)
        assert sk.shape == (1, 1, 4)
        assert sa.shape == ()
        xb = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(np.float32)
        outs = gn.compile([s1, s0, sk, sa])({x: xb})
    for got, want in zip(outs, [xb.sum(-1), xb.mean(0), xb.max((0, 1), keepdims=True),
                                xb.sum()]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tensor_methods_call_the_ops(rng):
    a = rng.normal(size=(3, 4))
    got = run_fn(lambda x: x.sum(axis=0) + x.mean(axis=0, keepdims=True), a)
    a32 = a.astype(np.float32)
    np.testing.assert_allclose(got, a32.sum(0) + a32.mean(0, keepdims=True), rtol=1e-5)


def test_integer_sum_keeps_its_dtype():
    with gn.Graph():
        c = gn.constant(np.arange(6, dtype=np.int64).reshape(2, 3))
        s = gn.sum(c, axis=1)
    assert s.dtype == np.int64
    np.testing.assert_array_equal(gn.compile(s)({}), [3, 12])


def test_bad_axis_is_a_graph_error_naming_the_op():
    with gn.Graph():
        x = gn.Input((3,))
        with pytest.raises(gn.GraphError, match=r"sum node .*axis 2 is out of range"):
            gn.sum(x, axis=2)
        with pytest.raises(gn.GraphError, match="axis -3"):
            gn.max(x, axis=(0, -3))


def test_mean_of_integers_is_a_graph_error():
    with gn.Graph():
        c = gn.constant(np.arange(3, dtype=np.int64))
        with pytest.raises(gn.GraphError, match="mean node .*float"):
            gn.mean(c)


def test_reductions_match_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.normal(size=(2, 3, 4))
    for name, tfn in [("sum", torch.sum), ("mean", torch.mean), ("max", torch.amax)]:
        fn, _ = OPS[name]
        w = rng.normal(size=(2, 4))
        with gn.Graph():
            p = gn.Parameter(a, dtype="float64")
            loss = gn.sum(fn(p, axis=1) * gn.constant(w))
        value, (g,) = gn.compile(loss, wrt=[p])({})
        t = torch.tensor(a, requires_grad=True)
        tl = (tfn(t, dim=1) * torch.tensor(w)).sum()
        tl.backward()
        np.testing.assert_allclose(value, tl.item(), rtol=1e-10)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
