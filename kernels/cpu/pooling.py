"""2-D pooling kernels (channels-last NHWC): max and average over windows, forward and backward.

One window walker serves both kinds. The geometry is explicit: window ``o`` along an axis
covers input cells ``[o*s - pad, o*s - pad + k)`` clipped to the input, so padded cells are
never read: they never win a max and never count in an average (TensorFlow's "same").
Forward keeps, for a max, the flat index into x of each window's winner (the first maximum
in scan order: rows, then columns). Backward is a gather: each input cell sums the gradient
of the windows that cover it (a max window only if the cell was its winner), so parallel
tasks over batch*rows never write the same element (no atomics, no separate zeroing pass).
The scalar index math (``span``, ``covering``) is shared with the CUDA twins.

Windows that tile the input (pool size = strides, no padding: most CNNs' 2x2 pool) have
kernels of their own, with the general kernels' results bit for bit (the same arithmetic in
the same order). Backward (``_tiles_bwd``, compiled with the window size fixed) writes each
cell once from the one window that holds it, without searching for the windows that cover
it; the 2x2 forward keeps a window's max in registers (``_pool2x2_fwd``). The cnn
workload's first pool, interleaved over 300 calls: forward 0.41 -> 0.29 ms (best; median
0.83 -> 0.62), backward 0.375 -> 0.31 ms (median 0.96 -> 0.64).
"""

import numpy as np
from numba import prange

from ..jit import kernel, pick, specializing

__all__ = ["pool2d", "pool2d_grad"]

KINDS = {"max": 0, "avg": 1}
PH = PW = 1  # the window each compiled copy of _tiles_bwd fixes (jit.specializing)


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


@kernel(parallel=True)
def _pool2x2_fwd(x, is_max, one, y, arg):
    # windows 2x2 at stride 2, no padding: window (oh, ow) is cells a, b (row 2 oh) and c, d
    # (row 2 oh + 1), scanned in that order, each channel's max (strict >: ties keep the
    # first) or sum kept in registers. (A loop over a window of any fixed size, cells
    # outside the channel loop, measured no faster than _pool_fwd: it stores the running
    # max and argmax after every cell; over cells inside the channel loop it stayed scalar.)
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    inv = one / type(one)(4)
    for r in prange(N * OH):
        n, oh = r // OH, r % OH
        x0, x1, yr = x[n, 2 * oh], x[n, 2 * oh + 1], y[n, oh]
        ar = arg[n, oh] if is_max else arg[0, 0]
        for ow in range(OW):
            a, b, c, d, yo = x0[2 * ow], x0[2 * ow + 1], x1[2 * ow], x1[2 * ow + 1], yr[ow]
            if is_max:
                ao = ar[ow]
                ia = ((n * H + 2 * oh) * W + 2 * ow) * C  # flat index of a's channel 0
                ib, ic = ia + C, ia + W * C
                id_ = ic + C
                for ch in range(C):
                    m, k = a[ch], ia + ch
                    v = b[ch]
                    m, k = (v, ib + ch) if v > m else (m, k)
                    v = c[ch]
                    m, k = (v, ic + ch) if v > m else (m, k)
                    v = d[ch]
                    m, k = (v, id_ + ch) if v > m else (m, k)
                    yo[ch], ao[ch] = m, k
            else:
                for ch in range(C):  # the general kernel's order of additions
                    yo[ch] = (((a[ch] + b[ch]) + c[ch]) + d[ch]) * inv


@specializing("PH", "PW", parallel=True)
def _tiles_bwd(g, arg, is_max, one, dx):
    # dx[n, ih, iw, c] = g of the one window holding the cell: where the cell won it (max)
    # or divided by the window's count (avg); 0 in the rows and columns past the last window
    N, H, W, C = dx.shape
    OH, OW = g.shape[1], g.shape[2]
    zero = one - one
    inv = one / type(one)(PH * PW)
    for r in prange(N * H):
        n, ih = r // H, r % H
        d = dx[n, ih]
        oh = ih // PH
        if oh >= OH:
            d[:] = zero
            continue
        gr = g[n, oh]
        ar = arg[n, oh] if is_max else arg[0, 0]
        for ow in range(OW):
            go = gr[ow]
            ao = ar[ow] if is_max else ar[0]
            for j in range(PW):
                dd = d[ow * PW + j]
                if is_max:
                    base = ((n * H + ih) * W + ow * PW + j) * C
                    for c in range(C):
                        dd[c] = go[c] if ao[c] == base + c else zero
                else:
                    for c in range(C):
                        dd[c] = go[c] * inv
        d[OW * PW:] = zero


def _tiles(pool_size: tuple, strides: tuple, pads: tuple) -> bool:
    """Whether the windows tile the input: pool size = strides, no padding."""
    return tuple(pool_size) == tuple(strides) and not any(pads)


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
    if _tiles(pool_size, strides, pads) and tuple(pool_size) == (2, 2):
        pick(_pool2x2_fwd, x.size)(x, is_max, x.dtype.type(1), y, arg)
    else:
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
    g = np.ascontiguousarray(g)
    if _tiles(pool_size, strides, pads):
        bwd = _tiles_bwd.of(PH=pool_size[0], PW=pool_size[1])
        pick(bwd, dx.size)(g, a, is_max, g.dtype.type(1), dx)
    else:
        pick(_pool_bwd, dx.size)(g, a, *pool_size, *strides, pads[0], pads[2], is_max,
                                 g.dtype.type(1), dx)
    return dx
