"""2-D up-sampling on the GPU (channels-last NHWC): nearest and bilinear, forward and backward.

The CPU family's scalar functions (``source``: the one or two cells an output reads and the
weight of the second; ``weight`` and ``candidates`` for the adjoint) are compiled for the
device from the same source. Forward: one thread per output element. Backward: one thread
per input element gathers the weighted gradient of the outputs that read it (no atomics).
"""

from __future__ import annotations

from numba import cuda

from ..cpu import upsampling as _cpu
from . import _base

__all__ = ["upsample2d", "upsample2d_grad"]

source = _base.twin(_cpu.source)
weight = _base.twin(_cpu.weight, source=source)
candidates = _base.twin(_cpu.candidates)


@cuda.jit
def _up_fwd(x, sh, sw, bilinear, one, y):
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, oh, ow, c = _base.nhwc(i, OH, OW, C)
        i0, i1, ly = source(oh, sh, H, bilinear, one)
        j0, j1, lx = source(ow, sw, W, bilinear, one)
        if bilinear:
            y[n, oh, ow, c] = ((one - ly) * (one - lx) * x[n, i0, j0, c]
                               + (one - ly) * lx * x[n, i0, j1, c]
                               + ly * (one - lx) * x[n, i1, j0, c] + ly * lx * x[n, i1, j1, c])
        else:
            y[n, oh, ow, c] = x[n, i0, j0, c]


@cuda.jit
def _up_bwd(g, sh, sw, bilinear, one, dx):
    # dx[n, ih, iw] = sum over outputs (oh, ow) of weight(oh, ih) weight(ow, iw) g[n, oh, ow]
    N, H, W, C = dx.shape
    OH, OW = g.shape[1], g.shape[2]
    zero = one - one
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, ih, iw, c = _base.nhwc(i, H, W, C)
        o0, o1 = candidates(ih, sh, OH, bilinear)
        p0, p1 = candidates(iw, sw, OW, bilinear)
        acc = zero
        for oh in range(o0, o1):
            wy = weight(oh, ih, sh, H, bilinear, one)
            if wy != zero:
                for ow in range(p0, p1):
                    acc += wy * weight(ow, iw, sw, W, bilinear, one) * g[n, oh, ow, c]
        dx[n, ih, iw, c] = acc


def upsample2d(x, size: tuple, interpolation: str = "nearest"):
    """NHWC ``x`` scaled by the integer factors ``size = (sh, sw)``."""
    from . import asarray

    x = asarray(x)
    bilinear = _cpu.check_args(x.shape, size, interpolation)
    N, H, W, C = x.shape
    y = _base.empty((N, H * size[0], W * size[1], C), x.dtype)
    if y.size:
        _up_fwd[_base.blocks(y.size), _base.TPB](x, size[0], size[1], bilinear,
                                                 x.dtype.type(1), y)
    return y


def upsample2d_grad(g, x_shape: tuple, size: tuple, interpolation: str = "nearest"):
    """dx of :func:`upsample2d`: each input cell sums g over the outputs it feeds, weighted."""
    from . import asarray

    g = asarray(g)
    bilinear = _cpu.check_args(x_shape, size, interpolation)
    N, H, W, C = x_shape
    if tuple(g.shape) != (N, H * size[0], W * size[1], C):
        raise ValueError(f"gradient of shape {tuple(g.shape)} does not match the up-sampled "
                         f"shape {(N, H * size[0], W * size[1], C)}")
    dx = _base.empty(tuple(x_shape), g.dtype)
    if dx.size:
        _up_bwd[_base.blocks(dx.size), _base.TPB](g, size[0], size[1], bilinear,
                                                  g.dtype.type(1), dx)
    return dx
