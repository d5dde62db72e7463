"""RoI Align on the GPU against its CPU twin (tiny shapes, simulated unless
GRAPHNET_REAL_GPU=1), and one RoI program on device="cuda" against device="cpu"."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture3]

# inside, partly outside on both sides, wholly outside, and a second image
BOXES = np.array([[0.7, 1.2, 4.1, 6.3], [-2.0, -1.5, 3.0, 2.5], [3.0, 4.0, 9.5, 12.0],
                  [20.0, 20.0, 30.0, 31.0]], np.float32)
IDX = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("sr,scale", [(2, 1.0), (0, 0.7)])
def test_roi_align_kernels(K, C, sr, scale):
    r = np.random.default_rng(0)
    f = f32(r, 2, 5, 6, 2)
    y = check(K, C, "roi_align", f, BOXES, IDX, (2, 2), sr, scale)
    g = f32(r, *y.shape)
    check(K, C, "roi_align_grad", g, f.shape, BOXES, IDX, sr, scale, tol=dict(rtol=1e-5,
                                                                              atol=1e-6))
    # float64 stays float64
    check(K, C, "roi_align", f.astype(np.float64), BOXES.astype(np.float64), IDX, (1, 2), sr,
          scale, tol=dict(rtol=1e-12, atol=1e-12))


def test_index_out_of_range(K):
    with pytest.raises(ValueError, match="box index 2 is out of range for a batch of 2"):
        K.roi_align(K.asarray(np.zeros((2, 3, 3, 1), np.float32)), K.asarray(BOXES),
                    K.asarray(np.array([0, 2, 1, 0])), (1, 1), 2, 1.0)


def test_program_on_cuda_matches_cpu():
    r = np.random.default_rng(1)
    with gn.Graph():
        x = gn.Input((5, 6, 2), name="x")
        W = gn.Parameter(f32(r, 2, 3), name="W")
        feat = x @ W  # a 1x1 "conv" so the gradient reaches a parameter
        y = gn.roi_align(feat, BOXES, IDX, output_size=2, spatial_scale=0.9)
        loss = gn.mean(y * y)
    feeds = {x: f32(r, 2, 5, 6, 2)}
    want, (dw,) = gn.compile(loss, wrt=[W])(feeds)
    got, (dg,) = gn.compile(loss, wrt=[W], device="cuda")(feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(dg, dw, rtol=1e-4, atol=1e-6)
