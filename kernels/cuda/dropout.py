"""Inverted dropout on the GPU with the CPU kernel's counter-based hash, so masks match bit
for bit: element ``i`` is kept when the top 24 bits of ``splitmix64(seed, i)`` reach
``rate * 2^24``. Each CUDA thread hashes its own elements; nothing is stored for backward.
"""

from __future__ import annotations

import importlib

import numpy as np
from numba import cuda

from . import _base

__all__ = ["dropout", "dropout_grad"]

_cpu = importlib.import_module("graphnet.kernels.cpu.dropout")  # the module, not the kernel

keep = _base.twin(_cpu.keep)  # the CPU hash, compiled for the device from the same source


@cuda.jit
def _dropout_flat(x, out, seed, threshold, scale):
    zero = scale - scale
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * scale if keep(seed, i, threshold) else zero


def dropout(x, rate: float, seed: int):
    """``x * mask / (1 - rate)``, the mask drawn from ``(seed, element index)``."""
    from . import asarray

    x = asarray(x)
    out = _base.empty(x.shape, x.dtype)
    if x.size:
        _dropout_flat[_base.blocks(x.size), _base.TPB](
            _base.flat(x), _base.flat(out), np.uint64(seed), _cpu._threshold(rate),
            x.dtype.type(1 / (1 - rate)))
    return out


def dropout_grad(g, rate: float, seed: int):
    """``g * mask / (1 - rate)`` with the forward pass's mask (the same ``seed``)."""
    return dropout(g, rate, seed)
