"""The conv family on the GPU (simulated): every kernel against its CPU twin on tiny images, and
a small conv program on device="cuda" against device="cpu", forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture3]


@pytest.fixture
def r():
    return np.random.default_rng(0)


# (ksize, strides, dilation, pads (top, bottom, left, right)) on a 5x5 image: TF's asymmetric
# "same", a stride-2 valid conv and a dilated one
GEOMETRIES = [((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
              ((2, 3), (2, 2), (1, 1), (0, 1, 1, 1)),
              ((3, 2), (1, 2), (2, 1), (0, 0, 0, 0))]


@pytest.mark.parametrize("ksize,strides,dilation,pads", GEOMETRIES)
def test_im2col_col2im(K, C, r, ksize, strides, dilation, pads):
    x = f32(r, 1, 5, 5, 2)
    cols = check(K, C, "im2col", x, ksize, strides, dilation, pads, exact=True)
    check(K, C, "col2im", f32(r, *cols.shape), x.shape, ksize, strides, dilation, pads)


@pytest.mark.parametrize("kind", [None, "relu", "gelu"])
def test_conv2d_and_its_gradient(K, C, r, kind):
    x, k, b = f32(r, 1, 5, 5, 2), f32(r, 3, 3, 2, 3), f32(r, 3)
    geo = ((2, 2), (1, 1), (0, 1, 0, 1))  # strides, dilation, pads: "same" with stride 2
    keep = kind == "gelu"
    y, z, cols = check(K, C, "conv2d", x, k, b if kind else None, *geo, kind, 0.0, keep)
    g = f32(r, *y.shape)
    for need_dx in (True, False):
        check(K, C, "conv2d_grad", g, x, cols, k, z, y, *geo, kind, 0.0, kind is not None,
              need_dx)


@pytest.mark.parametrize("kind", [None, "tanh", "gelu"])
def test_conv2d_transpose_and_its_gradient(K, C, r, kind):
    x, k, b = f32(r, 1, 3, 3, 2), f32(r, 3, 3, 3, 2), f32(r, 3)
    geo = ((2, 2), (1, 1), (0, 1, 0, 1))  # Keras "same", stride 2: 3x3 -> 6x6
    keep = kind == "gelu"
    y, z = check(K, C, "conv2d_transpose", x, k, b if kind else None, *geo, (6, 6), kind, 0.0,
                 keep)
    g = f32(r, *y.shape)
    for need_dx in (True, False):
        check(K, C, "conv2d_transpose_grad", g, x, k, z, y, *geo, kind, 0.0, kind is not None,
              need_dx)


def test_kernel_errors_match(K, C, r):
    x = f32(r, 1, 3, 3, 2)
    for B in (K, C):
        with pytest.raises(ValueError, match="spans 5 pixels"):
            B.im2col(B.asarray(x), (3, 3), (1, 1), (2, 2), (0, 0, 0, 0))
        with pytest.raises(ValueError, match="does not convolve back"):
            B.conv2d_transpose(B.asarray(x), B.asarray(f32(r, 3, 3, 2, 2)), None, (2, 2),
                               (1, 1), (0, 0, 0, 0), (5, 6), None)


def test_program_on_cuda_matches_cpu():
    # conv (stride 2, same) -> transpose (back to 6x6) -> loss: both ops, forward and gradients
    rng = np.random.default_rng(1)
    with gn.Graph("convnet"):
        x = gn.Input((6, 6, 1), name="x")
        k1 = gn.Parameter(rng.normal(size=(3, 3, 1, 2)).astype(np.float32) * 0.5, name="k1")
        b1 = gn.Parameter(rng.normal(size=2).astype(np.float32) * 0.1, name="b1")
        k2 = gn.Parameter(rng.normal(size=(2, 2, 1, 2)).astype(np.float32) * 0.5, name="k2")
        h = gn.conv2d(x, k1, b1, strides=2, padding="same", activation="relu")
        out = gn.conv2d_transpose(h, k2, strides=2, padding="same", activation="tanh")
        loss = gn.mean((out - x) ** 2)
    feeds = {x: rng.normal(size=(2, 6, 6, 1)).astype(np.float32)}
    params = [k1, b1, k2]
    cpu_val, cpu_grads = gn.compile(loss, wrt=params)(feeds)
    val, grads = gn.compile(loss, wrt=params, device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        assert g.shape == cg.shape
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)


def test_explicit_pads_and_output_padding_on_cuda_match_cpu():
    # Conv1D's causal pads (explicit, on the left) and Conv2DTranspose's output_padding
    rng = np.random.default_rng(2)
    with gn.Graph("pads"):
        x = gn.Input((1, 5, 2), name="x")
        k1 = gn.Parameter(rng.normal(size=(1, 3, 2, 2)).astype(np.float32), name="k1")
        k2 = gn.Parameter(rng.normal(size=(1, 3, 1, 2)).astype(np.float32), name="k2")
        h = gn.conv2d(x, k1, padding=((0, 0), (2, 0)))
        out = gn.conv2d_transpose(h, k2, strides=(1, 2), padding="same", output_padding=(0, 0))
        loss = gn.mean(out ** 2)
    feeds = {x: rng.normal(size=(1, 1, 5, 2)).astype(np.float32)}
    cpu_val, cpu_grads = gn.compile(loss, wrt=[k1, k2])(feeds)
    val, grads = gn.compile(loss, wrt=[k1, k2], device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)
