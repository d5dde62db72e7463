"""Softmax and log-softmax along any axis on the GPU: one thread per row, no transposes.

A row is every element that shares the other axes' indices; its start comes from the kept
axes' strides and its elements lie ``stride`` apart, so softmax over axis 0 reads in place.
Stable (the row maximum comes out first). Backward: softmax ``dx = y (g - sum(g y))``;
log-softmax ``dx = g - exp(y) sum(g)``.
"""

from __future__ import annotations

import math

from numba import cuda

from . import _base
from .reduce import _offset

__all__ = ["softmax", "softmax_grad"]


@cuda.jit
def _softmax_rows(x, out, nrows, kshape, kstr, n, stride, log):
    for r in range(cuda.grid(1), nrows, cuda.gridsize(1)):
        b = _offset(r, kshape, kstr)
        m = x[b]
        for j in range(1, n):
            if x[b + j * stride] > m:
                m = x[b + j * stride]
        s = m - m
        for j in range(n):
            s += math.exp(x[b + j * stride] - m)
        if log:  # x - m - log sum exp(x - m)
            lse = m + math.log(s)
            for j in range(n):
                out[b + j * stride] = x[b + j * stride] - lse
        else:
            for j in range(n):
                out[b + j * stride] = math.exp(x[b + j * stride] - m) / s


@cuda.jit
def _softmax_grad_rows(g, y, out, nrows, kshape, kstr, n, stride, log):
    for r in range(cuda.grid(1), nrows, cuda.gridsize(1)):
        b = _offset(r, kshape, kstr)
        s = g[b] - g[b]
        if log:
            for j in range(n):
                s += g[b + j * stride]
            for j in range(n):
                o = b + j * stride
                out[o] = g[o] - math.exp(y[o]) * s
        else:
            for j in range(n):
                s += g[b + j * stride] * y[b + j * stride]
            for j in range(n):
                o = b + j * stride
                out[o] = y[o] * (g[o] - s)


def _plan(shape: tuple, axis: int):
    """(rows, kept shape, kept strides, row length, element stride) for rows along ``axis``."""
    st = _base.bcast_strides(shape, shape)
    keep = [i for i in range(len(shape)) if i != axis]
    kshape, (kstr,) = _base.coalesce(tuple(shape[i] for i in keep), [tuple(st[i] for i in keep)])
    n = shape[axis]
    return _base.size(shape) // max(n, 1), kshape, kstr, n, st[axis] if n > 1 else 1


def softmax(x, axis: int = -1, log: bool = False):
    """Softmax (or log-softmax with ``log=True``) of ``x`` along ``axis``."""
    from . import asarray

    x = asarray(x)
    axis %= x.ndim
    out = _base.empty(x.shape, x.dtype)
    plan = _plan(tuple(x.shape), axis)
    if x.size:
        _softmax_rows[_base.blocks(plan[0]), _base.TPB](_base.flat(x), _base.flat(out), *plan,
                                                        bool(log))
    return out


def softmax_grad(g, y, axis: int = -1, log: bool = False):
    """The vector-Jacobian product of (log-)softmax, given its output ``y``."""
    from . import asarray

    g, y = asarray(g), asarray(y)
    axis %= y.ndim
    out = _base.empty(y.shape, y.dtype)
    plan = _plan(tuple(y.shape), axis)
    if y.size:
        _softmax_grad_rows[_base.blocks(plan[0]), _base.TPB](
            _base.flat(g), _base.flat(y), _base.flat(out), *plan, bool(log))
    return out
