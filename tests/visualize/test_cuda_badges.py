"""On the GPU (or the CUDA simulator: NUMBA_ENABLE_CUDASIM=1), gradient pictures show the
cuda.jit badge and the same norms as the CPU."""

import numpy as np
import pytest

import graphnet as gn
import graphnet.visualize as viz

from .conftest import mlp_graph

pytestmark = pytest.mark.cuda


def _cuda_or_skip():
    try:
        gn.compile(gn.exp(gn.constant(np.zeros(2, np.float32))), device="cuda")
    except gn.GraphError as e:
        pytest.skip(f"no CUDA device or simulator: {e}")


def test_gradient_picture_on_cuda_matches_cpu():
    _cuda_or_skip()
    _, x, loss = mlp_graph()
    xb = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    cpu = viz.render_gradients(loss, {x: xb}, device="cpu")
    gpu = viz.render_gradients(loss, {x: xb}, device="cuda")
    assert gpu.report.badge == "cuda.jit" and cpu.report.badge == "njit"
    assert ">cuda.jit</font>" in gpu.source and "njit" not in gpu.source
    for name, n in cpu.report.norms.items():
        assert gpu.report.norms[name] == pytest.approx(n, rel=1e-4), name
    vals = viz.render_values(loss, {x: xb}, device="cuda")
    assert "kernels: cuda.jit" in vals.source
