"""Inverted dropout with a counter-based mask: no random state, no stored mask.

Element ``i`` is kept when the top 24 bits of ``splitmix64(seed, i)`` reach ``rate * 2^24``.
The mask is a pure function of ``(seed, i)``, so the backward pass recomputes it instead of
storing it, every thread (or CUDA thread) computes its own elements independently, and a
GPU twin with the same hash draws the same mask. Kept elements are scaled by
``1 / (1 - rate)`` so the expected value is unchanged.
"""

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["dropout", "dropout_grad"]

# splitmix64 (Steele, Lea, Flood 2014): the i-th output of the stream that starts at `seed`
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)


@kernel
def keep(seed, i, threshold):
    """True when element ``i`` survives: 24 uniform bits of the hash against ``threshold``."""
    z = seed + (np.uint64(i) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return (z >> _S40) >= threshold


@kernel(parallel=True)
def _dropout_flat(x, out, seed, threshold, scale):
    # out = x * mask / (1 - rate); also the backward pass, with x = g
    zero = scale - scale
    for i in prange(x.shape[0]):
        out[i] = x[i] * scale if keep(seed, i, threshold) else zero


def _threshold(rate: float) -> np.uint64:
    return np.uint64(round(rate * (1 << 24)))


def dropout(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``x * mask / (1 - rate)``, the mask drawn from ``(seed, element index)``."""
    out = np.empty(x.shape, x.dtype)
    s = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)  # any Python int, negative ones included
    with np.errstate(over="ignore"):  # the hash wraps on purpose (NUMBA_DISABLE_JIT runs)
        pick(_dropout_flat, x.size)(np.ascontiguousarray(x).reshape(-1), out.reshape(-1), s,
                                    _threshold(rate), x.dtype.type(1 / (1 - rate)))
    return out


def dropout_grad(g: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``g * mask / (1 - rate)`` with the forward pass's mask (the same ``seed``)."""
    return dropout(g, rate, seed)
