"""GRU kernels on the GPU: the CPU family's driver as a host loop over time steps.

As ``recurrent.py`` here: the input projection of every step is one tiled GEMM, then per step
a launch with a thread per (batch row, unit) that forms its own entries of the recurrent
product and runs the cell (reset after: one launch; reset before: one for the gates and
``r h_{t-1}``, one for ``(r h_{t-1}) U_h`` and the candidate, since it needs the whole row
of ``r h_{t-1}``). Backward through time likewise, ``dZ_{t+1} U^T`` fused into the step;
then ``dW``, ``dU`` and ``dx`` as GEMMs over all steps. The cell math is the CPU kernels'
own ``candidate_forward`` / ``unit_backward`` (``_base.twin``) and the
state layout is the CPU's, so ``state`` means the same on both backends.
"""

from __future__ import annotations

from numba import cuda

from ..cpu import gru as _cpu
from ..cpu.recurrent import check_shapes, codes
from . import _base
from .activation import act, act_grad
from .matmul import matmul
from .recurrent import _state
from .shape import concatenate, getitem, transpose

__all__ = ["gru_forward", "gru_backward"]

candidate_forward = _base.twin(_cpu.candidate_forward, act=act)
unit_backward = _base.twin(_cpu.unit_backward, act_grad=act_grad)


@cuda.jit(device=True)
def _candidate(a, rh, bi, has_b, H, y, t, n, j, code, zero):
    # h~ (written over a's x_t W_h) and h_t of unit j in row n, given the candidate's
    # recurrent term rh: r (h_{t-1} U_h + b'_h) or (r h_{t-1}) U_h
    u = H.shape[2]
    s = a[n, 2 * u + j] + rh
    if has_b:
        s += bi[2 * u + j]
    hh, hn = candidate_forward(s, a[n, j], H[t, n, j], code, zero)
    a[n, 2 * u + j] = hh
    H[t + 1, n, j] = hn
    y[n, t, j] = hn


@cuda.jit
def _step_gates(A, Q, U, H, RH, bi, bh, has_b, after, y, t, M, masked, code, rcode, zero):
    # one thread per (row n, unit j): its entries of h_{t-1} U (z, r and, reset after, h;
    # with recurrent dropout U reads h_{t-1} M), the gates, then (reset after) the candidate
    # and h_t, or (before) r h_{t-1} (masked likewise)
    a = A[t]
    u = H.shape[2]
    for k in range(cuda.grid(1), H.shape[1] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        for m in range(j, 3 * u if after else 2 * u, u):
            s = zero
            for q in range(u):
                hq = H[t, n, q]
                if masked:
                    hq *= M[n, q]
                s += hq * U[q, m]
            Q[n, m] = s
        sz = a[n, j] + Q[n, j]
        sr = a[n, u + j] + Q[n, u + j]
        if has_b:
            sz += bi[j]
            sr += bi[u + j]
        a[n, j] = act(rcode, sz, zero)
        r = act(rcode, sr, zero)
        a[n, u + j] = r
        if after:
            rh = Q[n, 2 * u + j]
            if has_b:
                rh += bh[j]
            RH[t, n, j] = rh
            _candidate(a, r * rh, bi, has_b, H, y, t, n, j, code, zero)
        else:
            RH[t, n, j] = r * (H[t, n, j] * M[n, j] if masked else H[t, n, j])


@cuda.jit
def _step_candidate(A, U, H, RH, bi, has_b, y, t, code, zero):
    # reset before: (r h_{t-1}) U_h for (n, j), then the candidate and h_t
    a = A[t]
    u = H.shape[2]
    for k in range(cuda.grid(1), H.shape[1] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        s = zero
        for q in range(u):
            s += RH[t, n, q] * U[q, 2 * u + j]
        _candidate(a, s, bi, has_b, H, y, t, n, j, code, zero)


@cuda.jit
def _step_backward(A, dA, dR, UT, H, RH, g, dhd, after, t, M, masked, code, rcode, zero):
    # one thread per (n, j): dh_t = g_t + dhd + (dZ_{t+1} U^T)[n, j] (dR's row after, dA's
    # z, r row before; times M[n, j] where U read h_t M), then the cell's chain rule; dhd
    # keeps the other paths to h_{t-1}
    a = A[t]
    u = dhd.shape[1]
    T = g.shape[1]
    for k in range(cuda.grid(1), dhd.shape[0] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        dh = g[n, t, j] + dhd[n, j]
        if t + 1 < T:
            p = zero
            for m in range(3 * u if after else 2 * u):
                p += (dR[t + 1, n, m] if after else dA[t + 1, n, m]) * UT[m, j]
            dh += p * M[n, j] if masked else p
        dz, ds, dhd[n, j] = unit_backward(a[n, j], a[n, 2 * u + j], dh, H[t, n, j], code,
                                          rcode, zero)
        dA[t, n, j] = dz
        if after:
            r = a[n, u + j]
            dr = ds * RH[t, n, j] * act_grad(rcode, r, r, zero)
            dA[t, n, u + j] = dr
            dA[t, n, 2 * u + j] = ds
            dR[t, n, j] = dz
            dR[t, n, u + j] = dr
            dR[t, n, 2 * u + j] = ds * r
        else:
            dA[t, n, 2 * u + j] = ds  # read by _step_reset; moved to dAH after the loop


@cuda.jit
def _step_reset(A, dA, UT, H, dhd, t, M, masked, DRH, rcode, zero):
    # reset before: d(r h_{t-1}) = ds_h U_h^T for (n, j), then dr and r's path to h_{t-1}
    # (with a mask: r h_{t-1} M, that path kept in DRH for the mask's gradient)
    a = A[t]
    u = dhd.shape[1]
    for k in range(cuda.grid(1), dhd.shape[0] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        drh = zero
        for m in range(u):
            drh += dA[t, n, 2 * u + m] * UT[2 * u + m, j]
        r = a[n, u + j]
        hm = H[t, n, j] * M[n, j] if masked else H[t, n, j]
        dA[t, n, u + j] = drh * hm * act_grad(rcode, r, r, zero)
        if masked:
            DRH[t, n, j] = drh * r
            dhd[n, j] += drh * r * M[n, j]
        else:
            dhd[n, j] += drh * r


def _biases(b, u: int, after: bool):
    # the z, r gates add both rows (as the CPU driver folds them)
    from .elementwise import add

    if not after:
        return b, b
    zr = add(getitem(b, (0, slice(0, 2 * u))), getitem(b, (1, slice(0, 2 * u))))
    return concatenate([zr, getitem(b, (0, slice(2 * u, 3 * u)))], 0), \
        getitem(b, (1, slice(2 * u, 3 * u)))


def gru_forward(x, W, U, b=None, h0=None, activation: str = "tanh",
                recurrent_activation: str = "sigmoid", reset_after: bool = True,
                mask=None) -> tuple:
    """``(y, state)``: all hidden states ``y (B, T, u)`` of Keras 3's GRU (gates z, r, h;
    ``b`` is ``(2, 3u)`` with ``reset_after``, else ``(3u,)``) and what backward reads;
    ``mask (B, u)``: the recurrent kernel reads ``h_{t-1} mask``."""
    from . import asarray
    from .elementwise import mul

    acts = codes(activation, recurrent_activation)
    x, W, U = asarray(x), asarray(W), asarray(U)
    B, T, n_in, u = check_shapes(x, W, U, 3, (h0,), mask)
    after = bool(reset_after)
    if b is not None and tuple(b.shape) != ((2, 3 * u) if after else (3 * u,)):
        raise ValueError(f"a GRU bias of shape {tuple(b.shape)} does not fit {u} units with "
                         f"reset_after={after}")
    dt = x.dtype
    xt = transpose(x, (1, 0, 2))
    A = matmul(_base.rows(xt, n_in), W).reshape((T, B, 3 * u))  # x_t W, every step
    H = _base.empty((T + 1, B, u), dt)
    _state(H[0], h0)
    RH = _base.empty((T, B, u), dt)
    y = _base.empty((B, T, u), dt)
    bi, bh = _biases(asarray(b), u, after) if b is not None else (_base.flat(A),) * 2
    Q = _base.empty((B, 3 * u), dt)
    M = asarray(mask) if mask is not None else H[0]  # (a stand-in without a mask: unread)
    grid = _base.blocks(B * u), _base.TPB
    for t in range(T):
        _step_gates[grid](A, Q, U, H, RH, bi, bh, b is not None, after, y, t, M,
                          mask is not None, *acts, dt.type(0))
        if not after:
            _step_candidate[grid](A, U, H, RH, bi, b is not None, y, t, acts[0], dt.type(0))
    # as the CPU's state: the mask and the masked states h_{t-1} m that U read (for dU)
    return y, (xt, H, A, RH, None if mask is None else (M, mul(H[:T], M)))


def gru_backward(g, state, W, U, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 reset_after: bool = True, bias: bool = True, need_dx: bool = True,
                 need_h0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dmask)`` of ``gru_forward`` given ``g = dL/dy``; ``db`` has
    the bias's shape; what is not asked for (or has no mask) is None."""
    from . import asarray, zeros
    from .elementwise import add, mul
    from .reduce import sum as rsum

    acts = codes(activation, recurrent_activation)
    xt, H, A, RH = (asarray(s) for s in state[:4])
    after = bool(reset_after)
    masked = state[4] is not None
    M, Hm = (asarray(v) for v in state[4]) if masked else (H[0], H[:-1])
    g, W, U = asarray(g), asarray(W), asarray(U)
    T, B, n_in = xt.shape
    u = U.shape[0]
    G = 3 * u
    dt = xt.dtype
    dA = _base.empty((T, B, G), dt)  # before: dz, dr, then ds_h in the h columns
    dR = _base.empty((T, B, G) if after else (1, 1, 1), dt)
    dhd = zeros((B, u), dt)
    UT = transpose(U, (1, 0))
    # reset before with a mask: r's path to h_{t-1} m at every step, for the mask's gradient
    DRH = _base.empty((T, B, u) if masked and not after else (1, 1, 1), dt)
    grid = _base.blocks(B * u), _base.TPB
    for t in range(T - 1, -1, -1):
        _step_backward[grid](A, dA, dR, UT, H, RH, g, dhd, after, t, M, masked, *acts,
                             dt.type(0))
        if not after:
            _step_reset[grid](A, dA, UT, H, dhd, t, M, masked, DRH, acts[1], dt.type(0))
    dA2 = _base.rows(dA, G)
    Hp = _base.rows(Hm, u)
    if after:
        dU = matmul(Hp, _base.rows(dR, G), trans_a=True)
        d0 = dR[0]
    else:
        zr, hc = (slice(None), slice(None), slice(0, 2 * u)), (Ellipsis, slice(2 * u, G))
        dzr = _base.rows(getitem(dA, zr), 2 * u)  # (T B, 2u): the z, r columns
        dU = concatenate([matmul(Hp, dzr, trans_a=True),
                          matmul(_base.rows(RH, u), _base.rows(getitem(dA, hc), u),
                                 trans_a=True)], 1)
        d0 = concatenate([dzr[:B], zeros((B, u), dt)], 1)  # step 0's dz, dr; no h part
    dW = matmul(_base.rows(xt, n_in), dA2, trans_a=True)
    db = None
    if bias:
        db = rsum(dA2, (0,))
        if after:
            db = concatenate([db.reshape((1, G)), rsum(_base.rows(dR, G), (0,)).reshape((1, G))],
                             0)
    dx = None
    if need_dx:
        dx = transpose(matmul(dA2, W, trans_b=True).reshape((T, B, n_in)), (1, 0, 2))
    dh0 = dm = None
    if need_h0:  # the other paths, plus step 0's product dZ_0 U^T (times the mask U read)
        p0 = matmul(d0, U, trans_b=True)
        dh0 = add(dhd, mul(p0, M) if masked else p0)
    if need_mask and masked:  # dm = sum_t h_{t-1} (the paths through U), all steps at once
        Uzr = U if after else getitem(U, (slice(None), slice(0, 2 * u)))
        P = matmul(_base.rows(dR, G) if after else dzr, Uzr, trans_b=True).reshape((T, B, u))
        if not after:
            P = add(P, DRH)
        dm = rsum(mul(H[:T], P), (0,))
    return dx, dW, dU, db, dh0, dm
