"""Optimizer updates: one fused pass per parameter that clips the gradient, decays the weight
and updates the parameter and its slots (momentum, second moments) in place.

Every kernel first forms the effective gradient ``g' = clip(scale * g, -clip, clip)`` (scale
carries clipnorm / global_clipnorm, clip carries clipvalue; 1 and inf when off) and applies
Keras' decoupled weight decay ``p <- p - decay * p`` (decay = lr * weight_decay), so clipping,
decay and the update read and write memory once.

Three kernels cover the five optimizers: ``sgd_update`` (SGD, momentum, Nesterov),
``adam_update`` (Adam, AMSGrad, AdamW) and ``rms_update`` (RMSProp and Adagrad, which differ
only in how the squared gradients are averaged: ``v <- a v + b g^2``). Each entry point
updates a list of parameters: on the CPU the small ones go through ONE compiled call per
``GROUP`` parameters (``_*_each``: a tuple of arrays; a small model's step spent more in
four calls' argument handling than in the arithmetic), a large one through the parallel
kernel of its own. Hyperparameters are converted to the parameter's dtype here, so float32
parameters are updated in float32.
"""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np
from numba import prange

from .. import jit
from ..jit import kernel, pick, scalars
from .embedding import check_ids

__all__ = ["sgd_update", "adam_update", "adam_rows_update", "rms_update", "grad_sq_norms"]

# parameters per fused call; a call's tuple is padded with empty arrays to 1, 2, 4 or GROUP
# entries, so four compiled copies serve every model (a tuple's length is part of Numba's
# signature, and each padding entry costs a fifth of a microsecond to type)
GROUP = 8


@kernel(parallel=True)
def _sgd(p, g, m, scale, decay, lr, momentum, nesterov, clip):
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


@kernel
def _adam_step(p, g, m, v, vhat, scale, decay, alpha, one_m_b1, one_m_b2, eps, amsgrad, clip):
    # one element of Adam's update: the new (p, m, v, vhat) from the old and the gradient g
    # (scalars in and out: the dense and row kernels share it and both stay vectorized)
    gi = min(max(g * scale, -clip), clip)
    # m <- m + (1 - b1)(g - m);  v <- v + (1 - b2)(g^2 - v)
    mi = m + (gi - m) * one_m_b1
    vi = v + (gi * gi - v) * one_m_b2
    vh = max(vhat, vi) if amsgrad else vi
    # alpha = lr sqrt(1 - b2^t) / (1 - b1^t) carries both bias corrections (Keras' form:
    # epsilon is added to sqrt(v), not to the bias-corrected sqrt(v_hat))
    return p - p * decay - alpha * mi / (np.sqrt(vh) + eps), mi, vi, vh


@kernel(parallel=True)
def _adam(p, g, m, v, vhat, scale, decay, alpha, one_m_b1, one_m_b2, eps, amsgrad, clip):
    if amsgrad:
        for i in prange(p.size):
            p[i], m[i], v[i], vhat[i] = _adam_step(p[i], g[i], m[i], v[i], vhat[i], scale,
                                                   decay, alpha, one_m_b1, one_m_b2, eps,
                                                   amsgrad, clip)
    else:
        for i in prange(p.size):
            p[i], m[i], v[i], _ = _adam_step(p[i], g[i], m[i], v[i], v[i], scale, decay, alpha,
                                             one_m_b1, one_m_b2, eps, amsgrad, clip)


@kernel(parallel=True)
def _adam_rows(p, m, v, vhat, slot, comp, zero_row, scale, decay, alpha, one_m_b1, one_m_b2,
               eps, amsgrad, clip):
    # Adam over a (rows, dim) parameter whose gradient row r is comp[slot[r]], or zero where
    # slot[r] < 0: the dense update, element for element, without the dense gradient (a
    # zero row still decays its moments and moves its parameter)
    for r in prange(p.shape[0]):
        s = slot[r]
        pr, mr, vr = p[r], m[r], v[r]
        gr = comp[s] if s >= 0 else zero_row
        if amsgrad:
            vh = vhat[r]
            for j in range(pr.shape[0]):
                pr[j], mr[j], vr[j], vh[j] = _adam_step(pr[j], gr[j], mr[j], vr[j], vh[j],
                                                        scale, decay, alpha, one_m_b1,
                                                        one_m_b2, eps, amsgrad, clip)
        else:
            for j in range(pr.shape[0]):
                pr[j], mr[j], vr[j], _ = _adam_step(pr[j], gr[j], mr[j], vr[j], vr[j], scale,
                                                    decay, alpha, one_m_b1, one_m_b2, eps,
                                                    amsgrad, clip)


@kernel(parallel=True)
def _sum_rows(ids, vals, src, slot, comp, order, first, chunks):
    # comp[k] = the sum of vals[src[i]] over the ids[i] equal to order[k], in the order of i (the
    # dense scatter-add's order, so the sums agree bit for bit); slot[order[k]] = k, order
    # ascending, so the update's pass over the table reads comp front to back (numbered as
    # first seen, its random reads cost the embedding workload's update 2.11 -> 1.65 ms,
    # cache cold). slot is -1 everywhere on entry. Returns the number of distinct rows.
    # Chunk c sums columns [c d / chunks, (c + 1) d / chunks) of comp (threads own columns,
    # as embedding.py's scatter-add: two ids may name one row). A row's first value is
    # written as 0 + v, the dense sum's first step, so comp needs no clearing pass
    # (first[i]: ids[i] not seen before i; 0.30 -> 0.18 ms on the embedding workload's
    # batch, 0.95 -> 0.70 cache cold).
    for i in range(ids.shape[0]):
        r = ids[i]
        first[i] = slot[r] < 0
        slot[r] = 0
    n = 0
    for r in range(slot.shape[0]):
        if slot[r] == 0:
            slot[r] = n
            order[n] = r
            n += 1
    d = comp.shape[1]
    zero = comp.dtype.type(0)
    for ch in prange(chunks):
        lo, hi = ch * d // chunks, (ch + 1) * d // chunks
        for i in range(ids.shape[0]):
            c, gi = comp[slot[ids[i]], lo:hi], vals[src[i], lo:hi]
            if first[i]:
                for j in range(c.shape[0]):
                    c[j] = zero + gi[j]  # (-0 becomes +0, as in 0 + v)
            else:
                for j in range(c.shape[0]):
                    c[j] += gi[j]
    return n


@kernel(parallel=True)
def _rms(p, g, v, mom, avg, scale, decay, lr, a, b, momentum, eps, centered, clip):
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


# One call over up to GROUP parameters: P[k], G[k] and the slot tuples hold parameter k's
# arrays (a tuple per kind: tuples of tuples took twice as long to compile), scales and
# decays its two factors; the rest are shared. Each calls the serial kernel.
_sgd1, _adam1, _rms1 = (getattr(k, "serial", k) for k in (_sgd, _adam, _rms))


@kernel
def _sgd_each(P, G, M, scales, decays, lr, momentum, nesterov, clip):
    for k in range(len(P)):
        _sgd1(P[k], G[k], M[k], scales[k], decays[k], lr, momentum, nesterov, clip)


@kernel
def _adam_each(P, G, M, V, VH, scales, decays, alpha, one_m_b1, one_m_b2, eps, amsgrad,
               clip):
    for k in range(len(P)):
        _adam1(P[k], G[k], M[k], V[k], VH[k], scales[k], decays[k], alpha, one_m_b1,
               one_m_b2, eps, amsgrad, clip)


@kernel
def _rms_each(P, G, V, MOM, AVG, scales, decays, lr, a, b, momentum, eps, centered, clip):
    for k in range(len(P)):
        _rms1(P[k], G[k], V[k], MOM[k], AVG[k], scales[k], decays[k], lr, a, b, momentum, eps,
              centered, clip)


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


def padded_groups(items: list) -> Iterator[tuple[list, int]]:
    """``items`` GROUP at a time, each chunk with the length its tuples are padded to (1, 2,
    4 or GROUP: a tuple's length is part of the compiled signature). Both backends."""
    for lo in range(0, len(items), GROUP):
        chunk = items[lo:lo + GROUP]
        yield chunk, 1 << (len(chunk) - 1).bit_length()


def _plan(k, ps: list, gs: list, slots: list) -> tuple:
    """How ``_run`` updates these arrays: ``(alone, groups, reusable)``. ``alone`` lists the
    parameters updated by ``k`` itself (large, or a view); ``groups`` holds, per dtype and
    GROUP parameters, the padded tuples of flat views (parameters, gradients, each slot
    kind), the parameters' indices and default scales (1) and decays (0). ``reusable``:
    every array is a view of the caller's, so the plan stays right for the same arrays at
    the next step."""
    alone, small, reusable = [], {}, True
    for i, (p, g, ss) in enumerate(zip(ps, gs, zip(*slots))):
        if not (p.flags.c_contiguous and p.size < jit.PARALLEL_MIN):
            alone.append(i)
            continue
        gf = _grad(g, p)
        reusable = reusable and np.may_share_memory(gf, g)
        flat = (p.reshape(-1), gf, *(_unused(p) if s is None else _flat(s) for s in ss))
        small.setdefault(p.dtype, []).append((i, flat))
    groups = []
    for dt, items in small.items():
        empty = _unused(items[0][1][0])
        for chunk, size in padded_groups(items):
            pad = (empty,) * (size - len(chunk))
            kinds = tuple(col + pad for col in zip(*(c[1] for c in chunk)))  # P, G, slots
            groups.append((dt, kinds, [c[0] for c in chunk], np.ones(size, dt),
                           np.zeros(size, dt)))
    return alone, groups, reusable


_PLANS: dict = {}  # kernel -> (ids of every array, _plan's answer) of its last call


def _run(k, ps: list, gs: list, slots: list, scales: list | None, decays: list | None,
         shared: tuple) -> None:
    """Update parameters ``ps``: the small ones GROUP at a time through one call of ``k``'s
    ``_each`` form, a large one (or a view, through a contiguous copy) by ``k`` itself,
    parallel past PARALLEL_MIN. The grouping is remembered for the same arrays (a training
    loop passes the same parameters, slots and gradient buffers every step)."""
    key = (*map(id, ps), *map(id, gs), *(id(a) for ss in slots for a in ss))
    last = _PLANS.get(k)
    if last is not None and last[0] == key:
        plan = last[1]
    else:
        plan = _plan(k, ps, gs, slots)
        # the last step's plan only; it holds the arrays, so their ids are not reused
        _PLANS[k] = (key, plan) if plan[2] else None
    alone, groups, _ = plan
    for i in alone:
        p = ps[i]
        q = np.ascontiguousarray(p)
        rest = [_unused(p) if ss[i] is None else _flat(ss[i]) for ss in slots]
        s = 1.0 if scales is None else scales[i]
        d = 0.0 if decays is None else decays[i]
        pick(k, q.size)(q.reshape(-1), _grad(gs[i], p), *rest, *scalars(p.dtype, (s, d) + shared))
        if q is not p:
            p[...] = q
    each = _EACH[k]
    for dt, arrays, idx, ones, zeros in groups:
        sc, de = ones, zeros
        if scales is not None:
            sc = ones.copy()
            sc[:len(idx)] = [scales[i] for i in idx]
        if decays is not None:
            de = zeros.copy()
            de[:len(idx)] = [decays[i] for i in idx]
        each(*arrays, sc, de, *scalars(dt, shared))


def updates(run, sgd, adam, rms) -> tuple:
    """The three update entry points over one backend's kernels.

    Both backends share this argument order: each entry takes lists (parameters,
    gradients, slots with None for a slot the optimizer does not keep; per-parameter
    ``scales`` and ``decays``, None for all 1 and all 0) and the shared settings.
    ``run(kernel, ps, gs, slots, scales, decays, shared)`` launches.
    """

    def sgd_update(ps, gs, ms, lr, momentum, nesterov, scales=None, clip=np.inf,
                   decays=None) -> None:
        """SGD with optional (Nesterov) momentum; ``ms`` may hold None when momentum is 0."""
        run(sgd, ps, gs, [ms], scales, decays, (lr, momentum, bool(nesterov), clip))

    def adam_update(ps, gs, ms, vs, vhats, alpha, beta_1, beta_2, epsilon, scales=None,
                    clip=np.inf, decays=None) -> None:
        """Adam with the bias corrections folded into ``alpha``; AMSGrad where ``vhats``
        holds arrays (all of them, or None for all)."""
        ams = vhats[0] is not None if vhats else False
        run(adam, ps, gs, [ms, vs, vhats], scales, decays,
            (alpha, 1 - beta_1, 1 - beta_2, epsilon, ams, clip))

    def rms_update(ps, gs, vs, moms, avgs, lr, a, b, momentum, epsilon, scales=None,
                   clip=np.inf, decays=None) -> None:
        """``v <- a v + b g^2; p <- p - lr g / sqrt(v + eps)`` (RMSProp: a=rho, b=1-rho;
        Adagrad: a=b=1), with optional momentum ``moms`` and centering ``avgs`` (None
        entries when unused)."""
        centered = avgs[0] is not None if avgs else False
        run(rms, ps, gs, [vs, moms, avgs], scales, decays,
            (lr, a, b, momentum, epsilon, centered, clip))

    return sgd_update, adam_update, rms_update


_EACH = {_sgd: _sgd_each, _adam: _adam_each, _rms: _rms_each}
sgd_update, adam_update, rms_update = updates(_run, _sgd, _adam, _rms)


def grad_sq_norms(g, clip=np.inf) -> tuple[float, float]:
    """``(sum g^2, sum clip(g, -clip, clip)^2)`` in one pass, as Python floats."""
    g = np.ascontiguousarray(g).reshape(-1)
    if g.size == 0:
        return 0.0, 0.0
    s, sc = pick(_sq_norms, g.size)(g, g.dtype.type(clip))
    return float(s), float(sc)


_ROWS: dict = {}  # (rows, ids, dim, dtype) -> the row form's scratch: slot map, sums, order,
# zero row, first-seen flags, 0..ids-1 (the src of one value row per id)


def _positions(src, n: int, k: int) -> np.ndarray:
    """``src`` as ``n`` int64 row numbers of a ``k``-row values array (ValueError if not)."""
    s = np.ascontiguousarray(src, np.int64).reshape(-1)
    if s.size != n:
        raise ValueError(f"src names {s.size} rows for {n} ids")
    if n and (s.min() < 0 or s.max() >= k):
        raise ValueError(f"src names rows outside the {k} rows of values")
    return s


def adam_rows_update(p: np.ndarray, ids, values, m: np.ndarray, v: np.ndarray, vhat,
                     alpha: float, beta_1: float, beta_2: float, epsilon: float,
                     scale: float = 1.0, clip: float = np.inf, decay: float = 0.0,
                     src=None) -> None:
    """Adam on ``p (rows, dim)`` whose gradient is zero but for ``values (..., dim)`` added
    into rows ``ids (...)``: ``adam_update`` on the dense gradient, bit for bit, without
    forming it. With ``src`` (one int per id), id i adds row ``src[i]`` of ``values (k, dim)``
    instead: a mean's gradient, one row per bag of ids. The distinct rows' sums are
    gathered first (a batch names each row at most once then), and one pass over the table
    updates every row."""
    rows, dim = p.shape
    flat = check_ids(ids, rows, "a table of rows")
    for a in (p, m, v) if vhat is None else (p, m, v, vhat):
        _flat(a)  # in place: C-contiguous
    vals = np.ascontiguousarray(values, p.dtype).reshape(-1, dim)
    key = (rows, flat.size, dim, p.dtype)
    scratch = _ROWS.get(key)
    if scratch is None:
        if len(_ROWS) > 8:
            _ROWS.clear()
        scratch = _ROWS[key] = (np.full(rows, -1, np.int64),
                                np.empty((flat.size, dim), p.dtype),
                                np.empty(flat.size, np.int64), np.zeros(dim, p.dtype),
                                np.empty(flat.size, np.bool_), np.arange(flat.size))
    slot, comp, order, zero_row, first, own = scratch
    src = own if src is None else _positions(src, flat.size, len(vals))
    k = pick(_sum_rows, flat.size * dim)
    threads = numba.config.NUMBA_NUM_THREADS  # (as embedding.py's scatter-add)
    chunks = min(threads, dim) if k is getattr(_sum_rows, "parallel", None) else 1
    n = k(flat, vals, src, slot, comp, order, first, max(chunks, 1))
    ams = vhat is not None
    pick(_adam_rows, p.size)(p, m, v, vhat if ams else m, slot, comp, zero_row,
                             *scalars(p.dtype, (scale, decay, alpha, 1 - beta_1,
                                                1 - beta_2, epsilon, ams, clip)))
    slot[order[:n]] = -1  # the map is all -1 again for the next call
