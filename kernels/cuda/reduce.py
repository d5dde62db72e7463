"""Reductions over axes on the GPU: sum, max (with argmax) and sum_to for broadcast gradients.

No transposes: an output element's kept index and a reduced index each map to an offset
through host-computed strides (axes merged where contiguous, as in elementwise). Two
launch shapes share that addressing:
* thread per output, a serial loop over the reduced elements: many outputs (the bias
  gradient, sum over a batch, reads coalesce across neighbouring outputs);
* block per output, threads stride over the reduced elements and meet in a shared-memory
  tree: few outputs over many elements (a full sum, a row max of long rows).
"""

from __future__ import annotations

import builtins  # max below is the reduction kernel

import numpy as np
from numba import cuda, from_dtype

from . import _base

__all__ = ["sum", "max", "sum_to", "mean", "broadcast_to", "max_grad", "running_sum"]

BLOCK_MIN = 256    # use a block per output when at least this many elements reduce ...
BLOCK_MAX_OUT = 2048  # ... into at most this many outputs
# A block sum spreads over about SPLIT_BLOCKS blocks (two per SM of a large GPU), each taking
# at least SPLIT_CHUNK elements of an output's reduced range.
SPLIT_BLOCKS = 264 if not _base.SIM else 4
SPLIT_CHUNK = 32 * _base.TPB if not _base.SIM else 2 * _base.TPB


_offset = _base.offset  # the strided-view index helper


@cuda.jit
def _sum_threads(x, out, kshape, kstr, rshape, rstr, rsize):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        base = _offset(i, kshape, kstr)
        acc = x[base] - x[base]
        for j in range(rsize):
            acc += x[base + _offset(j, rshape, rstr)]
        out[i] = acc


@cuda.jit
def _max_threads(x, out, arg, kshape, kstr, rshape, rstr, rsize):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        base = _offset(i, kshape, kstr)
        best = x[base]
        k = 0
        for j in range(1, rsize):
            v = x[base + _offset(j, rshape, rstr)]
            if v > best:  # strict: the first maximum wins, as np.argmax
                best = v
                k = j
        out[i] = best
        arg[i] = k


_BLOCK: dict = {}


def _block_kernels(dtype: np.dtype):
    """The block-per-output kernels for one dtype (shared arrays need a compile-time type)."""
    ks = _BLOCK.get(dtype)
    if ks is not None:
        return ks
    nbt = from_dtype(dtype)
    T = _base.TPB

    @cuda.jit
    def sum_block(x, out, kshape, kstr, rshape, rstr, rsize, split):
        # out[v] for v = i split + s: output i's partial sum over the s-th of ``split``
        # interleaved shares of its reduced elements (split 1: the whole sum)
        buf = cuda.shared.array(T, nbt)
        t = cuda.threadIdx.x
        for v in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
            i, sh = v // split, v % split
            base = _offset(i, kshape, kstr)
            acc = x[base] - x[base]
            for j in range(sh * T + t, rsize, split * T):
                acc += x[base + _offset(j, rshape, rstr)]
            buf[t] = acc
            cuda.syncthreads()
            s = T // 2
            while s > 0:  # tree: each step halves the active threads
                if t < s:
                    buf[t] += buf[t + s]
                cuda.syncthreads()
                s //= 2
            if t == 0:
                out[v] = buf[0]
            cuda.syncthreads()

    @cuda.jit
    def max_block(x, out, arg, kshape, kstr, rshape, rstr, rsize):
        val = cuda.shared.array(T, nbt)
        idx = cuda.shared.array(T, np.int64)
        t = cuda.threadIdx.x
        for i in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
            base = _offset(i, kshape, kstr)
            best = x[base]
            k = -1  # -1: this thread saw no element
            for j in range(t, rsize, T):
                v = x[base + _offset(j, rshape, rstr)]
                if k < 0 or v > best:
                    best = v
                    k = j
            val[t] = best
            idx[t] = k
            cuda.syncthreads()
            s = T // 2
            while s > 0:  # keep the larger value; on a tie the smaller index (first maximum)
                if t < s:
                    k2 = idx[t + s]
                    if k2 >= 0 and (idx[t] < 0 or val[t + s] > val[t]
                                    or (val[t + s] == val[t] and k2 < idx[t])):
                        val[t] = val[t + s]
                        idx[t] = k2
                cuda.syncthreads()
                s //= 2
            if t == 0:
                out[i] = val[0]
                arg[i] = idx[0]
            cuda.syncthreads()

    ks = _BLOCK[dtype] = (sum_block, max_block)
    return ks


def _plan(x, axes: tuple):
    """Kept shape, and (shape, strides) of the kept and the reduced axes, merged."""
    from . import asarray

    x = asarray(x)
    st = _base.bcast_strides(x.shape, x.shape)  # C-contiguous strides, 0 on size-1 axes
    keep = [i for i in range(x.ndim) if i not in axes]
    kshape_full = tuple(x.shape[i] for i in keep)
    kshape, (kstr,) = _base.coalesce(kshape_full, [tuple(st[i] for i in keep)])
    rshape, (rstr,) = _base.coalesce(tuple(x.shape[i] for i in axes),
                                     [tuple(st[i] for i in axes)])
    rsize = _base.size(x.shape[i] for i in axes)
    return x, kshape_full, (kshape, kstr, rshape, rstr, rsize)


def _use_block(m: int, rsize: int, mode: str | None) -> bool:
    if mode is not None:
        return mode == "block"
    return rsize >= BLOCK_MIN and m <= BLOCK_MAX_OUT


def sum(x, axes: tuple, mode: str | None = None):  # noqa: A001 - NumPy's name
    """Sum over ``axes`` (sorted, non-negative), dropping them; ``mode`` forces a launch shape."""
    from . import elementwise, zeros

    axes = tuple(axes)
    if not axes:
        return elementwise.copy(x)
    x, kshape, plan = _plan(x, axes)
    out = _base.empty(kshape, x.dtype)
    m = out.size
    if m == 0:
        return out
    if plan[-1] == 0:
        return zeros(kshape, x.dtype)
    xf, of = _base.flat(x), _base.flat(out)
    if _use_block(m, plan[-1], mode):
        # few outputs over many elements: more blocks than outputs (one SM alone reading a
        # large array is latency-bound), then a second pass adds each output's shares
        split = builtins.max(1, min(plan[-1] // SPLIT_CHUNK, SPLIT_BLOCKS // m))
        part = _base.empty((m, split), x.dtype) if split > 1 else out
        _block_kernels(x.dtype)[0][_base.blocks(m * split, 1), _base.TPB](
            xf, _base.flat(part), *plan, split)
        if split > 1:
            return sum(part, (1,)).reshape(kshape)
    else:
        _sum_threads[_base.blocks(m), _base.TPB](xf, of, *plan)
    return out


def max(x, axes: tuple, mode: str | None = None):  # noqa: A001 - NumPy's name
    """Max over ``axes`` and the flat index (within the reduced block) of the first maximum."""
    axes = tuple(axes)
    x, kshape, plan = _plan(x, axes)
    if plan[-1] == 0:
        raise ValueError("max over an empty axis")
    out = _base.empty(kshape, x.dtype)
    arg = _base.empty(kshape, np.int64)
    m = out.size
    if m == 0:
        return out, arg
    xf, of, af = _base.flat(x), _base.flat(out), _base.flat(arg)
    if _use_block(m, plan[-1], mode):
        _block_kernels(x.dtype)[1][_base.blocks(m, 1), _base.TPB](xf, of, af, *plan)
    else:
        _max_threads[_base.blocks(m), _base.TPB](xf, of, af, *plan)
    return out, arg


def sum_to(g, shape: tuple):
    """Reduce a broadcast gradient back to ``shape``: sum over the axes broadcasting added."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return sum(g, axes).reshape(shape)


# -- mean and the backward rules of the reductions -----------------------------------------

@cuda.jit
def _max_scatter(g, arg, out, shape, kst, rst):
    # out = g at the first maximum of each reduced block, else 0; kst / rst give each axis'
    # row-major stride within the kept / reduced index (0 for the other kind of axis)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i
        k = 0
        j = 0
        for d in range(len(shape) - 1, -1, -1):
            q = r % shape[d]
            r //= shape[d]
            k += q * kst[d]
            j += q * rst[d]
        out[i] = g[k] if arg[k] == j else g[k] - g[k]


def _count(shape: tuple, axes: tuple) -> int:
    return _base.size(shape[a] for a in axes)


def mean(x, axes: tuple):
    """Mean over ``axes``: the sum, scaled by 1/n (in x's dtype) in a pass over the result."""
    from .elementwise import scale

    return scale(sum(x, axes), p=1.0 / _count(x.shape, tuple(axes)))


def broadcast_to(g, shape: tuple, axes: tuple, scale: float = 1.0, out=None):
    """Gradient of a sum (scale 1) or mean (scale 1/n) over ``axes``: g copied back along them
    (``out`` is the CPU's reusable buffer; None here, where kernels allocate)."""
    from . import elementwise

    shape = tuple(shape)
    keep = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return elementwise.scale(g.reshape(keep), p=scale, shape=shape)


def max_grad(g, arg, shape: tuple, axes: tuple):
    """Gradient of a max over ``axes``: g at the first maximum of each reduced block, else 0."""
    from . import asarray

    shape = tuple(shape)
    kst, rst = [0] * len(shape), [0] * len(shape)
    ks = rs = 1
    for d in range(len(shape) - 1, -1, -1):  # row-major strides within each index space
        if d in axes:
            rst[d], rs = rs, rs * shape[d]
        else:
            kst[d], ks = ks, ks * shape[d]
    g = asarray(g)
    out = _base.empty(shape, g.dtype)
    if out.size:
        _max_scatter[_base.blocks(out.size), _base.TPB](
            _base.flat(g), _base.flat(asarray(arg)), _base.flat(out), shape or (1,),
            tuple(kst) or (0,), tuple(rst) or (0,))
    return out


@cuda.jit
def _running_sum(total, x, weight):
    if cuda.grid(1) == 0:
        total[0] += weight * x[0]


def running_sum(total, x, weight: float) -> None:
    """``total[0] += weight * x`` on the device (one thread): fit's running loss without a
    read back, which would wait for the GPU every step."""
    from . import asarray

    _running_sum[1, 1](total, _base.flat(asarray(x)), np.float64(weight))
