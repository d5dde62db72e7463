"""Reductions over axes: sum, max (with its argmax mask) and sum_to for broadcast gradients.

Any set of axes reduces through one of two 2-D kernels: leading axes as a column sum (the
bias gradient: sum over the batch), otherwise the kept axes are moved first and each row is
summed. Both are parallel over the kept elements.
"""

import numpy as np
from numba import prange

from ..jit import kernel


@kernel(parallel=True)
def _rowsum(x2, out):
    # out[i] = sum_j x2[i, j]
    for i in prange(x2.shape[0]):
        acc = x2[i, 0] - x2[i, 0]
        for j in range(x2.shape[1]):
            acc += x2[i, j]
        out[i] = acc
    return out


@kernel
def _colsum(x2, out):
    # out[j] = sum_i x2[i, j], reading rows in memory order
    out[:] = 0
    for i in range(x2.shape[0]):
        for j in range(x2.shape[1]):
            out[j] += x2[i, j]
    return out


@kernel(parallel=True)
def _rowmax(x2, out, arg):
    for i in prange(x2.shape[0]):
        best = x2[i, 0]
        k = 0
        for j in range(1, x2.shape[1]):
            if x2[i, j] > best:
                best = x2[i, j]
                k = j
        out[i] = best
        arg[i] = k
    return out


def _as_rows(x: np.ndarray, axes: tuple) -> tuple[np.ndarray, tuple]:
    """x with the kept axes first, as a 2-D (kept, reduced) array, and the kept shape."""
    keep = tuple(i for i in range(x.ndim) if i not in axes)
    if keep + axes != tuple(range(x.ndim)):
        x = np.ascontiguousarray(x.transpose(keep + axes))
    kshape = tuple(x.shape[: len(keep)])
    m = int(np.prod(kshape)) if kshape else 1
    return np.ascontiguousarray(x).reshape(m, -1), kshape


def sum(x: np.ndarray, axes: tuple) -> np.ndarray:  # noqa: A001 - NumPy's name
    """Sum over ``axes`` (sorted, non-negative), dropping them."""
    if not axes:
        return x.copy()
    if axes == tuple(range(len(axes))):  # leading axes: column sums, no transpose
        x2 = np.ascontiguousarray(x).reshape(int(np.prod(x.shape[: len(axes)])), -1)
        out = _colsum(x2, np.empty(x2.shape[1], x.dtype))
        return out.reshape(x.shape[len(axes):])
    x2, kshape = _as_rows(x, axes)
    return _rowsum(x2, np.empty(x2.shape[0], x.dtype)).reshape(kshape)


def max(x: np.ndarray, axes: tuple) -> tuple[np.ndarray, np.ndarray]:  # noqa: A001
    """Max over ``axes`` and the flat index (within the reduced block) of the first maximum."""
    x2, kshape = _as_rows(x, axes)
    arg = np.empty(x2.shape[0], np.int64)
    out = _rowmax(x2, np.empty(x2.shape[0], x.dtype), arg)
    return out.reshape(kshape), arg.reshape(kshape)


def sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Reduce a broadcast gradient back to ``shape``: sum over the axes broadcasting added."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return sum(g, axes).reshape(shape)
