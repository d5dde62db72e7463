"""2-D pooling kernels (channels-last NHWC): max and average over windows, forward and backward.

One window walker serves both kinds. The geometry is explicit: window ``o`` along an axis
covers input cells ``[o*s - pad, o*s - pad + k)`` clipped to the input, so padded cells are
never read: they never win a max and never count in an average (TensorFlow's "same").
Forward keeps, for a max, the flat index into x of each window's winner (the first maximum
in scan order: rows, then columns). Backward is a gather: each input cell sums the gradient
of the windows that cover it (a max window only if the cell was its winner), so parallel
tasks over batch*rows never write the same element (no atomics, no separate zeroing pass).
The scalar index math (``span``, ``covering``) is shared with the CUDA twins.
"""

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["pool2d", "pool2d_grad"]

KINDS = {"max": 0, "avg": 1}


@kernel
def span(o, s, k, pad, n):
    """Input cells ``[start, end)`` of window ``o`` (stride s, size k, leading pad), clipped."""
    start = o * s - pad
    return max(start, 0), min(start + k, n)


@kernel
def covering(i, s, k, pad, n_out):
    """Windows ``[lo, hi)`` that contain input cell ``i``: o*s - pad <= i < o*s - pad + k."""
    t = i + pad - k + 1  # the first o with o*s >= t
    lo = 0 if t <= 0 else (t + s - 1) // s
    return lo, min((i + pad) // s + 1, n_out)


@kernel(parallel=True)
def _pool_fwd(x, ph, pw, sh, sw, pt, pl, is_max, one, y, arg):
    # y[n, oh, ow, :] = max or mean of x over the window's real cells. One task per output
    # row: the windows' first cells start the max (or sum), then each input row of the
    # windows updates them, channels innermost and with selects, not branches, so the
    # channel loops vectorize.
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for r in prange(N * OH):
        n, oh = r // OH, r % OH
        h0, h1 = span(oh, sh, ph, pt, H)
        yr, xr = y[n, oh], x[n, h0]
        ar = arg[n, oh] if is_max else arg[0, 0]
        for ow in range(OW):
            w0, w1 = span(ow, sw, pw, pl, W)
            for c in range(C):
                yr[ow, c] = xr[w0, c]
            if is_max:
                first = ((n * H + h0) * W + w0) * C
                for c in range(C):
                    ar[ow, c] = first + c
        for ih in range(h0, h1):
            xr = x[n, ih]
            for ow in range(OW):
                w0, w1 = span(ow, sw, pw, pl, W)
                for iw in range(w0 + 1 if ih == h0 else w0, w1):
                    if is_max:
                        base = ((n * H + ih) * W + iw) * C
                        for c in range(C):
                            v, b = xr[iw, c], yr[ow, c]
                            take = v > b  # strict: ties keep the first in scan order
                            yr[ow, c] = v if take else b
                            ar[ow, c] = base + c if take else ar[ow, c]
                    else:
                        for c in range(C):
                            yr[ow, c] += xr[iw, c]
        if not is_max:
            for ow in range(OW):
                w0, w1 = span(ow, sw, pw, pl, W)
                inv = one / type(one)((h1 - h0) * (w1 - w0))  # mean over real cells
                for c in range(C):
                    yr[ow, c] *= inv


@kernel(parallel=True)
def _pool_bwd(g, arg, ph, pw, sh, sw, pt, pl, is_max, one, dx):
    # dx[n, ih, iw, c] = sum over the windows (oh, ow) covering the cell of
    #   max: g[n, oh, ow, c] where arg[n, oh, ow, c] is this cell;  avg: g[n, oh, ow, c] / count
    # One task per input row, gathering from the output rows whose windows cover it.
    N, H, W, C = dx.shape
    OH, OW = g.shape[1], g.shape[2]
    zero = one - one
    for r in prange(N * H):
        n, ih = r // H, r % H
        d = dx[n, ih]
        d[:] = zero
        oh0, oh1 = covering(ih, sh, ph, pt, OH)
        for oh in range(oh0, oh1):
            h0, h1 = span(oh, sh, ph, pt, H)
            gr = g[n, oh]
            ar = arg[n, oh] if is_max else arg[0, 0]
            for iw in range(W):
                ow0, ow1 = covering(iw, sw, pw, pl, OW)
                base = ((n * H + ih) * W + iw) * C
                for ow in range(ow0, ow1):
                    if is_max:
                        for c in range(C):
                            d[iw, c] += gr[ow, c] if ar[ow, c] == base + c else zero
                    else:
                        w0, w1 = span(ow, sw, pw, pl, W)
                        inv = one / type(one)((h1 - h0) * (w1 - w0))
                        for c in range(C):
                            d[iw, c] += gr[ow, c] * inv


def geometry(shape: tuple, pool_size: tuple, strides: tuple, pads: tuple) -> tuple[int, int]:
    """The output ``(height, width)`` for explicit ``pads = (top, bottom, left, right)``;
    raises ValueError for sizes that leave a window without a real cell."""
    if len(shape) != 4:
        raise ValueError(f"pooling expects channels-last (batch, height, width, channels) "
                         f"arrays, got shape {tuple(shape)}")
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = pool_size, strides, pads
    if min(ph, pw, sh, sw) < 1:
        raise ValueError(f"pool_size {pool_size} and strides {strides} must be positive")
    if not (0 <= pt < ph and 0 <= pb < ph and 0 <= pl < pw and 0 <= pr < pw):
        raise ValueError(f"pads {pads} must be non-negative and smaller than the pool "
                         f"{pool_size}, or a window could hold only padding")
    H, W = shape[1] + pt + pb, shape[2] + pl + pr
    if H < ph or W < pw:
        raise ValueError(f"pool_size {pool_size} does not fit the padded input "
                         f"{H}x{W} of shape {tuple(shape)}")
    return (H - ph) // sh + 1, (W - pw) // sw + 1


def pool2d(x: np.ndarray, pool_size: tuple, strides: tuple, pads: tuple,
           kind: str, out: tuple | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(y, arg)``: max (``kind="max"``, arg = flat index into x of each winner) or average
    (``"avg"``, arg None) pooling of NHWC ``x`` over real cells only. ``out = (y, arg)``
    are arrays to write into (arg unused for avg)."""
    OH, OW = geometry(x.shape, pool_size, strides, pads)
    is_max = KINDS[kind] == 0
    x = np.ascontiguousarray(x)
    if out is None:
        y = np.empty((x.shape[0], OH, OW, x.shape[3]), x.dtype)
        arg = np.empty(y.shape if is_max else (1, 1, 1, 1), np.int64)  # (unread for avg)
    else:
        y, arg = out
    pick(_pool_fwd, x.size)(x, *pool_size, *strides, pads[0], pads[2], is_max,
                            x.dtype.type(1), y, arg)
    return y, (arg if is_max else None)


def pool2d_grad(g: np.ndarray, arg: np.ndarray | None, x_shape: tuple, pool_size: tuple,
                strides: tuple, pads: tuple, kind: str, out: np.ndarray | None = None
                ) -> np.ndarray:
    """dx of :func:`pool2d`: g routed to each window's winner (max) or spread evenly over
    its real cells (avg); overlapping windows add up. ``out`` is an array to write dx into."""
    OH, OW = geometry(x_shape, pool_size, strides, pads)
    if tuple(g.shape) != (x_shape[0], OH, OW, x_shape[3]):
        raise ValueError(f"gradient of shape {tuple(g.shape)} does not match the pooled "
                         f"shape {(x_shape[0], OH, OW, x_shape[3])}")
    is_max = KINDS[kind] == 0
    dx = np.empty(tuple(x_shape), g.dtype) if out is None else out
    a = arg if is_max else np.empty((1, 1, 1, 1), np.int64)  # (unread for avg)
    pick(_pool_bwd, dx.size)(np.ascontiguousarray(g), a, *pool_size, *strides, pads[0],
                             pads[2], is_max, g.dtype.type(1), dx)
    return dx
