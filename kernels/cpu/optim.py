"""Optimizer updates: one fused pass per parameter that clips the gradient, decays the weight
and updates the parameter and its slots (momentum, second moments) in place.

Every kernel first forms the effective gradient ``g' = clip(scale * g, -clip, clip)`` (scale
carries clipnorm / global_clipnorm, clip carries clipvalue; 1 and inf when off) and applies
Keras' decoupled weight decay ``p <- p - decay * p`` (decay = lr * weight_decay), so clipping,
decay and the update read and write memory once.

Three kernels cover the five optimizers: ``sgd_update`` (SGD, momentum, Nesterov),
``adam_update`` (Adam, AMSGrad, AdamW) and ``rms_update`` (RMSProp and Adagrad, which differ
only in how the squared gradients are averaged: ``v <- a v + b g^2``). Hyperparameters are
converted to the parameter's dtype here, so float32 parameters are updated in float32.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["sgd_update", "adam_update", "rms_update", "grad_sq_norms"]


@kernel(parallel=True)
def _sgd(p, g, m, lr, momentum, nesterov, scale, clip, decay):
    for i in prange(p.size):
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


@kernel(parallel=True)
def _adam(p, g, m, v, vhat, alpha, one_m_b1, one_m_b2, eps, amsgrad, scale, clip, decay):
    for i in prange(p.size):
        gi = min(max(g[i] * scale, -clip), clip)
        # m <- m + (1 - b1)(g - m);  v <- v + (1 - b2)(g^2 - v)
        mi = m[i] + (gi - m[i]) * one_m_b1
        vi = v[i] + (gi * gi - v[i]) * one_m_b2
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vhat[i], vi)
            vhat[i] = vi
        # alpha = lr sqrt(1 - b2^t) / (1 - b1^t) carries both bias corrections (Keras' form:
        # epsilon is added to sqrt(v), not to the bias-corrected sqrt(v_hat))
        p[i] = p[i] - p[i] * decay - alpha * mi / (np.sqrt(vi) + eps)


@kernel(parallel=True)
def _rms(p, g, v, mom, avg, lr, a, b, momentum, eps, centered, scale, clip, decay):
    for i in prange(p.size):
        gi = min(max(g[i] * scale, -clip), clip)
        # RMSProp: v <- rho v + (1 - rho) g^2;  Adagrad: v <- v + g^2
        vi = a * v[i] + b * gi * gi
        v[i] = vi
        if centered:
            ai = a * avg[i] + b * gi
            avg[i] = ai
            den = vi - ai * ai + eps
        else:
            den = vi + eps
        inc = lr * gi / np.sqrt(den)  # Keras puts epsilon inside the square root
        pi = p[i] - p[i] * decay
        if momentum != 0:
            mo = momentum * mom[i] + inc
            mom[i] = mo
            pi -= mo
        else:
            pi -= inc
        p[i] = pi


@kernel(parallel=True)
def _sq_norms(g, clip):
    # Accumulate in float64 on purpose: a sum of many float32 squares loses digits.
    s = 0.0
    sc = 0.0
    for i in prange(g.size):
        gi = g[i]
        ci = min(max(gi, -clip), clip)
        s += gi * gi
        sc += ci * ci
    return s, sc


_EMPTY: dict = {}


def _flat(a: np.ndarray) -> np.ndarray:
    if not a.flags.c_contiguous:
        raise ValueError("optimizer state must be C-contiguous to update in place")
    return a.reshape(-1)


def _grad(g, p: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(g, dtype=p.dtype).reshape(-1)


def _unused(p: np.ndarray) -> np.ndarray:
    """An empty array of p's dtype standing in for a slot the optimizer does not keep."""
    e = _EMPTY.get(p.dtype)
    if e is None:
        e = _EMPTY[p.dtype] = np.empty(0, p.dtype)
    return e


def _run(k, p: np.ndarray, *args) -> None:
    # p may be a non-contiguous view: update a contiguous copy and write it back
    if p.flags.c_contiguous:
        pick(k, p.size)(p.reshape(-1), *args)
    else:
        q = np.ascontiguousarray(p)
        pick(k, p.size)(q.reshape(-1), *args)
        p[...] = q


def updates(run, flat, grad, unused, sgd, adam, rms) -> tuple:
    """The three update entry points over one backend's kernels and array helpers.

    Both backends share this argument handling: the settings are cast to the parameter's
    dtype (a Python float would promote a float32 update to float64) and an empty array
    stands in for a slot the optimizer does not keep. ``run(kernel, p, *args)`` launches.
    """

    def sgd_update(p, g, m, lr, momentum, nesterov, scale=1.0, clip=np.inf,
                   decay=0.0) -> None:
        """SGD with optional (Nesterov) momentum; ``m`` may be None when momentum is 0."""
        t = p.dtype.type
        m = unused(p) if m is None else flat(m)
        run(sgd, p, grad(g, p), m, t(lr), t(momentum), bool(nesterov), t(scale), t(clip),
            t(decay))

    def adam_update(p, g, m, v, vhat, alpha, beta_1, beta_2, epsilon, scale=1.0,
                    clip=np.inf, decay=0.0) -> None:
        """Adam with the bias corrections folded into ``alpha``; AMSGrad when ``vhat`` is
        given."""
        t = p.dtype.type
        ams = vhat is not None
        vhat = flat(vhat) if ams else unused(p)
        run(adam, p, grad(g, p), flat(m), flat(v), vhat, t(alpha), t(1 - beta_1),
            t(1 - beta_2), t(epsilon), ams, t(scale), t(clip), t(decay))

    def rms_update(p, g, v, mom, avg, lr, a, b, momentum, epsilon, scale=1.0, clip=np.inf,
                   decay=0.0) -> None:
        """``v <- a v + b g^2; p <- p - lr g / sqrt(v + eps)`` (RMSProp: a=rho, b=1-rho;
        Adagrad: a=b=1), with optional momentum ``mom`` and centering ``avg`` (None when
        unused)."""
        t = p.dtype.type
        centered = avg is not None
        mom = unused(p) if mom is None else flat(mom)
        avg = flat(avg) if centered else unused(p)
        run(rms, p, grad(g, p), flat(v), mom, avg, t(lr), t(a), t(b), t(momentum),
            t(epsilon), centered, t(scale), t(clip), t(decay))

    return sgd_update, adam_update, rms_update


sgd_update, adam_update, rms_update = updates(_run, _flat, _grad, _unused, _sgd, _adam, _rms)


def grad_sq_norms(g, clip=np.inf) -> tuple[float, float]:
    """``(sum g^2, sum clip(g, -clip, clip)^2)`` in one pass, as Python floats."""
    g = np.ascontiguousarray(g).reshape(-1)
    if g.size == 0:
        return 0.0, 0.0
    s, sc = pick(_sq_norms, g.size)(g, g.dtype.type(clip))
    return float(s), float(sc)
