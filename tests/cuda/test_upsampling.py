"""Up-sampling on the CUDA backend (simulated) against the CPU kernels, and a whole program."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, f32

pytestmark = pytest.mark.lecture3


@pytest.mark.parametrize("size", [(2, 2), (3, 1)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample2d_and_its_gradient_match_cpu(K, C, interpolation, size):
    r = np.random.default_rng(0)
    x = f32(r, 2, 3, 2, 2)
    y = check(K, C, "upsample2d", x, size, interpolation, exact=interpolation == "nearest")
    check(K, C, "upsample2d_grad", f32(r, *y.shape), x.shape, size, interpolation)


def test_float64(K, C):
    r = np.random.default_rng(2)
    x = r.normal(size=(1, 3, 2, 1))
    y = check(K, C, "upsample2d", x, (2, 2), "bilinear", tol=dict(rtol=1e-12))
    check(K, C, "upsample2d_grad", r.normal(size=y.shape), x.shape, (2, 2), "bilinear",
          tol=dict(rtol=1e-12))


def test_program_on_cuda_matches_cpu():
    r = np.random.default_rng(1)
    with gn.Graph("up"):
        x = gn.Input((3, 2, 2), name="x")
        W = gn.Parameter(r.normal(size=(2, 2)).astype(np.float32), name="W")
        h = gn.matmul(x, W)
        out = gn.sum(gn.upsample2d(h, 2, "bilinear") * gn.upsample2d(h, 2))
    feeds = {x: r.normal(size=(2, 3, 2, 2)).astype(np.float32)}
    cpu_val, (cpu_dW,) = gn.compile(out, wrt=[W])(feeds)
    val, (dW,) = gn.compile(out, wrt=[W], device="cuda")(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    np.testing.assert_allclose(dW, cpu_dW, rtol=1e-4, atol=1e-6)
