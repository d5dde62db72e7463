"""Softmax and log-softmax over the last axis, one row per loop iteration (parallel over rows).

Stable: the row maximum is subtracted before ``exp``, so logits of 1e4 give finite results.
Another axis is moved last first (a transpose copy) and moved back after.
Backward: softmax ``dx = y (g - sum(g y))``; log-softmax ``dx = g - exp(y) sum(g)``.
"""

import math

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["softmax", "softmax_grad"]


@kernel
def row_lse(x, i):
    """``(m, log sum_j exp(x[i, j] - m))`` with ``m = max_j x[i, j]``: row i's log-sum-exp,
    split so that callers can form ``x - m - log s`` without rounding at large logits."""
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        if x[i, j] > m:
            m = x[i, j]
    s = type(m)(0)
    for j in range(x.shape[1]):
        s += math.exp(x[i, j] - m)
    return m, math.log(s)


@kernel(parallel=True)
def _softmax_rows(x, out, log):
    for i in prange(x.shape[0]):
        m, ls = row_lse(x, i)
        # (x - m) - log sum exp(x - m); not x - (m + log s), which rounds at 1e4
        for j in range(x.shape[1]):
            out[i, j] = (x[i, j] - m) - ls if log else math.exp((x[i, j] - m) - ls)
    return out


@kernel(parallel=True)
def _softmax_grad_rows(g, y, out, log):
    for i in prange(g.shape[0]):
        s = type(g[i, 0])(0)
        if log:  # dx = g - softmax * sum(g), softmax = exp(log-softmax)
            for j in range(g.shape[1]):
                s += g[i, j]
            for j in range(g.shape[1]):
                out[i, j] = g[i, j] - math.exp(y[i, j]) * s
        else:  # dx = y * (g - sum(g * y))
            for j in range(g.shape[1]):
                s += g[i, j] * y[i, j]
            for j in range(g.shape[1]):
                out[i, j] = y[i, j] * (g[i, j] - s)
    return out


def _rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` with ``axis`` moved last, contiguous, as 2-D rows."""
    if axis != a.ndim - 1:
        a = np.moveaxis(a, axis, -1)
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _back(out2: np.ndarray, like: np.ndarray, axis: int) -> np.ndarray:
    """Undo ``_rows``: the 2-D result in ``like``'s shape and layout."""
    moved = np.moveaxis(like, axis, -1).shape if axis != like.ndim - 1 else like.shape
    out = out2.reshape(moved)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis)) if axis != like.ndim - 1 else out


def softmax(x: np.ndarray, axis: int = -1, log: bool = False) -> np.ndarray:
    """Softmax (or log-softmax with ``log=True``) of ``x`` along ``axis``."""
    axis %= x.ndim
    x2 = _rows(x, axis)
    out = pick(_softmax_rows, x2.size)(x2, np.empty_like(x2), log)
    return _back(out, x, axis)


def softmax_grad(g: np.ndarray, y: np.ndarray, axis: int = -1, log: bool = False) -> np.ndarray:
    """The vector-Jacobian product of (log-)softmax, given its output ``y``."""
    axis %= y.ndim
    g2, y2 = _rows(g, axis), _rows(y, axis)
    out = pick(_softmax_grad_rows, g2.size)(g2, y2, np.empty_like(g2), log)
    return _back(out, y, axis)
