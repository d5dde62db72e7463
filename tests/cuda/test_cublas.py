"""The cuBLAS route of the CUDA backend's matmul (kernels/cuda/cublas.py) and its fallback.

The simulator's arrays are host memory, so cuBLAS cannot run here: the route is checked with
a stand-in library (NumPy over the simulated arrays' own memory), which exercises every
step graphnet takes (the transposes as swapped axes, the broadcast batch, the product
written into the output array in place) against the CPU kernel. On the real GPU
(GRAPHNET_REAL_GPU=1) with CuPy installed the same forms run on cuBLAS itself, and once more
with the library switched off (the tiled kernel).
"""

from __future__ import annotations

import importlib
import os
import types

import numpy as np
import pytest

from .conftest import SIMULATED
from .parity import check

cublas = importlib.import_module("graphnet.kernels.cuda.cublas")

FORMS = [  # (a shape, b shape, trans_a, trans_b), as test_parity's matmul forms
    ((3, 5), (5, 2), False, False),
    ((5, 3), (5, 2), True, False),
    ((3, 5), (2, 5), False, True),
    ((5, 3), (2, 5), True, True),
    ((2, 3, 5), (5, 2), False, False),        # folded rows
    ((2, 1, 3, 5), (3, 5, 2), False, False),  # broadcast batch
    ((2, 3, 5), (2, 4, 5), False, True),
    ((2, 5, 3), (2, 5, 4), True, False),
]


def _forms(K, C, r, dtype=np.float32):
    for sa, sb, ta, tb in FORMS:
        a, b = r.normal(size=sa).astype(dtype), r.normal(size=sb).astype(dtype)
        check(K, C, "matmul", a, b, trans_a=ta, trans_b=tb,
              **({"tol": dict(rtol=1e-12)} if dtype == np.float64 else {}))


@pytest.fixture
def stand_in(monkeypatch):
    """cublas.library() answers a NumPy stand-in whose arrays are the simulated device
    arrays' own memory; counts the products it runs."""
    calls = []

    def matmul(a, b, out):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b, out=out)

    lib = types.SimpleNamespace(matmul=matmul, swapaxes=np.swapaxes)
    monkeypatch.setitem(cublas._STATE, "lib", lib)
    monkeypatch.setattr(cublas, "view", lambda x: x._ary)
    return calls


@pytest.mark.skipif(not SIMULATED, reason="the stand-in reads simulated arrays' memory")
def test_matmul_takes_the_library_route_when_it_is_there(K, C, stand_in):
    r = np.random.default_rng(0)
    _forms(K, C, r)
    _forms(K, C, r, np.float64)
    assert len(stand_in) == 2 * len(FORMS)  # every product went to the library
    # the transposes reach the library as swapped axes of the stored arrays
    assert stand_in[1] == ((3, 5), (5, 2)) and stand_in[2] == ((3, 5), (5, 2))
    # integer products stay on the tiled kernel (cuBLAS multiplies floats)
    before = len(stand_in)
    check(K, C, "matmul", r.integers(-3, 3, (3, 4)), r.integers(-3, 3, (4, 2)), exact=True)
    assert len(stand_in) == before


@pytest.mark.skipif(not SIMULATED, reason="the stand-in reads simulated arrays' memory")
def test_a_training_step_through_the_library_route(K, stand_in):
    import graphnet as gn

    r = np.random.default_rng(1)
    x = r.normal(size=(6, 4)).astype(np.float32)
    y = r.integers(0, 3, 6)
    losses = {}
    for device in ("cpu", "cuda"):
        m = gn.Sequential([gn.layers.Dense(5, activation="relu", seed=1),
                           gn.layers.Dense(3, seed=2)], input_shape=(4,))
        m.compile(optimizer=gn.optimizers.SGD(0.1), loss="sparse_softmax_cross_entropy",
                  device=device)
        losses[device] = m.fit(x, y, batch_size=6, epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-5)
    assert len(stand_in) >= 3 * 2  # forward and both gradient products, each step


def test_no_library_without_a_gpu(monkeypatch):
    # the simulator, GRAPHNET_CUBLAS=0, or (on a machine without a GPU) CuPy absent or
    # finding no device: None, and matmul keeps the tiled kernel
    monkeypatch.setenv("GRAPHNET_CUBLAS", "0")
    assert cublas._find() is None
    monkeypatch.delenv("GRAPHNET_CUBLAS")
    if SIMULATED:
        assert cublas._find() is None
        monkeypatch.setattr(cublas._base, "SIM", False)  # as on a machine without a GPU
        if not os.path.exists("/dev/nvidiactl"):  # (CuPy, where installed, finds none)
            assert cublas._find() is None


@pytest.mark.skipif(SIMULATED, reason="cuBLAS needs the real GPU")
def test_cublas_on_the_gpu_and_the_tiled_kernel_beside_it(K, C, monkeypatch):
    r = np.random.default_rng(2)
    if cublas.library() is None:
        pytest.skip("CuPy with cuBLAS is not installed on this GPU machine")
    _forms(K, C, r)
    _forms(K, C, r, np.float64)
    monkeypatch.setitem(cublas._STATE, "lib", None)  # the fallback, on the same GPU
    _forms(K, C, r)
