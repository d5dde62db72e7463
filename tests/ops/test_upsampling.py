"""upsample2d: nearest and bilinear (half-pixel centres) against NumPy loops and PyTorch,
gradients (the adjoint), errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.upsampling import upsample2d, upsample2d_grad
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture3


def _taps(n_in, s, bilinear):
    """Per output index along one axis: (i0, i1, weight of i1), written out from the rule:
    half-pixel centre src = (o + 0.5) / s - 0.5, clamped to [0, n_in - 1]."""
    taps = []
    for o in range(n_in * s):
        if not bilinear:
            taps.append((o // s, o // s, 0.0))
            continue
        src = min(max((o + 0.5) / s - 0.5, 0.0), n_in - 1)
        i0 = int(np.floor(src))
        taps.append((i0, min(i0 + 1, n_in - 1), src - i0))
    return taps


def ref_upsample(x, size, interpolation):
    bil = interpolation == "bilinear"
    rows, cols = _taps(x.shape[1], size[0], bil), _taps(x.shape[2], size[1], bil)
    y = np.empty((x.shape[0], len(rows), len(cols), x.shape[3]))
    for i, (a0, a1, ly) in enumerate(rows):
        for j, (b0, b1, lx) in enumerate(cols):
            top = (1 - lx) * x[:, a0, b0] + lx * x[:, a0, b1]
            bottom = (1 - lx) * x[:, a1, b0] + lx * x[:, a1, b1]
            y[:, i, j] = (1 - ly) * top + ly * bottom
    return y


SIZES = [2, (3, 2), (1, 4)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_forward_matches_numpy_loops(rng, interpolation, size):
    x = rng.normal(size=(2, 3, 5, 2))
    out = run_fn(lambda t: gn.upsample2d(t, size, interpolation), x, dtype="float64")
    pair = (size, size) if isinstance(size, int) else size
    np.testing.assert_allclose(out, ref_upsample(x, pair, interpolation), rtol=1e-12)
    if interpolation == "nearest":  # Keras' UpSampling2D: each cell repeated
        np.testing.assert_array_equal(out, x.repeat(pair[0], 1).repeat(pair[1], 2))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_gradients(rng, interpolation, size):
    check_gradients(lambda t: gn.upsample2d(t, size, interpolation),
                    rng.normal(size=(1, 3, 4, 2)))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_forward_and_backward_against_torch(rng, interpolation):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 4, 3, 3))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()  # NHWC -> NCHW
    kw = {} if interpolation == "nearest" else {"align_corners": False}  # half-pixel
    yt = torch.nn.functional.interpolate(xt, scale_factor=(3, 2), mode=interpolation, **kw)
    y = upsample2d(x, (3, 2), interpolation)
    np.testing.assert_allclose(y, yt.detach().permute(0, 2, 3, 1).numpy(), rtol=1e-12)
    g = rng.normal(size=y.shape)
    yt.backward(torch.from_numpy(g).permute(0, 3, 1, 2))
    np.testing.assert_allclose(upsample2d_grad(g, x.shape, (3, 2), interpolation),
                               xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-12)


def test_bilinear_edges_repeat_and_constants_stay(rng):
    x = np.full((1, 3, 3, 1), 2.5)
    np.testing.assert_allclose(upsample2d(x, (2, 2), "bilinear"), 2.5)
    ramp = np.arange(3.0).reshape(1, 1, 3, 1)
    out = upsample2d(ramp, (1, 2), "bilinear").ravel()
    np.testing.assert_allclose(out, [0, 0.25, 0.75, 1.25, 1.75, 2])


@pytest.mark.usefixtures("parallel_kernels")
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_large_batch_runs_the_parallel_loops(rng, interpolation):
    x = rng.normal(size=(4, 16, 16, 16)).astype(np.float32)  # 65536 outputs and more
    y = upsample2d(x, (2, 2), interpolation)
    np.testing.assert_allclose(y, ref_upsample(x.astype(np.float64), (2, 2), interpolation),
                               rtol=1e-5, atol=1e-6)
    assert y.dtype == np.float32
    dx = upsample2d_grad(np.ones_like(y), x.shape, (2, 2), interpolation)
    np.testing.assert_allclose(dx, 4.0, rtol=1e-6)  # every cell's weights sum to s*s


def test_shapes_and_errors():
    with gn.Graph():
        x = gn.Input((3, 5, 2), name="x")
        assert gn.upsample2d(x).shape == (None, 6, 10, 2)
        assert gn.upsample2d(x, (1, 3), "bilinear").shape == (None, 3, 15, 2)
        with pytest.raises(gn.GraphError, match=r"upsample2d node .*expects channels-last "
                                                r"\(batch, height, width, channels\)"):
            gn.upsample2d(gn.Input((3, 5)))
        with pytest.raises(gn.GraphError, match="interpolation must be one of"):
            gn.upsample2d(x, 2, "bicubic")
        with pytest.raises(gn.GraphError, match="size must be a positive int"):
            gn.upsample2d(x, 0)
    with pytest.raises(ValueError, match="unknown interpolation"):
        upsample2d(np.zeros((1, 2, 2, 1)), (2, 2), "area")
    with pytest.raises(ValueError, match="does not match the up-sampled shape"):
        upsample2d_grad(np.zeros((1, 3, 4, 1)), (1, 2, 2, 1), (2, 2))
