"""Fused scaled dot-product attention: ``softmax(mask(scale Q K^T)) V``, one call each way.

Inputs of any rank are viewed as slices ``(S, T, d)`` (S = batch x heads), or with
``heads_last`` as ``(..., T, H, d)``, the layout a projection ``(B, T, H d)`` reshapes to
without a copy: slice (b, h) is then the strided view ``x[b, :, h, :]``, which BLAS reads
through its leading dimension (MultiHeadAttention's two transposes each way, 8 copies of
2 MB a training step of the attention workload, are gone). Per slice the
forward pass is a BLAS GEMM ``Q K^T``, one fused pass that scales, masks and takes the row
softmax in place (stable: the row maximum comes out first; masked weights are exactly 0;
one ``exp`` per weight, which is most of the pass's time), and a GEMM with V. The weights
``A`` are returned for backward:

    dV = A^T g,  dA = g V^T,  dS = A (dA - rowsum(dA A))  (softmax.py's backward, in place),
    dQ = scale dS K,  dK = scale dS^T Q.

Masked entries need no mask in backward: A is 0 there, so dS is too. Slices run in parallel
(each thread its own slices and its own dA scratch, BLAS on one thread) when the work is large.
"""

import math

import numba
import numpy as np
from numba import prange

from ..blas import gemm
from ..jit import REASSOC, kernel, pick
from ..threads import one_blas_thread
from .activation import exp_neg
from .softmax import _softmax_grad_rows

__all__ = ["attention", "attention_grad"]

# softmax.py's serial backward row kernel, called on one slice's (Tq, Tk) matrix at a time
_softmax_grad = pick(_softmax_grad_rows, 0)
# slice chunks of the parallel backward (read once: keeps the kernel cacheable)
_THREADS = numba.config.NUMBA_NUM_THREADS


@kernel(fastmath=REASSOC)
def masked_softmax_row(s, i, scale, causal):
    """Row i of s <- softmax(scale s[i]), keys j > i given weight 0 when ``causal``.

    One exp per weight: e = exp(scale (s - m)) is kept and divided by the row sum after
    (m the row maximum; scale > 0 keeps it the maximum, so the argument is <= 0 and the
    vectorizable float32 ``exp_neg`` applies). The row is a view indexed from 0, and the
    max and sum reassociate (jit.REASSOC): both vectorize. Shared with the CUDA twin."""
    r = s[i]
    zero = type(scale)(0)
    n = min(i + 1, r.shape[0]) if causal else r.shape[0]
    m = r[0]
    for j in range(1, n):
        m = max(m, r[j])
    for j in range(n):  # no sum in this loop: with exp_neg it vectorizes
        r[j] = exp_neg((r[j] - m) * scale)
    total = zero
    for j in range(n):
        total += r[j]
    inv = type(scale)(1) / total
    for j in range(n):
        r[j] *= inv
    for j in range(n, r.shape[0]):
        r[j] = zero


# every (batch, time, head, depth) operand below is 4-D; slice s = b H + h is x[b, :, h, :]
# (heads-first inputs come as (S, T, 1, d), H = 1)

@kernel(parallel=True)
def _attn_fwd(q, k, v, scale, causal, a, y):
    H = q.shape[2]
    for s in prange(a.shape[0]):
        b, h = s // H, s % H
        gemm(q[b, :, h, :], k[b, :, h, :].T, a[s])  # scores Q K^T
        for i in range(a.shape[1]):  # A = softmax(mask(scale S)), in place
            masked_softmax_row(a[s], i, scale, causal)
        gemm(a[s], v[b, :, h, :], y[b, :, h, :])  # Y = A V


@kernel(parallel=True)
def _attn_bwd(g, q, k, v, a, scale, chunks, need_q, need_k, need_v, dq, dk, dv):
    n, H = a.shape[0], q.shape[2]
    for c in prange(chunks):
        da = np.empty((a.shape[1], a.shape[2]), a.dtype)  # this thread's dA, then dS
        for s in range(c * n // chunks, (c + 1) * n // chunks):
            b, h = s // H, s % H
            gs = g[b, :, h, :]
            if need_v:
                gemm(a[s].T, gs, dv[b, :, h, :])  # dV = A^T g
            if need_q or need_k:
                gemm(gs, v[b, :, h, :].T, da)  # dA = g V^T
                _softmax_grad(da, a[s], da, False)  # dS = A (dA - rowsum(dA A))
                da *= scale
                if need_q:
                    gemm(da, k[b, :, h, :], dq[b, :, h, :])  # dQ = scale dS K
                if need_k:
                    gemm(da.T, q[b, :, h, :], dk[b, :, h, :])  # dK = scale dS^T Q


def _slices(x: np.ndarray) -> np.ndarray:
    """``x (..., T, d)`` as contiguous ``(S, T, d)``."""
    return np.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])


def _rows(x: np.ndarray, heads_last: bool) -> np.ndarray:
    """The kernels' 4-D view: ``(..., T, H, d)`` as ``(S, T, H, d)``; heads-first
    ``(..., T, d)`` as ``(S, T, 1, d)``."""
    x = np.ascontiguousarray(x)
    if heads_last:
        return x.reshape((-1,) + x.shape[-3:])
    return x.reshape((-1, x.shape[-2], 1, x.shape[-1]))


def heads_first(shape: tuple) -> tuple:
    """``(..., T, H, d)`` -> ``(..., H, T, d)``: a heads-last shape as the checks read it."""
    return (*shape[:-3], shape[-2], shape[-3], shape[-1])


def check_shapes(q, k, v, heads_last: bool = False) -> None:
    """A ValueError unless q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) fit together
    (heads last: (..., Tq, H, d) and so on)."""
    sq, sk, sv = tuple(q.shape), tuple(k.shape), tuple(v.shape)
    if heads_last:
        if min(len(sq), len(sk), len(sv)) < 3:
            raise ValueError(f"attention with heads last needs q, k, v of rank >= 3 "
                             f"(..., time, heads, depth), got {sq}, {sk}, {sv}")
        sq, sk, sv = heads_first(sq), heads_first(sk), heads_first(sv)
    if len(sq) < 2 or len(sk) != len(sq) or len(sv) != len(sq):
        raise ValueError(f"attention needs q, k, v of one rank >= 2, got shapes {sq}, {sk}, "
                         f"{sv}")
    n = len(sq)
    if sk[:n - 2] != sq[:n - 2] or sv[:n - 2] != sq[:n - 2]:
        raise ValueError(f"attention: leading dimensions differ: q {sq}, k {sk}, v {sv}")
    if sk[n - 1] != sq[n - 1]:
        raise ValueError(f"attention: queries have depth {sq[n - 1]} but keys {sk[n - 1]}")
    if sv[n - 2] != sk[n - 2] or sk[n - 2] == 0:
        raise ValueError(f"attention: {sk[n - 2]} keys but {sv[n - 2]} values "
                         "(need as many values as keys, at least one)")


def _work(q: tuple, k: tuple, v: tuple) -> int:
    """Multiply-adds of the GEMMs (from the heads-first shapes), for ``pick``: 0 (serial
    loop) for a single slice.

    Several slices run in parallel, each thread's GEMMs on one BLAS thread
    (``one_blas_thread``): threads inside threads would fight over the cores, and a
    loop of GEMMs each split over BLAS's two threads collapsed on a loaded 2-core machine
    (the workload (32, 4, 128, 32) forward + backward 667 ms; slices in parallel on one BLAS
    thread each, 65 ms)."""
    n = int(np.prod(q[:-2]))
    return n * q[-2] * k[-2] * (q[-1] + v[-1]) if n > 1 else 0


def _per_slice(q: tuple, k: tuple, v: tuple) -> int:
    """m n k of one slice's largest GEMM (for ``one_blas_thread``)."""
    return q[-2] * k[-2] * max(q[-1], v[-1])


def _shapes(heads_last: bool, *xs) -> list[tuple]:
    """The heads-first shapes of ``xs``."""
    return [heads_first(tuple(x.shape)) if heads_last else tuple(x.shape) for x in xs]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
              scale: float | None = None, out: tuple | None = None,
              heads_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(y, a)``: ``y = a v`` of shape ``(..., Tq, dv)`` and the weights
    ``a = softmax(scale q k^T)`` ``(..., Tq, Tk)``, keys after the query masked when
    ``causal``; ``scale`` defaults to ``1/sqrt(d)``. ``out = (y, a)`` arrays to write into.
    ``heads_last``: q ``(..., Tq, H, d)``, k and v alike, y ``(..., Tq, H, dv)``, a
    ``(..., H, Tq, Tk)``."""
    check_shapes(q, k, v, heads_last)
    hq, hk, hv = _shapes(heads_last, q, k, v)
    lead, tq, tk = hq[:-2], hq[-2], hk[-2]
    sc = q.dtype.type(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if out is None:
        ys = (*q.shape[:-1], v.shape[-1])  # the output in q's layout
        y, a = np.empty(ys, q.dtype), np.empty(lead + (tq, tk), q.dtype)
    else:
        y, a = out
    k_ = pick(_attn_fwd, _work(hq, hk, hv))
    par = k_ is getattr(_attn_fwd, "parallel", None)
    with one_blas_thread(_per_slice(hq, hk, hv) if par else 0):
        k_(_rows(q, heads_last), _rows(k, heads_last), _rows(v, heads_last), sc, bool(causal),
           _slices(a), _rows(y, heads_last))
    return y, a


def attention_grad(g: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, a: np.ndarray,
                   scale: float | None = None, need: tuple = (True, True, True),
                   heads_last: bool = False
                   ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dq, dk, dv)`` of attention from the forward pass's weights ``a``; an entry is None
    where ``need`` says nobody wants it (its GEMMs are skipped)."""
    sc = q.dtype.type(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    # C order whatever the inputs' strides: the kernels write through _rows's views
    dq, dk, dv = (np.empty(x.shape, x.dtype) for x in (q, k, v))
    hq, hk, hv = _shapes(heads_last, q, k, v)
    k_ = pick(_attn_bwd, _work(hq, hk, hv))
    n = _slices(a).shape[0]
    par = k_ is getattr(_attn_bwd, "parallel", None)
    chunks = max(1, min(_THREADS, n)) if par else 1
    r = [_rows(x, heads_last) for x in (g, q, k, v)]
    with one_blas_thread(_per_slice(hq, hk, hv) if par else 0):
        k_(*r, _slices(a), sc, chunks, bool(need[0]), bool(need[1]), bool(need[2]),
           *(_rows(d, heads_last) for d in (dq, dk, dv)))
    return tuple(d if w else None for d, w in zip((dq, dk, dv), need))
