"""Loss kernels on the GPU: per-element (or per-row) losses in float64, one device sum, one
division, as the CPU family (whose scalar functions are compiled here from the same source).

Softmax cross-entropy keeps each row's maximum and log-sum-exp, ``lse`` of shape (2, N),
as the CPU kernel does, for the backward pass
``(softmax - onehot) g / N``. The upstream gradient ``g`` stays on the device: each thread
reads it and first stores ``g / N`` into its own output element, which rounds it to the data
type exactly where the CPU kernel rounds its Python float.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
from numba import cuda

from . import _base
from .activation import act

__all__ = [
    "pointwise_loss", "pointwise_loss_grad", "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
]

_cpu = importlib.import_module("graphnet.kernels.cpu.loss")

_point = _base.twin(_cpu._point)
_point_grad = _base.twin(_cpu._point_grad, act=act)
# the CPU's row log-sum-exp (kernels/cpu/softmax.py), compiled for the device
row_lse = _base.twin(importlib.import_module("graphnet.kernels.cpu.softmax").row_lse,
                     exp_neg=math.exp)
CODES = _cpu.CODES


@cuda.jit
def _point_vals(p, t, vals, code, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        vals[i] = _point(code, p[i], t[i], eps)


@cuda.jit
def _point_grads(p, t, g, dp, code, eps, n):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        dp[i] = g[0] / n  # the scale g / size, rounded to the data type by the store
        dp[i] = dp[i] * _point_grad(code, p[i], t[i], eps)


@cuda.jit
def _mean_of(s, out, n):
    out[0] = s[0] / n


@cuda.jit
def _sce_sparse(z, labels, lse, vals, bad):
    # vals_i = (m_i - z[i, label_i]) + log s_i; an out-of-range label is reported in `bad`
    c = z.shape[1]
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        lse[0, i], lse[1, i] = row_lse(z, i)
        y = labels[i]
        if y < 0 or y >= c:
            bad[0] = 1
            bad[1] = y
        else:
            vals[i] = (lse[0, i] - z[i, y]) + lse[1, i]


@cuda.jit
def _sce_dense(z, y, lse, vals):
    # vals_i = sum_j y_ij (lse_i - z_ij)
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        lse[0, i], lse[1, i] = row_lse(z, i)
        r = z[i, 0] - z[i, 0]
        for j in range(z.shape[1]):
            r += y[i, j] * ((lse[0, i] - z[i, j]) + lse[1, i])
        vals[i] = r


@cuda.jit
def _sce_sparse_grad(z, labels, lse, g, n, dz):
    # dz = scale (softmax - onehot), softmax = exp((z - m) - log s)
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        dz[i, 0] = g[0] / n
        scale = dz[i, 0]
        for j in range(z.shape[1]):
            dz[i, j] = scale * math.exp((z[i, j] - lse[0, i]) - lse[1, i])
        dz[i, labels[i]] -= scale


@cuda.jit
def _sce_dense_grad(z, y, lse, g, n, dz):
    # dz = scale (softmax sum_j y_ij - y)
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        dz[i, 0] = g[0] / n
        scale = dz[i, 0]
        sy = z[i, 0] - z[i, 0]
        for j in range(z.shape[1]):
            sy += y[i, j]
        for j in range(z.shape[1]):
            dz[i, j] = scale * (math.exp((z[i, j] - lse[0, i]) - lse[1, i]) * sy - y[i, j])


def _mean(vals, n: int, dtype):
    """The float64 sum of ``vals`` divided by ``n``, as a 0-d array of ``dtype``."""
    from .reduce import sum as rsum

    out = _base.empty((1,), dtype)
    s = rsum(vals, (0,)) if vals.size else _zeros64()
    _mean_of[1, 1](s.reshape((1,)), out, max(n, 1))
    return out.reshape(())


def _zeros64():
    from . import zeros

    return zeros((), np.float64)


def pointwise_loss(p, t, kind: str, eps: float = 0.0):
    """The mean over all elements of the loss ``kind``; a 0-d array of ``p``'s dtype."""
    from . import asarray

    p = asarray(p)
    t = asarray(t, p.dtype)
    vals = _base.empty((p.size,), np.float64)
    if p.size:
        _point_vals[_base.blocks(p.size), _base.TPB](_base.flat(p), _base.flat(t), vals,
                                                     CODES[kind], p.dtype.type(eps))
    return _mean(vals, p.size, p.dtype)


def pointwise_loss_grad(g, p, t, kind: str, eps: float = 0.0):
    """``(dp, dt)``: the loss gradient scaled by ``g / size``; ``dt = -dp`` for mse, mae and
    huber, None for the cross-entropies (labels are data)."""
    from . import asarray
    from .elementwise import neg

    p = asarray(p)
    tt = asarray(t, p.dtype)
    dp = _base.empty(p.shape, p.dtype)
    code = CODES[kind]
    if p.size:
        _point_grads[_base.blocks(p.size), _base.TPB](
            _base.flat(p), _base.flat(tt), _base.flat(asarray(g, p.dtype)), _base.flat(dp),
            code, p.dtype.type(eps), max(p.size, 1))
    return dp, (neg(dp).reshape(tuple(t.shape)) if code in _cpu.DIFFERENCE else None)


def _rows(z, labels):
    from . import asarray

    z = asarray(z)
    c = tuple(z.shape)[-1]
    z2 = _base.rows(z, c)
    if labels.dtype.kind in "iu":
        y = _base.flat(asarray(labels, np.int64)) if labels.size else \
            asarray(labels, np.int64).reshape((0,))
    else:
        y = _base.rows(asarray(labels, z.dtype), c)
    return z2, y


def softmax_cross_entropy(z, labels):
    """``(loss, lse)``: the batch-mean cross-entropy of logits ``z`` (..., C) against integer
    class ids (...) or probability rows (..., C); ``lse`` (2, N) keeps each row's maximum
    and log-sum-exp for backward."""
    z2, y = _rows(z, labels)
    n = z2.shape[0]
    lse = _base.empty((2, n), z2.dtype)  # each row's maximum m and log sum exp(z - m)
    vals = _base.empty((n,), np.float64)
    if n:
        if y.ndim == 1:
            c = z2.shape[1]
            label = _base.bad_id(_sce_sparse, n, (z2, y, lse, vals), labels, c)
            if label is not None:
                raise ValueError(f"label {label} is out of range for {c} classes (0..{c - 1})")
        else:
            _sce_dense[_base.blocks(n), _base.TPB](z2, y, lse, vals)
    return _mean(vals, n, z2.dtype), lse


def softmax_cross_entropy_grad(g, z, labels, lse):
    """d loss / d z = g (softmax(z) - y) / N, from the forward pass's ``lse``."""
    from . import asarray

    z2, y = _rows(z, labels)
    n = z2.shape[0]
    dz = _base.empty(z2.shape, z2.dtype)
    if n:
        k = _sce_sparse_grad if y.ndim == 1 else _sce_dense_grad
        k[_base.blocks(n), _base.TPB](z2, y, asarray(lse), _base.flat(asarray(g, z2.dtype)),
                                      max(n, 1), dz)
    return dz.reshape(tuple(z.shape))
