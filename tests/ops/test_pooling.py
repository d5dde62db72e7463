"""max_pool2d and avg_pool2d: NumPy loops and PyTorch, "same" padding, gradients, errors."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.pooling import pool2d, pool2d_grad
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture3


def _windows(n, k, s, padding):
    """Per output index, the real input indices of its window (TensorFlow's padding)."""
    if padding == "valid":
        out, before = (n - k) // s + 1, 0
    else:
        out = math.ceil(n / s)
        before = max((out - 1) * s + k - n, 0) // 2
    return [[i for i in range(o * s - before, o * s - before + k) if 0 <= i < n]
            for o in range(out)]


def ref_pool(x, pool_size, strides, padding, kind):
    """Naive NHWC pooling over each window's real cells: max, or mean over the real count."""
    rows = _windows(x.shape[1], pool_size[0], strides[0], padding)
    cols = _windows(x.shape[2], pool_size[1], strides[1], padding)
    y = np.empty((x.shape[0], len(rows), len(cols), x.shape[3]))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            win = x[:, r][:, :, c]
            y[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


def distinct(rng, *shape):
    """Values without ties, 0.1 apart: a max keeps its winner under finite differences."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0


FN = {"max": gn.max_pool2d, "avg": gn.avg_pool2d}
# (input shape, pool_size, strides, padding): whole windows, odd sizes, overlapping windows,
# strides unlike the pool, TF "same" with asymmetric padding
CASES = [((2, 4, 6, 3), (2, 2), None, "valid"),
         ((2, 5, 7, 2), (2, 2), None, "valid"),  # tiles with a row and a column left over
         ((1, 7, 6, 2), (3, 2), None, "valid"),
         ((2, 5, 7, 2), (2, 3), (1, 2), "valid"),
         ((1, 5, 5, 2), (3, 3), (1, 1), "same"),
         ((2, 6, 7, 1), (3, 2), (2, 3), "same"),
         ((1, 3, 4, 2), (4, 5), (2, 2), "same")]


@pytest.mark.parametrize("shape, pool_size, strides, padding", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_forward_matches_numpy_loops(rng, kind, shape, pool_size, strides, padding):
    x = rng.normal(size=shape)
    out = run_fn(lambda t: FN[kind](t, pool_size, strides, padding), x, dtype="float64")
    np.testing.assert_allclose(out, ref_pool(x, pool_size, strides or pool_size, padding, kind),
                               rtol=1e-12)


@pytest.mark.parametrize("shape, pool_size, strides, padding", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_gradients(rng, kind, shape, pool_size, strides, padding):
    check_gradients(lambda t: FN[kind](t, pool_size, strides, padding), distinct(rng, *shape))


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.normal(size=(2, 7, 5, 3)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC -> NCHW

    def nhwc(t):
        return t.permute(0, 2, 3, 1).numpy()

    for k, s in [(2, 2), (3, 2), (2, 1)]:
        np.testing.assert_allclose(run_fn(lambda t, k=k, s=s: gn.max_pool2d(t, k, s), x),
                                   nhwc(F.max_pool2d(xt, k, s)), rtol=1e-6)
        np.testing.assert_allclose(run_fn(lambda t, k=k, s=s: gn.avg_pool2d(t, k, s), x),
                                   nhwc(F.avg_pool2d(xt, k, s)), rtol=1e-5, atol=1e-6)
    # TF "same" with a 3x3 pool at stride 2 on 7x5 pads one cell on every side: torch's
    # symmetric padding, excluded from the average's count
    np.testing.assert_allclose(run_fn(lambda t: gn.avg_pool2d(t, 3, 2, "same"), x),
                               nhwc(F.avg_pool2d(xt, 3, 2, padding=1, count_include_pad=False)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_fn(lambda t: gn.max_pool2d(t, 3, 2, "same"), x),
                               nhwc(F.max_pool2d(xt, 3, 2, padding=1)), rtol=1e-6)


def test_backward_against_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = distinct(rng, 2, 6, 5, 2)
    g = rng.normal(size=(2, 5, 4, 2))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
    gt = torch.from_numpy(g).permute(0, 3, 1, 2)
    for kind, tf in [("max", F.max_pool2d), ("avg", F.avg_pool2d)]:
        xt.grad = None
        tf(xt, 2, 1).backward(gt)  # overlapping windows: gradients accumulate
        y, arg = pool2d(x, (2, 2), (1, 1), (0, 0, 0, 0), kind)
        dx = pool2d_grad(g, arg, x.shape, (2, 2), (1, 1), (0, 0, 0, 0), kind)
        np.testing.assert_allclose(dx, xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-12)


def test_max_argmax_ties_and_overlap():
    # ties go to the first cell in scan order; a winner shared by overlapping windows
    # collects every window's gradient
    x = np.ones((1, 2, 2, 1))
    y, arg = pool2d(x, (2, 2), (2, 2), (0, 0, 0, 0), "max")
    assert arg.ravel().tolist() == [0]
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 5.0
    y, arg = pool2d(x, (2, 2), (1, 1), (0, 0, 0, 0), "max")
    assert (arg == 4).all() and (y == 5).all()
    dx = pool2d_grad(np.arange(1.0, 5.0).reshape(1, 2, 2, 1), arg, x.shape, (2, 2), (1, 1),
                     (0, 0, 0, 0), "max")
    assert dx[0, 1, 1, 0] == 10.0 and dx.sum() == 10.0


def test_padding_never_wins_the_max():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    out = run_fn(lambda t: gn.max_pool2d(t, 2, 2, "same"), x, dtype="float64")
    np.testing.assert_array_equal(out.ravel(), [-1, -3, -7, -9])


def test_float32_stays_float32_and_shapes(rng):
    with gn.Graph():
        x = gn.Input((7, 5, 3))
        assert gn.max_pool2d(x).shape == (None, 3, 2, 3)
        assert gn.avg_pool2d(x, 3, 2, padding="same").shape == (None, 4, 3, 3)
        assert gn.max_pool2d(x, (1, 5), (2, 1), "SAME").shape == (None, 4, 5, 3)
        y = gn.avg_pool2d(x, 2)
    assert y.dtype == np.float32 and y.op_name == "avg_pool2d"
    out = gn.compile(y)({x: rng.normal(size=(2, 7, 5, 3)).astype(np.float32)})
    assert out.dtype == np.float32 and out.shape == (2, 3, 2, 3)


@pytest.mark.usefixtures("parallel_kernels")
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_large_batch_runs_the_parallel_loops(rng, kind):
    x = distinct(rng, 4, 32, 32, 16).astype(np.float32)  # 65536 elements: the prange twins
    y, arg = pool2d(x, (3, 3), (2, 2), (0, 1, 0, 1), kind)
    np.testing.assert_allclose(y, ref_pool(x, (3, 3), (2, 2), "same", kind), rtol=1e-5)
    g = np.ones_like(y)
    dx = pool2d_grad(g, arg, x.shape, (3, 3), (2, 2), (0, 1, 0, 1), kind)
    serial = np.empty_like(dx)
    from graphnet.kernels.cpu.pooling import _pool_bwd
    _pool_bwd.serial(g, arg if kind == "max" else np.empty((1, 1, 1, 1), np.int64), 3, 3, 2,
                     2, 0, 0, kind == "max", np.float32(1), serial)
    np.testing.assert_array_equal(dx, serial)


@pytest.mark.parametrize("shape, pool", [((2, 5, 7, 3), (2, 2)), ((1, 7, 6, 2), (3, 3)),
                                         ((2, 6, 7, 4), (2, 3)), ((3, 4, 4, 1), (1, 1))])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiling_windows_match_the_general_kernels_bit_for_bit(rng, shape, pool, kind, dtype):
    # pool size = strides, no padding: the tile kernels (both twins), against the general
    # ones on values with ties (the first cell in scan order wins)
    from graphnet.kernels.cpu.pooling import _pool2x2_fwd, _pool_bwd, _pool_fwd, _tiles_bwd

    x = rng.integers(0, 4, size=shape).astype(dtype)
    is_max, one, none = kind == "max", dtype(1), np.empty((1, 1, 1, 1), np.int64)
    y, arg = pool2d(x, pool, pool, (0, 0, 0, 0), kind)
    want_y, want_arg = np.empty_like(y), np.empty(y.shape, np.int64) if is_max else none
    _pool_fwd.serial(x, *pool, *pool, 0, 0, is_max, one, want_y, want_arg)
    np.testing.assert_array_equal(y, want_y)
    if is_max:
        np.testing.assert_array_equal(arg, want_arg)
    g = rng.normal(size=y.shape).astype(dtype)
    want_dx = np.full(x.shape, np.nan, dtype)
    _pool_bwd.serial(g, want_arg, *pool, *pool, 0, 0, is_max, one, want_dx)
    np.testing.assert_array_equal(pool2d_grad(g, arg, x.shape, pool, pool, (0, 0, 0, 0), kind),
                                  want_dx)
    bwd = _tiles_bwd.of(PH=pool[0], PW=pool[1])
    for fwd_twin, bwd_twin in ((getattr(_pool2x2_fwd, "serial", _pool2x2_fwd),
                                getattr(bwd, "serial", bwd)),
                               (getattr(_pool2x2_fwd, "parallel", _pool2x2_fwd),
                                getattr(bwd, "parallel", bwd))):
        if pool == (2, 2):
            yy, aa = np.empty_like(y), np.empty(y.shape, np.int64) if is_max else none
            fwd_twin(x, is_max, one, yy, aa)
            np.testing.assert_array_equal(yy, want_y)
            if is_max:
                np.testing.assert_array_equal(aa, want_arg)
        dx = np.full(x.shape, np.nan, dtype)  # every cell written, the uncovered ones 0
        bwd_twin(g, want_arg, is_max, one, dx)
        np.testing.assert_array_equal(dx, want_dx)


def test_build_errors_name_the_shapes():
    with gn.Graph():
        x = gn.Input((4, 4, 2), name="x")
        with pytest.raises(gn.GraphError, match=r"expects channels-last \(batch, height, "
                                                r"width, channels\) input, got \(None, 4, 4\)"):
            gn.max_pool2d(gn.Input((4, 4)))
        with pytest.raises(gn.GraphError, match=r"pool_size \(5, 5\) does not fit the "
                                                r"input's 4x4"):
            gn.avg_pool2d(x, 5)
        with pytest.raises(gn.GraphError, match="padding must be 'valid' or 'same'"):
            gn.max_pool2d(x, padding="full")
        for bad in [0, (2, 2, 2), "2", (2, -1)]:
            with pytest.raises(gn.GraphError, match="pool_size must be a positive int"):
                gn.max_pool2d(x, bad)
        with pytest.raises(gn.GraphError, match="strides must be"):
            gn.max_pool2d(x, 2, 0)
        with pytest.raises(gn.GraphError, match="needs a float input"):
            gn.max_pool2d(gn.Input((4, 4, 2), dtype="int64"))


def test_kernel_refuses_bad_geometry():
    x = np.zeros((1, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match="smaller than the pool"):
        pool2d(x, (2, 2), (1, 1), (2, 0, 0, 0), "max")
    with pytest.raises(ValueError, match="does not fit"):
        pool2d(x, (4, 4), (1, 1), (0, 0, 0, 0), "avg")
    with pytest.raises(ValueError, match="channels-last"):
        pool2d(x[0], (2, 2), (1, 1), (0, 0, 0, 0), "max")
