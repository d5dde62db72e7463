"""kernels/jit.py: a kernel family compiled once per value of the constants it branches on."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np

from graphnet.kernels.jit import specializing

SCALE = 1  # rebound per compiled copy


@specializing("SCALE")
def _times(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * SCALE
    return out


def test_each_value_is_its_own_copy_with_the_constant_fixed():
    x = np.arange(4.0)
    k2, k3 = _times.of(SCALE=2), _times.of(SCALE=3)
    assert k2 is _times.of(SCALE=2) and k2 is not k3  # made once per value
    np.testing.assert_array_equal(k2(x, np.empty(4)), 2 * x)
    np.testing.assert_array_equal(k3(x, np.empty(4)), 3 * x)
    assert SCALE == 1  # the module's own name is left alone
    # its own name, hence its own on-disk cache file
    assert getattr(k2, "py_func", k2).__name__ == "_times_scale2"


def test_dense_copies_per_activation_agree_with_numpy(rng):
    dense = importlib.import_module("graphnet.kernels.cpu.dense")
    x = rng.normal(size=(5, 3)).astype(np.float32)
    W = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    for kind, ref in [("relu", lambda z: np.maximum(z, 0)), ("linear", lambda z: z),
                      ("sigmoid", lambda z: 1 / (1 + np.exp(-z))), ("tanh", np.tanh)]:
        y, _ = dense.dense(x, W, b, kind)
        np.testing.assert_allclose(y, ref(x.astype(np.float64) @ W + b), rtol=1e-5,
                                   atol=1e-6)


def test_the_first_compile_checks_for_blas_without_importing_scipy_linalg():
    # a fresh process: this one has scipy.linalg already (scikit-learn, PyTorch)
    code = """
import sys
import numpy as np
import graphnet.kernels.cpu as k
import numba

k.activation(np.ones(3, np.float32), "relu")  # a kernel compiled or loaded

@numba.njit
def add(a):  # a compile: Numba fills its registries, arraymath's BLAS check among them
    return a + 1

add(np.ones(2))
from numba.np import arraymath, linalg

assert arraymath._HAVE_BLAS and arraymath.ensure_blas is linalg.ensure_blas
before = "scipy.linalg" in sys.modules

@numba.njit
def dot(a, b):
    return np.dot(a, b)

total = dot(np.eye(2), np.full((2, 2), 3.0)).sum()
print(before, "scipy.linalg" in sys.modules, total)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "12.0"]  # np.dot's compile imported it, as Numba does


def test_a_kernel_loaded_from_the_cache_skips_the_registries_a_compile_fills(tmp_path):
    # two fresh processes on one empty cache: the first compiles the kernel, the second
    # loads it without Numba's array registries, and a compile after the load still works
    code = """
import sys
import numpy as np
import graphnet.kernels.cpu as k
import numba

y = k.activation(np.array([-1.0, 2.0], np.float32), "relu")
loaded = "numba.np.arrayobj" not in sys.modules

@numba.njit
def twice(a):
    return a * 2

print(loaded, y.tolist(), twice(np.arange(3.0)).tolist(), "numba.np.arrayobj" in sys.modules)
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env=env).stdout.strip() for _ in range(2)]
    assert runs == ["False [0.0, 2.0] [0.0, 2.0, 4.0] True",
                    "True [0.0, 2.0] [0.0, 2.0, 4.0] True"]
