"""Reductions over axes: sum, mean, max (with its argmax) and their backward rules, and sum_to
for broadcast gradients.

A run of adjacent axes before the last reduces in place as ``(before, run, after)`` blocks,
rows added in memory order (leading axes: the bias gradient, a sum over the batch; middle
axes: a mean over time); other sets of axes move the kept axes first and sum each row.
Both are parallel over the kept elements.
"""

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["sum", "max", "sum_to", "mean", "broadcast_to", "max_grad", "running_sum"]


@kernel(parallel=True)
def _rowsum(x2, out):
    # out[i] = sum_j x2[i, j]
    for i in prange(x2.shape[0]):
        acc = x2[i, 0] - x2[i, 0]
        for j in range(x2.shape[1]):
            acc += x2[i, j]
        out[i] = acc
    return out


@kernel(parallel=True)
def _midsum(x3, out):
    # out[p, q] = sum_r x3[p, r, q]: the rows of each block added in memory order, so the
    # inner loop over q is unit-stride and vectorizes (leading axes are p = 1)
    for p in prange(x3.shape[0]):
        o = out[p]
        for q in range(x3.shape[2]):
            o[q] = 0
        for r in range(x3.shape[1]):
            xr = x3[p, r]
            for q in range(x3.shape[2]):
                o[q] += xr[q]
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
    if len(axes) == x.ndim:  # everything: one row, summed in a register (a column sum of
        # one column would load and store its accumulator per element)
        return _rowsum(np.ascontiguousarray(x).reshape(1, -1), np.empty(1, x.dtype)).reshape(())
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)) and hi < x.ndim:  # one run of axes before the last:
        # (before, run, after) blocks summed in memory order, no transpose (the mean over
        # time of an embedding, (64, 64, 128): 0.6 ms through a transposed copy, 0.05 here)
        pre, post = int(np.prod(x.shape[:lo])), int(np.prod(x.shape[hi:]))
        x3 = np.ascontiguousarray(x).reshape(pre, -1, post)
        out = pick(_midsum, x.size)(x3, np.empty((pre, post), x.dtype))
        return out.reshape(x.shape[:lo] + x.shape[hi:])
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


# -- mean and the backward rules of the reductions -----------------------------------------

@kernel
def _scale(flat, c):
    # flat *= c in place; c comes converted to the array's dtype (no float64 promotion)
    for i in range(flat.size):
        flat[i] *= c


@kernel(parallel=True)
def _rowscatter(g, arg, out2):
    # out2[i, arg[i]] = g[i]: the gradient of a max goes to the first maximum of each row
    for i in prange(out2.shape[0]):
        for j in range(out2.shape[1]):
            out2[i, j] = g[i] - g[i]
        out2[i, arg[i]] = g[i]
    return out2


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def mean(x: np.ndarray, axes: tuple) -> np.ndarray:
    """Mean over ``axes``: the sum, scaled by 1/n in a second pass over the (smaller) result."""
    s = sum(x, axes)  # a fresh C-ordered array
    _scale(s.reshape(-1), x.dtype.type(1.0 / _count(x.shape, axes)))
    return s


@kernel(parallel=True)
def _midspread(g2, c, out3):
    # out3[p, r, q] = c g2[p, q]: _midsum's backward, parallel over the rows (p, r)
    R = out3.shape[1]
    for i in prange(out3.shape[0] * R):
        gp, o = g2[i // R], out3[i // R, i % R]
        for q in range(o.shape[0]):
            o[q] = gp[q] * c
    return out3


def broadcast_to(g: np.ndarray, shape: tuple, axes: tuple, scale: float = 1.0,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of a sum (scale 1) or mean (scale 1/n) over ``axes``: g copied back along them,
    into ``out`` (a reused array of ``shape``: a fresh one's pages fault in as it is written)
    or a fresh array.

    One run of axes before the last (sum's in-place case) is a parallel kernel; other axes
    one NumPy broadcasting multiply (a single pass over the output, on one thread: the
    embedding workload's (64, 64, 128) mean took 0.3 ms so).
    """
    if out is None:
        out = np.empty(shape, g.dtype)
    lo, hi = (axes[0], axes[-1] + 1) if axes else (0, 0)
    if axes and axes == tuple(range(lo, hi)) and hi < len(shape) and out.flags.c_contiguous:
        pre, post = int(np.prod(shape[:lo])), int(np.prod(shape[hi:]))
        pick(_midspread, out.size)(np.ascontiguousarray(g).reshape(pre, post),
                                   g.dtype.type(scale), out.reshape(pre, -1, post))
        return out
    keep = tuple(1 if i in axes else d for i, d in enumerate(shape))
    np.multiply(g.reshape(keep), g.dtype.type(scale), out=out)
    return out


def max_grad(g: np.ndarray, arg: np.ndarray, shape: tuple, axes: tuple) -> np.ndarray:
    """Gradient of a max over ``axes``: g at the first maximum of each reduced block, else 0.

    ``arg`` is the flat index within each block that :func:`max` returned.
    """
    keep = tuple(i for i in range(len(shape)) if i not in axes)
    perm = keep + tuple(axes)
    m = int(np.prod([shape[i] for i in keep])) if keep else 1
    r = _count(shape, axes)
    out2 = _rowscatter(np.ascontiguousarray(g).reshape(m), arg.reshape(m),
                       np.empty((m, r), g.dtype))
    out = out2.reshape(tuple(shape[i] for i in perm))
    if perm != tuple(range(len(shape))):  # move the axes back where they were
        out = np.ascontiguousarray(out.transpose(np.argsort(perm)))
    return out


def running_sum(total: np.ndarray, x, weight: float) -> None:
    """``total[0] += weight * x`` for a one-element ``x``: fit's running loss, kept where the
    loss is computed (the CUDA twin adds on the device, so a step reads nothing back)."""
    total[0] += weight * float(np.asarray(x).reshape(-1)[0])
