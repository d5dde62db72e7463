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
def _step_gates(A, Q, U, H, RH, bi, bh, has_b, after, y, t, code, rcode, zero):
    # one thread per (row n, unit j): its entries of h_{t-1} U (z, r and, reset after, h),
    # the gates, then (reset after) the candidate and h_t, or (before) r h_{t-1}
    a = A[t]
    u = H.shape[2]
    for k in range(cuda.grid(1), H.shape[1] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        for m in range(j, 3 * u if after else 2 * u, u):
            s = zero
            for q in range(u):
                s += H[t, n, q] * U[q, m]
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
            RH[t, n, j] = r * H[t, n, j]


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
def _step_backward(A, dA, dR, UT, H, RH, g, dhd, after, t, code, rcode, zero):
    # one thread per (n, j): dh_t = g_t + dhd + (dZ_{t+1} U^T)[n, j] (dR's row after, dA's
    # z, r row before), then the cell's chain rule; dhd keeps the direct paths to h_{t-1}
    a = A[t]
    u = dhd.shape[1]
    T = g.shape[1]
    for k in range(cuda.grid(1), dhd.shape[0] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        dh = g[n, t, j] + dhd[n, j]
        if t + 1 < T:
            for m in range(3 * u if after else 2 * u):
                dh += (dR[t + 1, n, m] if after else dA[t + 1, n, m]) * UT[m, j]
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
def _step_reset(A, dA, UT, H, dhd, t, rcode, zero):
    # reset before: d(r h_{t-1}) = ds_h U_h^T for (n, j), then dr and r's path to h_{t-1}
    a = A[t]
    u = dhd.shape[1]
    for k in range(cuda.grid(1), dhd.shape[0] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        drh = zero
        for m in range(u):
            drh += dA[t, n, 2 * u + m] * UT[2 * u + m, j]
        r = a[n, u + j]
        dA[t, n, u + j] = drh * H[t, n, j] * act_grad(rcode, r, r, zero)
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
                recurrent_activation: str = "sigmoid", reset_after: bool = True) -> tuple:
    """``(y, state)``: all hidden states ``y (B, T, u)`` of Keras 3's GRU (gates z, r, h;
    ``b`` is ``(2, 3u)`` with ``reset_after``, else ``(3u,)``) and what backward reads."""
    from . import asarray

    acts = codes(activation, recurrent_activation)
    x, W, U = asarray(x), asarray(W), asarray(U)
    B, T, n_in, u = check_shapes(x, W, U, 3, (h0,))
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
    grid = _base.blocks(B * u), _base.TPB
    for t in range(T):
        _step_gates[grid](A, Q, U, H, RH, bi, bh, b is not None, after, y, t, *acts,
                          dt.type(0))
        if not after:
            _step_candidate[grid](A, U, H, RH, bi, b is not None, y, t, acts[0], dt.type(0))
    return y, (xt, H, A, RH)


def gru_backward(g, state, W, U, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 reset_after: bool = True, bias: bool = True, need_dx: bool = True,
                 need_h0: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0)`` of ``gru_forward`` given ``g = dL/dy``; ``db`` has the
    bias's shape; ``dx``, ``db`` and ``dh0`` are None when not asked for."""
    from . import asarray, zeros
    from .elementwise import add
    from .reduce import sum as rsum

    acts = codes(activation, recurrent_activation)
    xt, H, A, RH = state
    after = bool(reset_after)
    xt, H, A, RH = (asarray(s) for s in (xt, H, A, RH))
    g, W, U = asarray(g), asarray(W), asarray(U)
    T, B, n_in = xt.shape
    u = U.shape[0]
    G = 3 * u
    dt = xt.dtype
    dA = _base.empty((T, B, G), dt)  # before: dz, dr, then ds_h in the h columns
    dR = _base.empty((T, B, G) if after else (1, 1, 1), dt)
    dhd = zeros((B, u), dt)
    UT = transpose(U, (1, 0))
    grid = _base.blocks(B * u), _base.TPB
    for t in range(T - 1, -1, -1):
        _step_backward[grid](A, dA, dR, UT, H, RH, g, dhd, after, t, *acts, dt.type(0))
        if not after:
            _step_reset[grid](A, dA, UT, H, dhd, t, acts[1], dt.type(0))
    dA2 = _base.rows(dA, G)
    Hp = _base.rows(H[:T], u)
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
    dh0 = add(dhd, matmul(d0, U, trans_b=True)) if need_h0 else None
    return dx, dW, dU, db, dh0
