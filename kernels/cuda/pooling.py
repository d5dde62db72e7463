"""2-D pooling on the GPU (channels-last NHWC): max and average, forward and backward.

The CPU family's geometry (``geometry``) and scalar index math (``span``: a window's real
cells, ``covering``: the windows over a cell) are compiled for the device from the same
source. Forward: one thread per output element walks its window (keeping the flat index of
a max's first winner). Backward is the same gather as on the CPU: one thread per input
element sums the gradient of the windows covering it, so overlapping windows need no
atomics and the sums are deterministic.
"""

from __future__ import annotations

from numba import cuda

from ..cpu import pooling as _cpu
from . import _base

__all__ = ["pool2d", "pool2d_grad"]

span = _base.twin(_cpu.span)
covering = _base.twin(_cpu.covering)


@cuda.jit
def _pool_fwd(x, ph, pw, sh, sw, pt, pl, is_max, one, y, arg):
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, oh, ow, c = _base.nhwc(i, OH, OW, C)
        h0, h1 = span(oh, sh, ph, pt, H)
        w0, w1 = span(ow, sw, pw, pl, W)
        best = x[n, h0, w0, c]
        k = ((n * H + h0) * W + w0) * C + c
        acc = best - best
        for ih in range(h0, h1):
            for iw in range(w0, w1):
                v = x[n, ih, iw, c]
                acc += v
                if v > best:  # strict: ties keep the first in scan order
                    best = v
                    k = ((n * H + ih) * W + iw) * C + c
        if is_max:
            y[n, oh, ow, c] = best
            arg[n, oh, ow, c] = k
        else:  # the mean over real cells, scaled as the CPU scales it
            y[n, oh, ow, c] = acc * (one / type(one)((h1 - h0) * (w1 - w0)))


@cuda.jit
def _pool_bwd(g, arg, ph, pw, sh, sw, pt, pl, is_max, one, dx):
    N, H, W, C = dx.shape
    OH, OW = g.shape[1], g.shape[2]
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, ih, iw, c = _base.nhwc(i, H, W, C)
        oh0, oh1 = covering(ih, sh, ph, pt, OH)
        ow0, ow1 = covering(iw, sw, pw, pl, OW)
        acc = one - one
        for oh in range(oh0, oh1):
            h0, h1 = span(oh, sh, ph, pt, H)
            for ow in range(ow0, ow1):
                if is_max:
                    if arg[n, oh, ow, c] == i:  # this cell won the window
                        acc += g[n, oh, ow, c]
                else:
                    w0, w1 = span(ow, sw, pw, pl, W)
                    acc += g[n, oh, ow, c] * (one / type(one)((h1 - h0) * (w1 - w0)))
        dx[n, ih, iw, c] = acc


def pool2d(x, pool_size: tuple, strides: tuple, pads: tuple, kind: str, out=None):
    """``(y, arg)``: max (arg = flat index into x of each winner) or average (arg None)
    pooling of NHWC ``x`` over real cells only (``out`` is ignored)."""
    from . import asarray

    x = asarray(x)
    OH, OW = _cpu.geometry(x.shape, pool_size, strides, pads)
    is_max = _cpu.KINDS[kind] == 0
    y = _base.empty((x.shape[0], OH, OW, x.shape[3]), x.dtype)
    arg = _base.empty(y.shape if is_max else (1, 1, 1, 1), "int64")  # (unread for avg)
    if y.size:
        _pool_fwd[_base.blocks(y.size), _base.TPB](x, *pool_size, *strides, pads[0], pads[2],
                                                   is_max, x.dtype.type(1), y, arg)
    return y, (arg if is_max else None)


def pool2d_grad(g, arg, x_shape: tuple, pool_size: tuple, strides: tuple, pads: tuple,
                kind: str, out=None):
    """dx of :func:`pool2d`: g routed to each window's winner (max) or spread evenly over
    its real cells (avg); overlapping windows add up (``out`` is ignored)."""
    from . import asarray

    g = asarray(g)
    OH, OW = _cpu.geometry(x_shape, pool_size, strides, pads)
    if tuple(g.shape) != (x_shape[0], OH, OW, x_shape[3]):
        raise ValueError(f"gradient of shape {tuple(g.shape)} does not match the pooled "
                         f"shape {(x_shape[0], OH, OW, x_shape[3])}")
    is_max = _cpu.KINDS[kind] == 0
    a = asarray(arg) if is_max else _base.empty((1, 1, 1, 1), "int64")
    dx = _base.empty(tuple(x_shape), g.dtype)
    if dx.size:
        _pool_bwd[_base.blocks(dx.size), _base.TPB](g, a, *pool_size, *strides, pads[0],
                                                    pads[2], is_max, g.dtype.type(1), dx)
    return dx
