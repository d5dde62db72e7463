"""Optimizer updates on the GPU: one fused in-place pass per parameter, as the CPU family.

The same three kernels (``sgd_update``, ``adam_update``, ``rms_update``) with the same
clip / decay / update order per element, hyperparameters converted to the parameter's dtype
on the host so float32 parameters update in float32. Parameters and slots stay on the
device; ``grad_sq_norms`` brings back two numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..cpu.optim import updates
from ..jit import scalars
from . import _base

__all__ = ["sgd_update", "adam_update", "adam_rows_update", "rms_update", "grad_sq_norms"]


@cuda.jit
def _sgd(p, g, m, scale, decay, lr, momentum, nesterov, clip):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = min(max(g[i] * scale, -clip), clip)
        pi = p[i] - p[i] * decay
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
def _adam(p, g, m, v, vhat, scale, decay, alpha, one_m_b1, one_m_b2, eps, amsgrad, clip):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = min(max(g[i] * scale, -clip), clip)
        mi = m[i] + (gi - m[i]) * one_m_b1
        vi = v[i] + (gi * gi - v[i]) * one_m_b2
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vhat[i], vi)
            vhat[i] = vi
        # alpha carries both bias corrections; epsilon is added to sqrt(v) (Keras' form)
        p[i] = p[i] - p[i] * decay - alpha * mi / (math.sqrt(vi) + eps)


@cuda.jit
def _rms(p, g, v, mom, avg, scale, decay, lr, a, b, momentum, eps, centered, clip):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = min(max(g[i] * scale, -clip), clip)
        vi = a * v[i] + b * gi * gi
        v[i] = vi
        if centered:
            ai = a * avg[i] + b * gi
            avg[i] = ai
            den = vi - ai * ai + eps
        else:
            den = vi + eps
        inc = lr * gi / math.sqrt(den)  # Keras puts epsilon inside the square root
        pi = p[i] - p[i] * decay
        if momentum != 0:
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


def _run(k, ps, gs, slots, scales, decays, shared) -> None:
    # one launch per parameter, the settings in its dtype
    for i, p in enumerate(ps):
        if not p.size:
            continue
        rest = [_unused(p) if ss[i] is None else _flat(ss[i]) for ss in slots]
        sc = 1.0 if scales is None else scales[i]
        de = 0.0 if decays is None else decays[i]
        k[_base.blocks(p.size), _base.TPB](_flat(p), _grad(gs[i], p), *rest,
                                            *scalars(p.dtype, (sc, de) + shared))


# the same argument handling as the CPU's, over these kernels
sgd_update, adam_update, rms_update = updates(_run, _sgd, _adam, _rms)


def adam_rows_update(p, ids, values, m, v, vhat, alpha: float, beta_1: float, beta_2: float,
                     epsilon: float, scale: float = 1.0, clip: float = np.inf,
                     decay: float = 0.0) -> None:
    """The CPU's row form of Adam (a gradient zero but for ``values`` in rows ``ids``) as
    the dense update of the rows' scatter-add: one atomic launch sums the rows on the device
    (no host-side grouping), and the update streams the whole table either way."""
    from .embedding import embedding_grad

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
