"""Softmax and log-softmax over the last axis, one row per loop iteration (parallel over rows).

Stable: the row maximum is subtracted before ``exp``, so logits of 1e4 give finite results.
Another axis is moved last first (a transpose copy) and moved back after.
Backward: softmax ``dx = y (g - sum(g y))``; log-softmax ``dx = g - exp(y) sum(g)``.
"""

import math

import numpy as np
from numba import prange

from ..jit import REASSOC, kernel, pick
from .activation import exp_neg

__all__ = ["softmax", "softmax_grad"]


@kernel(fastmath=REASSOC)
def row_lse(x, i):
    """``(m, log sum_j exp(x[i, j] - m))`` with ``m = max_j x[i, j]``: row i's log-sum-exp,
    split so that callers can form ``x - m - log s`` without rounding at large logits.
    (The row as a view indexed from 0; x - m <= 0, so the vectorizable exp_neg applies.)"""
    r = x[i]
    m = r[0]
    for j in range(1, r.shape[0]):
        if r[j] > m:
            m = r[j]
    s = type(m)(0)
    for j in range(r.shape[0]):
        s += exp_neg(r[j] - m)
    return m, math.log(s)


@kernel(parallel=True)
def _softmax_rows(x, out, log):
    for i in prange(x.shape[0]):
        m, ls = row_lse(x, i)
        xi, oi = x[i], out[i]
        # (x - m) - log sum exp(x - m); not x - (m + log s), which rounds at 1e4
        for j in range(xi.shape[0]):
            oi[j] = (xi[j] - m) - ls if log else exp_neg((xi[j] - m) - ls)


@kernel(parallel=True, fastmath=REASSOC)
def _softmax_grad_rows(g, y, out, log):
    for i in prange(g.shape[0]):
        gi, yi, oi = g[i], y[i], out[i]
        s = type(gi[0])(0)
        if log:  # dx = g - softmax * sum(g), softmax = exp(log-softmax) (<= 1)
            for j in range(gi.shape[0]):
                s += gi[j]
            for j in range(gi.shape[0]):
                oi[j] = gi[j] - exp_neg(yi[j]) * s
        else:  # dx = y * (g - sum(g * y))
            for j in range(gi.shape[0]):
                s += gi[j] * yi[j]
            for j in range(gi.shape[0]):
                oi[j] = yi[j] * (gi[j] - s)


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
    out = np.empty_like(x2)
    pick(_softmax_rows, x2.size)(x2, out, log)
    return _back(out, x, axis)


def softmax_grad(g: np.ndarray, y: np.ndarray, axis: int = -1, log: bool = False) -> np.ndarray:
    """The vector-Jacobian product of (log-)softmax, given its output ``y``."""
    axis %= y.ndim
    g2, y2 = _rows(g, axis), _rows(y, axis)
    out = np.empty_like(g2)
    pick(_softmax_grad_rows, g2.size)(g2, y2, out, log)
    return _back(out, y, axis)
