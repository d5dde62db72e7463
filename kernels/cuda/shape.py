"""Shape kernels on the GPU: reshape, transpose, concatenate/split, basic slicing and its scatter.

Each is one strided copy. A view's geometry (offset and element strides) is found on the
host by applying the same permutation or index to a NumPy stand-in with 1-byte items over
one byte of memory (nothing is read), so every NumPy form of basic indexing is supported
with NumPy's own rules. Then ``_gather`` copies view -> contiguous output and ``_scatter``
writes a contiguous array into a view; both walk the output with a grid-stride loop.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from . import _base

__all__ = ["reshape", "transpose", "concatenate", "split", "getitem", "getitem_grad"]

_offset = _base.offset  # the strided-view index helper


@cuda.jit
def _gather(out, x, base, shape, strides):
    # out[i] = x[view offset of i]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[base + _offset(i, shape, strides)]


@cuda.jit
def _scatter(out, g, base, shape, strides):
    # out[view offset of i] = g[i]
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[base + _offset(i, shape, strides)] = g[i]


def _standin(shape: tuple) -> np.ndarray:
    # C-contiguous element strides over one byte: index it like the real array, read nothing
    st = _base.bcast_strides(shape, shape)
    st = tuple(s if d != 1 else 1 for s, d in zip(st, shape))
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape, st)


def _view(shape: tuple, index) -> tuple[int, tuple, tuple]:
    """(offset, shape, element strides) of ``index(stand-in of shape)``."""
    s = _standin(tuple(shape))
    v = index(s)
    if not isinstance(v, np.ndarray):  # integers only: NumPy returned a scalar, not a view
        v = index(_EllipsisAppender(s))
    off = v.__array_interface__["data"][0] - s.__array_interface__["data"][0]
    return off, tuple(v.shape), tuple(v.strides)


class _EllipsisAppender:
    """``[key]`` indexes the wrapped array with ``key + (...,)``: for an all-integer key, the
    same element as a 0-d view (whose offset can be read) instead of a scalar."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self.a[key + (Ellipsis,)]


def _copy_view(x, off: int, shape: tuple, strides: tuple):
    out = _base.empty(shape, x.dtype)
    if out.size:
        cshape, (cst,) = _base.coalesce(shape, [strides])
        _gather[_base.blocks(out.size), _base.TPB](_base.flat(out), _base.flat(x), off, cshape,
                                                   cst)
    return out


def _write_view(out, g, off: int, shape: tuple, strides: tuple) -> None:
    if g.size:
        cshape, (cst,) = _base.coalesce(shape, [strides])
        _scatter[_base.blocks(g.size), _base.TPB](_base.flat(out), _base.flat(g), off, cshape,
                                                  cst)


def reshape(x, shape: tuple):
    """``x`` viewed with ``shape`` (-1 allowed); free, device arrays are contiguous."""
    from . import asarray

    shape = tuple(shape)
    if -1 in shape:
        known = _base.size(d for d in shape if d != -1)
        shape = tuple(x.size // max(known, 1) if d == -1 else d for d in shape)
    return asarray(x).reshape(shape)


def transpose(x, axes: tuple):
    """``x`` with its axes permuted, copied to C order."""
    from . import asarray

    x = asarray(x)
    off, shape, st = _view(x.shape, lambda s: np.transpose(s, axes))
    return _copy_view(x, off, shape, st)


def getitem(x, key: tuple):
    """``x[key]`` for basic indexing (ints, slices, None, Ellipsis), copied to C order."""
    from . import asarray

    x = asarray(x)
    off, shape, st = _view(x.shape, lambda s: s[key])
    return _copy_view(x, off, shape, st)


def getitem_grad(g, shape: tuple, key: tuple):
    """The backward of ``x[key]``: zeros of ``shape`` with ``g`` written at ``key``."""
    from . import asarray, zeros

    out = zeros(tuple(shape), g.dtype)
    off, vshape, st = _view(tuple(shape), lambda s: s[key])
    _write_view(out, asarray(g).reshape(vshape) if vshape else asarray(g).reshape(()),
                off, vshape, st)
    return out


def concatenate(xs, axis: int):
    """The arrays joined along ``axis``."""
    from . import asarray

    xs = [asarray(x) for x in xs]
    axis %= xs[0].ndim
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = _base.empty(tuple(shape), np.result_type(*[x.dtype for x in xs]))
    start = 0
    for x in xs:
        sl = (slice(None),) * axis + (slice(start, start + x.shape[axis]),)
        off, vshape, st = _view(tuple(shape), lambda s, sl=sl: s[sl])
        if x.dtype != out.dtype:
            x = asarray(x, out.dtype)
        _write_view(out, x, off, vshape, st)
        start += x.shape[axis]
    return out


def split(g, sizes: tuple, axis: int) -> list:
    """``g`` cut along ``axis`` into pieces of ``sizes`` (the backward of concatenate)."""
    from . import asarray

    g = asarray(g)
    axis %= g.ndim
    pieces, start = [], 0
    for n in sizes:
        sl = (slice(None),) * axis + (slice(start, start + n),)
        off, vshape, st = _view(tuple(g.shape), lambda s, sl=sl: s[sl])
        pieces.append(_copy_view(g, off, vshape, st))
        start += n
    return pieces
