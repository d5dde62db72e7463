"""Matrix products through the vendor's cuBLAS (by way of CuPy), on the same device memory.

numba-cuda's arrays and CuPy's are both views of device memory: ``view`` makes a CuPy ndarray
over a Numba array's pointer (``UnownedMemory``: no copy). Not through
``__cuda_array_interface__``: a consumer of that protocol synchronizes the producer's stream
at every hand-over, a host wait per product. None is needed: Numba's launches and CuPy's
both go to the legacy default stream, so a product runs after the kernels that wrote its
operands and before those that read its result. CuPy's ``matmul`` then calls cuBLAS's GEMM
(strided-batched over broadcast batch axes).

``library()`` is None, and ``matmul.py`` runs its own tiled ``@cuda.jit`` GEMM, where CuPy is
not installed (the ``cuda`` extra installs it), no GPU answers, under the simulator (its
arrays are host memory), or with ``GRAPHNET_CUBLAS=0``.
"""

from __future__ import annotations

import os

from . import _base

__all__ = ["library", "gemm", "FLOATS"]

FLOATS = ("float32", "float64")  # the dtypes cuBLAS multiplies (others: the tiled kernel)

_STATE: dict = {}  # "lib": the CuPy module or None, once looked for; "device": its id


def library():
    """The CuPy module where it can run cuBLAS on this process's GPU, else None. Looked for
    once, at the first product (importing CuPy takes about a second)."""
    if "lib" not in _STATE:
        _STATE["lib"] = _find()
    return _STATE["lib"]


def _find():
    if _base.SIM or os.environ.get("GRAPHNET_CUBLAS", "1") == "0":
        return None
    try:
        import cupy
        from numba import cuda

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        _STATE["device"] = cuda.get_current_device().id  # the device Numba's arrays live on
        cupy.cuda.Device(_STATE["device"]).use()
        # one small product: CuPy loads libcublas at its first GEMM, and a wheel without it
        # (no CUDA toolkit, no nvidia-cublas) must fall back here, not fail in a training step
        p = cupy.ones((2, 2), "float32") @ cupy.ones((2, 2), "float32")
        if float(p[0, 0]) != 2.0:
            return None
    except Exception:  # not installed, no driver, no device, no libcublas: the tiled kernel
        return None
    return cupy


def view(x):
    """A CuPy ndarray over device array ``x``'s memory (same shape, strides and dtype)."""
    cp = library()
    ptr = x.__cuda_array_interface__["data"][0]
    mem = cp.cuda.UnownedMemory(ptr, x.size * x.dtype.itemsize, x, _STATE["device"])
    return cp.ndarray(tuple(x.shape), x.dtype, cp.cuda.MemoryPointer(mem, 0),
                      strides=tuple(x.strides))


def gemm(a, b, trans_a: bool, trans_b: bool, out):
    """``out[...] = op(a) @ op(b)``, op swapping the last two axes when asked, batch axes
    broadcast; ``out`` (a device array) has the product's shape and dtype."""
    lib = library()
    va, vb = view(a), view(b)
    if trans_a:
        va = lib.swapaxes(va, -1, -2)
    if trans_b:
        vb = lib.swapaxes(vb, -1, -2)
    lib.matmul(va, vb, out=view(out))
    return out
