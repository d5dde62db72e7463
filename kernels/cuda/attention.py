"""Scaled dot-product attention on the GPU: batched GEMMs around softmax math shared with the CPU.

Inputs are viewed as slices ``(S, T, d)``. Forward: the batched GEMM ``Q K^T`` (K read
through transposed strides), one pass with a thread per row that scales, masks and takes
the softmax in place (the CPU kernel's own row function, compiled for the device), and the
batched GEMM with V. Backward: ``dV = A^T g``, ``dA = g V^T``, ``dS = A (dA -
rowsum(dA A))`` (``softmax.py``'s backward), a pass scaling dS, then ``dQ = dS K`` and
``dK = dS^T Q``.
"""

from __future__ import annotations

import math

from numba import cuda

from ..cpu.attention import check_shapes
from ..cpu.attention import masked_softmax_row as _cpu_row
from . import _base
from .matmul import matmul
from .shape import transpose
from .softmax import softmax_grad

__all__ = ["attention", "attention_grad"]


# the CPU kernel's row function, compiled for the device from the same source
_masked_softmax_row = _base.twin(_cpu_row, exp_neg=math.exp)


@cuda.jit
def _masked_softmax(a, scale, causal):
    # one thread per (slice, query) row of a (S, Tq, Tk): scale, mask, softmax in place
    tq = a.shape[1]
    for r in range(cuda.grid(1), a.shape[0] * tq, cuda.gridsize(1)):
        _masked_softmax_row(a[r // tq], r % tq, scale, causal)


@cuda.jit
def _scale(x, scale):
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[e] *= scale


def _slices(x):
    """``x (..., T, d)`` on the device, seen as contiguous slices ``(S, T, d)``."""
    from . import asarray

    x = asarray(x)
    shape = tuple(x.shape)
    t, d = shape[-2], shape[-1]
    return x.reshape((x.size // max(t * d, 1), t, d))


def _scale_of(q, scale):
    return q.dtype.type(1.0 / math.sqrt(tuple(q.shape)[-1]) if scale is None else scale)


def _swap(x):
    """``(..., T, H, d)`` <-> ``(..., H, T, d)`` on the device (heads last to first and back)."""
    from . import asarray

    n = len(tuple(x.shape))
    return transpose(asarray(x), (*range(n - 3), n - 2, n - 3, n - 1))


def attention(q, k, v, causal: bool = False, scale: float | None = None, out=None,
              heads_last: bool = False):
    """``(y, a)``: ``y = a v`` ``(..., Tq, dv)`` and the weights ``a = softmax(scale q k^T)``
    ``(..., Tq, Tk)``, keys after the query masked when ``causal``; ``scale`` defaults to
    ``1/sqrt(d)``. ``out`` is the CPU's buffer hint; this backend allocates. ``heads_last``
    as the CPU's (q, k, v, y ``(..., T, H, d)``): here through transposes around the GEMMs."""
    check_shapes(q, k, v, heads_last)
    if heads_last:
        y, a = attention(_swap(q), _swap(k), _swap(v), causal, scale)
        return _swap(y), a
    lead = tuple(q.shape)[:-2]
    q3, k3, v3 = _slices(q), _slices(k), _slices(v)
    a = matmul(q3, k3, trans_b=True)  # scores Q K^T
    if a.size:
        tq = tuple(a.shape)[1]
        _masked_softmax[_base.blocks(a.shape[0] * tq), _base.TPB](a, _scale_of(q3, scale),
                                                                 bool(causal))
    y = matmul(a, v3)
    return (y.reshape(lead + tuple(y.shape)[-2:]), a.reshape(lead + tuple(a.shape)[-2:]))


def attention_grad(g, q, k, v, a, scale: float | None = None, need: tuple = (True, True, True),
                   heads_last: bool = False):
    """``(dq, dk, dv)`` of attention from the forward pass's weights ``a``; an entry is None
    where ``need`` says nobody wants it (its GEMMs are skipped)."""
    if heads_last:
        grads = attention_grad(_swap(g), _swap(q), _swap(k), _swap(v), a, scale, need)
        return tuple(None if d is None else _swap(d) for d in grads)
    g3, q3, k3, v3, a3 = (_slices(x) for x in (g, q, k, v, a))
    dq = dk = dv = None
    if need[2]:
        dv = matmul(a3, g3, trans_a=True).reshape(tuple(v.shape))  # dV = A^T g
    if need[0] or need[1]:
        ds = softmax_grad(matmul(g3, v3, trans_b=True), a3, -1)  # dS from dA = g V^T
        if ds.size:
            _scale[_base.blocks(ds.size), _base.TPB](_base.flat(ds), _scale_of(q3, scale))
        if need[0]:
            dq = matmul(ds, k3).reshape(tuple(q.shape))  # dQ = scale dS K
        if need[1]:
            dk = matmul(ds, q3, trans_a=True).reshape(tuple(k.shape))  # dK = scale dS^T Q
    return dq, dk, dv
