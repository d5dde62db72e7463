"""Optimizer updates on the GPU: one fused in-place launch for up to eight parameters.

The same three updates (``sgd_update``, ``adam_update``, ``rms_update``) with the same
clip / decay / update order per element as the CPU family, hyperparameters converted to the
parameter's dtype on the host so float32 parameters update in float32. Parameters and slots
stay on the device; ``grad_sq_norms`` brings back two numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..cpu.optim import padded_groups, updates
from ..jit import scalars
from . import _base

__all__ = ["sgd_update", "adam_update", "adam_rows_update", "rms_update", "grad_sq_norms"]


# Each kernel updates up to GROUP (kernels/cpu/optim.py) parameters in one launch: P, G and the
# slot kinds are tuples of flat arrays (padded with a one-element stand-in to 1, 2, 4 or 8: four
# compiled copies serve every model), ``starts`` their offsets in one flat index space (the
# padding empty), ``scales`` / ``decays`` each parameter's two factors. A launch per
# parameter cost the MLP's step one Python launch (tens of microseconds) per weight.


@cuda.jit(device=True)
def _which(starts, e):
    # the parameter that flat index e falls in: the last k with starts[k] <= e
    k = 0
    while e >= starts[k + 1]:
        k += 1
    return k


@cuda.jit
def _sgd(P, G, M, starts, scales, decays, lr, momentum, nesterov, clip):
    for e in range(cuda.grid(1), starts[len(starts) - 1], cuda.gridsize(1)):
        k = _which(starts, e)
        i = e - starts[k]
        p, m = P[k], M[k]
        gi = min(max(G[k][i] * scales[k], -clip), clip)
        pi = p[i] - p[i] * decays[k]
        if momentum != 0:
            # Keras: m <- mu m - lr g;  p <- p + m  (Nesterov: p <- p + mu m - lr g)
            mi = momentum * m[i] - lr * gi
            m[i] = mi
            if nesterov:
                pi += momentum * mi - lr * gi
            else:
                pi += mi
        else:
            pi -= lr * gi
        p[i] = pi


@cuda.jit
def _adam(P, G, M, V, VH, starts, scales, decays, alpha, one_m_b1, one_m_b2, eps, amsgrad,
          clip):
    for e in range(cuda.grid(1), starts[len(starts) - 1], cuda.gridsize(1)):
        k = _which(starts, e)
        i = e - starts[k]
        p, m, v = P[k], M[k], V[k]
        gi = min(max(G[k][i] * scales[k], -clip), clip)
        mi = m[i] + (gi - m[i]) * one_m_b1
        vi = v[i] + (gi * gi - v[i]) * one_m_b2
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vh = VH[k]
            vi = max(vh[i], vi)
            vh[i] = vi
        # alpha carries both bias corrections; epsilon is added to sqrt(v) (Keras' form)
        p[i] = p[i] - p[i] * decays[k] - alpha * mi / (math.sqrt(vi) + eps)


@cuda.jit
def _rms(P, G, V, MOM, AVG, starts, scales, decays, lr, a, b, momentum, eps, centered, clip):
    for e in range(cuda.grid(1), starts[len(starts) - 1], cuda.gridsize(1)):
        k = _which(starts, e)
        i = e - starts[k]
        p, v = P[k], V[k]
        gi = min(max(G[k][i] * scales[k], -clip), clip)
        vi = a * v[i] + b * gi * gi
        v[i] = vi
        if centered:
            avg = AVG[k]
            ai = a * avg[i] + b * gi
            avg[i] = ai
            den = vi - ai * ai + eps
        else:
            den = vi + eps
        inc = lr * gi / math.sqrt(den)  # Keras puts epsilon inside the square root
        pi = p[i] - p[i] * decays[k]
        if momentum != 0:
            mom = MOM[k]
            mo = momentum * mom[i] + inc
            mom[i] = mo
            pi -= mo
        else:
            pi -= inc
        p[i] = pi


@cuda.jit
def _squares(g, clip, out):
    # out[0, i] = g^2, out[1, i] = clip(g)^2, in float64 (summed next, as the CPU kernel)
    n = g.size
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        gi = g[i]
        ci = min(max(gi, -clip), clip)
        out[i] = gi * gi
        out[n + i] = ci * ci


def _flat(a):
    if a.ndim > 1 and not a.is_c_contiguous():
        raise ValueError("optimizer state must be C-contiguous to update in place")
    return _base.flat(a)


def _grad(g, p):
    from . import asarray

    return _base.flat(asarray(g, p.dtype))


_UNUSED: dict = {}


def _unused(p):
    """A one-element device array of p's dtype standing in for a slot that is not kept."""
    e = _UNUSED.get(p.dtype)
    if e is None:
        e = _UNUSED[p.dtype] = _base.empty((1,), p.dtype)
    return e


_PLANS: dict = {}  # kernel -> (ids of the parameters and slots, their groups) of its last call


def _groups(ps, slots) -> list:
    """Per dtype and GROUP parameters: ``(dtype, indices, P, slot tuples, starts, pad)`` with
    the flat views padded to a power of two (the same arrays give the same groups, so a
    training loop builds them once; the gradients are new arrays every step)."""
    by_dtype: dict = {}
    for i, p in enumerate(ps):
        if p.size:
            by_dtype.setdefault(p.dtype, []).append(i)
    out = []
    for dt, idx in by_dtype.items():
        for chunk, size in padded_groups(idx):
            pad = (_unused(ps[chunk[0]]),) * (size - len(chunk))
            P = tuple(_flat(ps[i]) for i in chunk) + pad
            S = [tuple(_unused(ps[i]) if ss[i] is None else _flat(ss[i]) for i in chunk) + pad
                 for ss in slots]
            ends = np.cumsum([0] + [ps[i].size for i in chunk])
            starts = tuple(int(x) for x in ends) + (int(ends[-1]),) * (size - len(chunk))
            out.append((dt, chunk, P, S, starts, pad))
    return out


def _run(k, ps, gs, slots, scales, decays, shared) -> None:
    # one launch per dtype and GROUP parameters, the settings in their dtype
    key = (*map(id, ps), *(id(a) for ss in slots for a in ss))
    last = _PLANS.get(k)
    if last is None or last[0] != key:
        last = _PLANS[k] = (key, _groups(ps, slots), ps, slots)  # holds the arrays: ids stay
    for dt, chunk, P, S, starts, pad in last[1]:
        G = tuple(_grad(gs[i], ps[i]) for i in chunk) + pad
        one, zero = dt.type(1), dt.type(0)
        sc = tuple(one if scales is None else dt.type(scales[i]) for i in chunk)
        de = tuple(zero if decays is None else dt.type(decays[i]) for i in chunk)
        n = len(P) - len(chunk)
        k[_base.blocks(starts[-1]), _base.TPB](P, G, *S, starts, sc + (one,) * n,
                                                de + (zero,) * n, *scalars(dt, shared))


# the same argument handling as the CPU's, over these kernels
sgd_update, adam_update, rms_update = updates(_run, _sgd, _adam, _rms)


def adam_rows_update(p, ids, values, m, v, vhat, alpha: float, beta_1: float, beta_2: float,
                     epsilon: float, scale: float = 1.0, clip: float = np.inf,
                     decay: float = 0.0, src=None) -> None:
    """The CPU's row form of Adam (a gradient zero but for ``values`` in rows ``ids``; with
    ``src``, id i's is values row ``src[i]``) as the dense update of the rows' scatter-add:
    one atomic launch sums the rows on the device (no host-side grouping), and the update
    streams the whole table either way."""
    from .embedding import embedding_grad, take_rows

    if src is not None:  # one values row per id, gathered on the device
        values = take_rows(values, 0, ids.size, src)
    g = embedding_grad(values, ids, tuple(p.shape)[0])
    adam_update([p], [g], [m], [v], [vhat], alpha, beta_1, beta_2, epsilon,
                None if scale == 1.0 else [scale], clip, [decay] if decay else None)


def grad_sq_norms(g, clip=np.inf) -> tuple[float, float]:
    """``(sum g^2, sum clip(g, -clip, clip)^2)`` in one pass, as Python floats."""
    from . import asarray
    from .reduce import sum as rsum

    g = asarray(g)
    if g.size == 0:
        return 0.0, 0.0
    sq = _base.empty((2, g.size), np.float64)
    _squares[_base.blocks(g.size), _base.TPB](_base.flat(g), g.dtype.type(clip), _base.flat(sq))
    s, sc = rsum(sq, (1,)).copy_to_host()
    return float(s), float(sc)
