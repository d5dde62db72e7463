"""Dense kernels: ``act(x @ W + b)`` as one BLAS GEMM plus one fused pass for bias and activation.

Inputs of any rank are viewed as 2-D ``(rows, in)``. Forward and backward are each ONE
compiled call (a small layer's step is dominated by call overhead, not arithmetic), and
write into buffers the caller may reuse from step to step (``out``). Backward forms
``dZ = g * act'(z)`` in one pass that also accumulates the bias gradient (per-chunk partial
column sums, so the parallel loop never writes one element from two threads), then two
GEMMs: ``dx = dZ W^T`` and ``dW = x^T dZ``. The activation math is the shared family of
``activation.py``.
"""

import numba
import numpy as np
from numba import prange

from ..blas import gemm
from ..jit import pick, rows, scalar, specializing
from .activation import act, act_grad, code_of

__all__ = ["dense", "dense_grad"]

# chunks of the bias-gradient sum; read once, since numba.get_num_threads() inside a
# kernel would make it uncacheable
_THREADS = numba.config.NUMBA_NUM_THREADS


# the activation each compiled copy of the kernels fixes (jit.specializing): a row loop
# that branched on a run-time code stayed scalar (the backward pass over a first conv's
# (50176, 32) rows 13 ms instead of 1)
CODE = 0


@specializing("CODE", parallel=True)
def _dense_fwd(x2, W, b, alpha, inplace, y, z):
    # z = x W (BLAS sgemm/dgemm, blas.gemm), then z += b and y = act(z) in one pass
    # over the rows; an empty b means no bias. ``inplace``: y is z itself (unless the
    # backward pass needs z, gelu), and the pass then touches y only: with two names for
    # one array LLVM's overlap check fails and the loop runs scalar ((128, 256) 22 us
    # instead of 3, (50176, 32) 1.05 ms instead of 0.19). The tests sit inside the row
    # loop, which LLVM hoists (two loops under an if stayed scalar: 2.9 ms instead of 0.9);
    # 2-D indices, not a view per row (the parallel pass over (50176, 32) took 1.3 ms with
    # the views, 0.6 without). A narrow x is a GEMM too: a fused loop over the (50176, 9)
    # rows of a first 3x3 convolution took 2.9 ms, the GEMM 0.5
    gemm(x2, W, z)
    has_b = b.shape[0] > 0
    for i in prange(z.shape[0]):
        if inplace:
            for j in range(y.shape[1]):
                v = y[i, j] + b[j] if has_b else y[i, j]
                y[i, j] = act(CODE, v, alpha)
        else:
            for j in range(z.shape[1]):
                v = z[i, j] + b[j] if has_b else z[i, j]
                z[i, j] = v
                y[i, j] = act(CODE, v, alpha)


@specializing("CODE", parallel=True)
def _dense_bwd(g2, x2, W, zy, y, alpha, threads, need_dx, dz, dx, dW, db):
    # dZ = g act'(z) with per-chunk column sums for db; dx = dZ W^T, dW = x^T dZ
    # (the transposes are free: BLAS reads them as F-ordered); dx is skipped for data.
    # dW is a GEMM for a narrow x too: summed inside this pass it took 3x longer on a first
    # conv's (50176, 9) rows
    n, m = g2.shape
    chunks = min(threads, max(n, 1))
    part = np.zeros((chunks, m), g2.dtype)
    for k in prange(chunks):
        pk = part[k]
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            gi, zi, yi, di = g2[i], zy[i], y[i], dz[i]
            for j in range(m):
                d = gi[j] * act_grad(CODE, zi[j], yi[j], alpha)
                di[j] = d
                pk[j] += d
    # db = the chunks' sum, elementwise (an array assignment compiled Numba's shape-error
    # message, string formatting and all: 5 s of a cold start)
    for j in range(m):
        acc = part[0, j]
        for k in range(1, chunks):
            acc += part[k, j]
        db[j] = acc
    if need_dx:
        gemm(dz, W.T, dx)
    gemm(x2.T, dz, dW)


def dense(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, kind: str | None,
          alpha: float = 0.0, keep_z: bool = False,
          out: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, z)``: ``y = act(x @ W + b)`` and the pre-activation ``z`` (``y`` itself unless
    ``keep_z``; only gelu's derivative needs ``z``, the others read it from ``y``).
    ``out = (y, z)`` are arrays of the output's shape to write into (y may be z)."""
    n_in, n_out = W.shape
    bb = W[0, :0] if b is None else b  # an empty vector of W's dtype: no bias
    if out is None:
        z = np.empty(x.shape[:-1] + (n_out,), x.dtype)
        y = np.empty_like(z) if keep_z else z
    else:
        y, z = out
    # the parallel pass runs over the output: choose by its size, not x's
    pick(_dense_fwd.of(CODE=code_of(kind)), z.size)(
        rows(x, n_in), W, bb, scalar(x.dtype, alpha), y is z, rows(y, n_out), rows(z, n_out))
    return y, z


def dense_grad(g: np.ndarray, x: np.ndarray, W: np.ndarray, zy: np.ndarray, y: np.ndarray,
               kind: str | None, alpha: float = 0.0, bias: bool = True,
               need_dx: bool = True, out: tuple | None = None
               ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(dx, dW, db)`` of the dense op; ``zy`` is the kept pre-activation, or ``y``;
    ``dx`` is None when ``need_dx`` is false (x is data: its GEMM is skipped).
    ``out = (dz, dx, dW, db)`` are scratch and result arrays to write into."""
    n_in, n_out = W.shape
    g2 = rows(g, n_out)
    if out is None:
        dz, dx, dW = np.empty_like(g2), np.empty(x.shape, x.dtype), np.empty_like(W)
        db = np.empty(n_out, g.dtype)
    else:
        dz, dx, dW, db = out
    _dense_bwd.of(CODE=code_of(kind))(
        g2, rows(x, n_in), W, rows(zy, n_out), rows(y, n_out), scalar(g.dtype, alpha),
        _THREADS, need_dx, rows(dz, n_out), rows(dx, n_in), dW, db)
    return dx if need_dx else None, dW, db if bias else None
