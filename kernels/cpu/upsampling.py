"""2-D up-sampling kernels (channels-last NHWC) by integer factors: nearest and bilinear.

Each output cell reads at most two input cells per axis: ``source`` gives them and the weight
of the second. "nearest" repeats each cell (Keras' UpSampling2D); "bilinear" samples at
half-pixel centres, ``src = (o + 1/2) / s - 1/2`` clamped to the input, as TF2's
``tf.image.resize`` and PyTorch's ``align_corners=False`` do. Backward is the adjoint, as a
gather: each input row sums the gradient of the output rows that read it (``candidates``,
``weight``), so parallel tasks over batch*rows never write the same element. The scalar
functions are shared with the CUDA twins.
"""

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["upsample2d", "upsample2d_grad"]

INTERPOLATIONS = {"nearest": 0, "bilinear": 1}


@kernel
def source(o, s, n_in, bilinear, one):
    """``(i0, i1, l)``: output cell ``o`` at scale ``s`` is ``(1 - l) x[i0] + l x[i1]``."""
    if not bilinear:
        i = o // s
        return i, i, one - one
    half = one / type(one)(2)
    src = (type(one)(o) + half) / type(one)(s) - half  # the half-pixel centre
    if src < one - one:  # the first half cell repeats the edge
        src = one - one
    i0 = int(src)
    return i0, min(i0 + 1, n_in - 1), src - type(one)(i0)


@kernel
def weight(o, i, s, n_in, bilinear, one):
    """How much input cell ``i`` contributes to output cell ``o`` (both ends may be ``i``)."""
    i0, i1, lam = source(o, s, n_in, bilinear, one)
    w = one - one
    if i0 == i:
        w += one - lam
    if i1 == i:
        w += lam
    return w


@kernel
def candidates(i, s, n_out, bilinear):
    """Output cells ``[lo, hi)`` that may read input cell ``i`` (a superset for bilinear)."""
    if not bilinear:
        return i * s, (i + 1) * s
    return max((i - 1) * s, 0), min((i + 2) * s, n_out)


@kernel
def taps(n_out, s, n_in, bilinear, one):
    """``source`` for every output cell along an axis, as three arrays (computed once)."""
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    lam = np.empty(n_out, type(one))
    for o in range(n_out):
        i0[o], i1[o], lam[o] = source(o, s, n_in, bilinear, one)
    return i0, i1, lam


@kernel(parallel=True)
def _up_fwd(x, sh, sw, bilinear, one, y):
    # y[n, oh, ow] = (1-ly) ((1-lx) x[i0, j0] + lx x[i0, j1]) + ly ((1-lx) x[i1, j0] + ...)
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    j0s, j1s, lxs = taps(OW, sw, W, bilinear, one)
    for r in prange(N * OH):
        n, oh = r // OH, r % OH
        i0, i1, ly = source(oh, sh, H, bilinear, one)
        yr, top, bottom = y[n, oh], x[n, i0], x[n, i1]
        for ow in range(OW):
            j0, j1, lx = j0s[ow], j1s[ow], lxs[ow]
            if not bilinear:  # a copy of the source cell
                for c in range(C):
                    yr[ow, c] = top[j0, c]
                continue
            w00, w01 = (one - ly) * (one - lx), (one - ly) * lx
            w10, w11 = ly * (one - lx), ly * lx
            for c in range(C):
                yr[ow, c] = (w00 * top[j0, c] + w01 * top[j1, c]
                             + w10 * bottom[j0, c] + w11 * bottom[j1, c])


@kernel(parallel=True)
def _up_bwd(g, sh, sw, bilinear, one, dx):
    # dx[n, ih, iw] = sum over outputs (oh, ow) of weight(oh, ih) weight(ow, iw) g[n, oh, ow]:
    # per input row, the output rows that read it, scattered along that row only
    N, H, W, C = dx.shape
    OH, OW = g.shape[1], g.shape[2]
    zero = one - one
    j0s, j1s, lxs = taps(OW, sw, W, bilinear, one)
    for r in prange(N * H):
        n, ih = r // H, r % H
        d = dx[n, ih]
        d[:] = zero
        o0, o1 = candidates(ih, sh, OH, bilinear)
        for oh in range(o0, o1):
            wy = weight(oh, ih, sh, H, bilinear, one)
            if wy == zero:
                continue
            gr = g[n, oh]
            for ow in range(OW):
                j0, j1 = j0s[ow], j1s[ow]
                w0, w1 = wy * (one - lxs[ow]), wy * lxs[ow]
                for c in range(C):
                    d[j0, c] += w0 * gr[ow, c]
                if bilinear:
                    for c in range(C):
                        d[j1, c] += w1 * gr[ow, c]


def check_args(shape: tuple, size: tuple, interpolation: str) -> bool:
    """Whether the interpolation is bilinear, after checking the shape and factors."""
    if len(shape) != 4:
        raise ValueError(f"upsampling expects channels-last (batch, height, width, channels) "
                         f"arrays, got shape {tuple(shape)}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be two positive integers, got {size}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of "
                         f"{list(INTERPOLATIONS)}")
    return INTERPOLATIONS[interpolation] == 1


def upsample2d(x: np.ndarray, size: tuple, interpolation: str = "nearest") -> np.ndarray:
    """NHWC ``x`` scaled by the integer factors ``size = (sh, sw)``."""
    bilinear = check_args(x.shape, size, interpolation)
    N, H, W, C = x.shape
    y = np.empty((N, H * size[0], W * size[1], C), x.dtype)
    pick(_up_fwd, y.size)(np.ascontiguousarray(x), size[0], size[1], bilinear,
                          x.dtype.type(1), y)
    return y


def upsample2d_grad(g: np.ndarray, x_shape: tuple, size: tuple,
                    interpolation: str = "nearest") -> np.ndarray:
    """dx of :func:`upsample2d`: each input cell sums g over the outputs it feeds, weighted."""
    bilinear = check_args(x_shape, size, interpolation)
    N, H, W, C = x_shape
    if tuple(g.shape) != (N, H * size[0], W * size[1], C):
        raise ValueError(f"gradient of shape {tuple(g.shape)} does not match the up-sampled "
                         f"shape {(N, H * size[0], W * size[1], C)}")
    dx = np.empty(tuple(x_shape), g.dtype)
    pick(_up_bwd, g.size)(np.ascontiguousarray(g), size[0], size[1], bilinear,
                          g.dtype.type(1), dx)
    return dx
