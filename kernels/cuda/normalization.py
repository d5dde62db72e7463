"""Layer and batch normalization on the GPU, the CPU kernels' formulas (see
``kernels/cpu/normalization.py``): ``xhat = (x - mean) rstd``, ``rstd = 1 / sqrt(var + eps)``
with the biased variance; ``dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))``.

Layer norm: one thread per row (a sample's features) forward and for dx. Sums down the
columns (batch norm's statistics, every dgamma and dbeta) go in chunks of rows, one thread
per (chunk, column), then one per column over the chunks: deterministic, no atomics, and
neighbouring threads read neighbouring columns, so reads coalesce. Batch norm's training
forward updates the moving averages in place; a grid-stride pass normalizes every element.
An empty batch (no rows) normalizes nothing and leaves the moving statistics alone.
"""

from __future__ import annotations

import math

from numba import cuda

from . import _base

__all__ = ["layer_norm", "layer_norm_grad", "batch_norm", "batch_norm_grad"]


@cuda.jit
def _ln_rows(x, gamma, beta, eps, inv_n, y, mean, rstd):
    n = x.shape[1]
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        s = eps - eps
        for j in range(n):
            s += x[i, j]
        m = s * inv_n
        v = eps - eps
        for j in range(n):
            d = x[i, j] - m
            v += d * d
        r = (eps / eps) / math.sqrt(v * inv_n + eps)
        mean[i] = m
        rstd[i] = r
        for j in range(n):
            y[i, j] = (x[i, j] - m) * r * gamma[j] + beta[j]


@cuda.jit
def _ln_grad_rows(g, x, gamma, mean, rstd, inv_n, dx):
    n = x.shape[1]
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        m, r = mean[i], rstd[i]
        s1 = r - r
        s2 = r - r
        for j in range(n):
            d = g[i, j] * gamma[j]
            s1 += d
            s2 += d * (x[i, j] - m) * r
        s1 *= inv_n
        s2 *= inv_n
        for j in range(n):
            dx[i, j] = r * (g[i, j] * gamma[j] - s1 - (x[i, j] - m) * r * s2)


# Sums down the columns of (M, C) run in chunks of ROWS rows: thread (chunk, column) sums
# its chunk into partials (chunks, C), then one thread per column adds the chunks in order
# (deterministic, no atomics). One thread per column alone would leave the GPU idle at C = 32.
ROWS = 4 if _base.SIM else 256


@cuda.jit
def _col_partials(g, x, mean, rstd, mode, rows, p1, p2):
    # mode 0: p1 = sum x; 1: p1 = sum (x - mean[j])^2; 2: p1 = sum g xhat with column
    # statistics (batch norm), p2 = sum g; 3: the same with row statistics (layer norm)
    M, C = x.shape[0], x.shape[1]
    for t in range(cuda.grid(1), p1.shape[0] * C, cuda.gridsize(1)):
        c, j = t // C, t % C
        a = x[0, j] - x[0, j]
        b = a
        for i in range(c * rows, min(c * rows + rows, M)):
            if mode == 0:
                a += x[i, j]
            elif mode == 1:
                d = x[i, j] - mean[j]
                a += d * d
            else:
                k = i if mode == 3 else j
                a += g[i, j] * (x[i, j] - mean[k]) * rstd[k]
                b += g[i, j]
        p1[c, j] = a
        p2[c, j] = b


@cuda.jit
def _col_total(p, scale, out):
    for j in range(cuda.grid(1), p.shape[1], cuda.gridsize(1)):
        s = p[0, j] - p[0, j]
        for c in range(p.shape[0]):
            s += p[c, j]
        out[j] = s * scale


@cuda.jit
def _bn_finish(var, eps, mean, rstd, mm, mv, momentum):
    # rstd from the variance; the moving averages updated in place
    one = eps / eps
    for j in range(cuda.grid(1), var.size, cuda.gridsize(1)):
        rstd[j] = one / math.sqrt(var[j] + eps)
        mm[j] = mm[j] * momentum + mean[j] * (one - momentum)
        mv[j] = mv[j] * momentum + var[j] * (one - momentum)


def _column_sums(g, x, mean, rstd, mode: int, scale):
    """``(p1, p2)`` column totals of ``_col_partials`` (each times ``scale``)."""
    M, C = x.shape
    nch = (M + ROWS - 1) // ROWS
    p1, p2 = _base.empty((nch, C), x.dtype), _base.empty((nch, C), x.dtype)
    _col_partials[_base.blocks(nch * C), _base.TPB](g, x, mean, rstd, mode, ROWS, p1, p2)
    t1, t2 = _base.empty(C, x.dtype), _base.empty(C, x.dtype)
    _col_total[_base.blocks(C), _base.TPB](p1, scale, t1)
    if mode >= 2:
        _col_total[_base.blocks(C), _base.TPB](p2, scale, t2)
    return t1, t2


@cuda.jit
def _bn_moving(mm, mv, eps, mean, rstd):
    # inference: the moving statistics as (mean, rstd)
    for j in range(cuda.grid(1), mm.size, cuda.gridsize(1)):
        mean[j] = mm[j]
        rstd[j] = (eps / eps) / math.sqrt(mv[j] + eps)


@cuda.jit
def _bn_apply(x, gamma, beta, mean, rstd, y):
    C = x.shape[1]
    for t in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = t // C, t % C
        s = gamma[j] * rstd[j]
        y[i, j] = x[i, j] * s + (beta[j] - mean[j] * s)


@cuda.jit
def _bn_grad_apply(g, x, gamma, mean, rstd, dgamma, dbeta, inv_m, training, dx):
    C = x.shape[1]
    for t in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = t // C, t % C
        r = rstd[j]
        if training:  # dx = gamma rstd (g - mean(g) - xhat mean(g xhat))
            dx[i, j] = gamma[j] * r * (g[i, j] - dbeta[j] * inv_m
                                       - (x[i, j] - mean[j]) * r * dgamma[j] * inv_m)
        else:
            dx[i, j] = gamma[j] * r * g[i, j]


def _zeros(n: int, dtype):
    from . import zeros

    return zeros(n, dtype)


def _rows(a, n: int):
    from . import asarray

    return _base.rows(asarray(a), n)


def layer_norm(x, gamma, beta, epsilon: float):
    """``(y, mean, rstd)``: rows of ``gamma.size`` trailing features normalized, scaled and
    shifted; mean and rstd per row."""
    K = gamma.size
    x2 = _rows(x, K)
    M, dt = x2.shape[0], x.dtype.type
    y = _base.empty(x2.shape, x.dtype)
    mean, rstd = _base.empty(M, x.dtype), _base.empty(M, x.dtype)
    if M:
        _ln_rows[_base.blocks(M), _base.TPB](x2, _rows(gamma, K)[0], _rows(beta, K)[0],
                                             dt(epsilon), dt(1.0 / K), y, mean, rstd)
    return y.reshape(x.shape), mean, rstd


def layer_norm_grad(g, x, gamma, mean, rstd):
    """``(dx, dgamma, dbeta)`` of layer normalization."""
    K = gamma.size
    x2, g2, gm = _rows(x, K), _rows(g, K), _rows(gamma, K)[0]
    M = x2.shape[0]
    dx = _base.empty(x2.shape, x.dtype)
    dgamma, dbeta = _zeros(K, x.dtype), _zeros(K, x.dtype)  # stay zero for no rows
    if M:
        _ln_grad_rows[_base.blocks(M), _base.TPB](g2, x2, gm, mean, rstd,
                                                  x.dtype.type(1.0 / K), dx)
        dgamma, dbeta = _column_sums(g2, x2, mean, rstd, 3, x.dtype.type(1))
    return dx.reshape(x.shape), dgamma.reshape(gamma.shape), dbeta.reshape(gamma.shape)


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon: float, momentum: float,
               training: bool):
    """``(y, mean, rstd)`` of batch normalization over the last axis; in ``training`` the
    batch statistics, and the moving ones updated in place (device arrays)."""
    from . import asarray

    C = x.shape[len(x.shape) - 1]  # the simulator's shapes take no negative index
    x2 = _rows(x, C)
    dt = x.dtype.type
    mean, rstd = _base.empty(C, x.dtype), _base.empty(C, x.dtype)
    mm, mv = asarray(moving_mean), asarray(moving_variance)
    if training and x2.shape[0]:
        inv_n = dt(1.0 / x2.shape[0])
        mean, _ = _column_sums(x2, x2, mean, rstd, 0, inv_n)
        var, _ = _column_sums(x2, x2, mean, rstd, 1, inv_n)
        _bn_finish[_base.blocks(C), _base.TPB](var, dt(epsilon), mean, rstd, mm, mv,
                                               dt(momentum))
        if mm is not moving_mean:  # a host array was given: write the update back
            moving_mean[...] = mm.copy_to_host()
            moving_variance[...] = mv.copy_to_host()
    else:
        _bn_moving[_base.blocks(C), _base.TPB](mm, mv, dt(epsilon), mean, rstd)
    y = _base.empty(x2.shape, x.dtype)
    if x2.size:
        _bn_apply[_base.blocks(x2.size), _base.TPB](x2, asarray(gamma), asarray(beta), mean,
                                                    rstd, y)
    return y.reshape(x.shape), mean, rstd


def batch_norm_grad(g, x, gamma, mean, rstd, training: bool):
    """``(dx, dgamma, dbeta)`` of batch normalization (``training``: batch statistics)."""
    C = x.shape[len(x.shape) - 1]  # the simulator's shapes take no negative index
    x2, g2 = _rows(x, C), _rows(g, C)
    dgamma, dbeta = _zeros(C, x.dtype), _zeros(C, x.dtype)  # stay zero for no rows
    dx = _base.empty(x2.shape, x.dtype)
    if x2.shape[0]:
        dgamma, dbeta = _column_sums(g2, x2, mean, rstd, 2, x.dtype.type(1))
        _bn_grad_apply[_base.blocks(x2.size), _base.TPB](
            g2, x2, _rows(gamma, C)[0], mean, rstd, dgamma, dbeta,
            x.dtype.type(1.0 / x2.shape[0]), training, dx)
    return dx.reshape(x.shape), dgamma, dbeta

