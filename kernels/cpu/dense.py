"""Dense kernels: ``act(x @ W + b)`` as one BLAS GEMM plus one fused pass for bias and activation.

Inputs of any rank are viewed as 2-D ``(rows, in)``. Backward is one fused pass that forms
``dZ = g * act'(z)`` and accumulates the bias gradient (per-thread partial column sums, so
the parallel loop never writes one element from two threads), then two GEMMs:
``dx = dZ W^T`` and ``dW = x^T dZ``. The activation math is the shared family of
``activation.py``.
"""

import numba
import numpy as np
from numba import prange

from ..jit import PARALLEL_MIN, kernel
from .activation import act, act_grad, code_of, pick


@kernel
def _gemm(a, b):
    # np.dot in nopython mode calls BLAS (sgemm/dgemm)
    return np.dot(a, b)


@kernel
def _gemm_grads(dz, x2, w):
    # dx = dZ W^T, dW = x^T dZ; the transposes are free (BLAS reads them as F-ordered)
    return np.dot(dz, w.T), np.dot(x2.T, dz)


@kernel(parallel=True)
def _bias_act(z, b, y, code, alpha):
    # z <- z + b (the pre-activation, kept when y is another array), y <- act(z)
    for i in prange(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            z[i, j] = v
            y[i, j] = act(code, v, alpha)
    return y


@kernel(parallel=True)
def _act_grad_rows(g, zy, y, dz, part, code, alpha):
    # dz = g * act'(z); part[k] = the column sums of dz over the k-th block of rows
    n = g.shape[0]
    c = part.shape[0]
    for k in prange(c):
        part[k, :] = 0
        for i in range(k * n // c, (k + 1) * n // c):
            for j in range(g.shape[1]):
                d = g[i, j] * act_grad(code, zy[i, j], y[i, j], alpha)
                dz[i, j] = d
                part[k, j] += d
    return dz


def dense(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, kind: str | None,
          alpha: float = 0.0, keep_z: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(y, z)``: ``y = act(x @ W + b)`` and the pre-activation ``z`` (``y`` itself unless
    ``keep_z``; only gelu's derivative needs ``z``, the others read it from ``y``)."""
    n_in, n_out = W.shape
    x2 = np.ascontiguousarray(x).reshape(-1, n_in)
    z = _gemm(x2, np.ascontiguousarray(W))
    code = code_of(kind)
    y = z
    if b is not None or code != 0:
        bb = np.zeros(n_out, x.dtype) if b is None else np.ascontiguousarray(b)
        y = np.empty_like(z) if keep_z else z
        pick(_bias_act, z.size)(z, bb, y, code, x.dtype.type(alpha))
    shape = tuple(x.shape[:-1]) + (n_out,)
    return y.reshape(shape), z.reshape(shape)


def dense_grad(g: np.ndarray, x: np.ndarray, W: np.ndarray, zy: np.ndarray, y: np.ndarray,
               kind: str | None, alpha: float = 0.0,
               bias: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(dx, dW, db)`` of the dense op; ``zy`` is the kept pre-activation, or ``y``."""
    n_in, n_out = W.shape
    g2 = np.ascontiguousarray(g).reshape(-1, n_out)
    dz = np.empty_like(g2)
    chunks = numba.get_num_threads() if g2.size >= PARALLEL_MIN else 1
    part = np.empty((chunks, n_out), g2.dtype)
    pick(_act_grad_rows, g2.size)(g2, np.ascontiguousarray(zy).reshape(-1, n_out),
                                  np.ascontiguousarray(y).reshape(-1, n_out), dz, part,
                                  code_of(kind), g2.dtype.type(alpha))
    x2 = np.ascontiguousarray(x).reshape(-1, n_in)
    dx, dW = _gemm_grads(dz, x2, np.ascontiguousarray(W))
    db = part.sum(axis=0) if bias else None
    return dx.reshape(x.shape), dW, db
