"""GRU kernels: a whole GRU over time in one compiled call, and its BPTT (Keras 3's cell).

Gates in Keras' order z, r, h~ along the ``3u`` axis; ``h_t = z h_{t-1} + (1 - z) h~``.
``reset_after=True`` (Keras 3's default, cuDNN's form): ``h~ = act(x_t W_h + b_h + r
(h_{t-1} U_h + b'_h))``, the bias two rows (input, recurrent). ``reset_after=False``:
``h~ = act(x_t W_h + b_h + (r h_{t-1}) U_h)``, one bias row.

The layout is ``recurrent.py``'s: time-major (``xt`` is ``x`` as ``(T, B, in)``), the input
projection of every step ONE GEMM before the loop (``A = X W``), the recurrent product
inside (reset after: one GEMM ``h_{t-1} U`` per step; reset before: ``h_{t-1} U_zr``, then
``(r h_{t-1}) U_h`` once the reset gate is known), and after the backward loop the weight
gradients as GEMMs over all steps (``dW = X^T dA``, ``dU = H_{t-1}^T dR``). A long loop
runs on one block of batch rows per thread (``threads.time_loop``). ``A`` keeps the
activations z, r, h~ for backward, ``RH`` the term the reset gate meets: ``h_{t-1} U_h +
b'_h`` (reset after) or ``r h_{t-1}`` (reset before).

Per step and batch row the cell runs in passes over the row's contiguous gate blocks,
sliced so that every index starts at 0, in a copy of the drivers compiled for the flag and
activations in use (``jit.specializing``), which LLVM vectorizes as in ``recurrent.py``
(the forward of batch 32, 50 steps, 128 units took 29 ms with per-unit indices such as
``a[n, 2 * u + j]``, 5 ms so). The candidate's and the backward's math are two scalar
functions of one unit shared with the CUDA twins (``_base.twin``), built on
``activation.py``'s ``act``/``act_grad`` (derivatives read from the outputs, as in
``recurrent.py``).
"""

import numpy as np

from ..blas import gemm, gemm_cols
from ..jit import kernel, specializing
from ..threads import time_loop
from .activation import act, act_grad
from .recurrent import _SIG, _TANH, _gates_row, _gemm, check_shapes, codes, zero_rows

__all__ = ["gru_forward", "gru_backward"]


@kernel(inline=True)
def candidate_forward(s, z, hp, code, zero):
    """``(h~, h_t)`` of one unit from its candidate pre-activation ``s`` (``x_t W_h + b_h``
    plus ``r (h_{t-1} U_h + b'_h)`` or ``(r h_{t-1}) U_h``), its z gate and ``hp = h_{t-1}``."""
    hh = act(code, s, zero)
    return hh, z * hp + (type(zero)(1) - z) * hh


@kernel(inline=True)
def unit_backward(z, hh, dh, hp, code, rcode, zero):
    """The chain rule through ``h_t = z h_{t-1} + (1 - z) h~`` for one unit: ``(dz, ds_h, dh
    z)``: the gradients of z's and h~'s pre-activations and of the direct path to
    ``h_{t-1}``, given ``dh = dL/dh_t``."""
    ds = dh * (type(zero)(1) - z) * act_grad(code, hh, hh, zero)
    dz = dh * (hp - hh) * act_grad(rcode, z, z, zero)
    return dz, ds, dh * z


@kernel(inline=True)
def _candidate_row(a, q, bi, bh, has_b, after, hp, rh, hn, yn, u, code, zero):
    # h~ and h_t over one row; a holds z, r (activated) and x_t W_h, q the candidate's
    # recurrent product (after: h_{t-1} U_h, rh <- q + b'_h; before: (r h_{t-1}) U_h). The
    # gate blocks are sliced so that every index starts at 0 (see recurrent.py's _gates_row)
    z, r, ah = a[:u], a[u:2 * u], a[2 * u:3 * u]
    bc = bi[2 * u:3 * u] if has_b else bi
    for j in range(u):
        s = ah[j] + (bc[j] if has_b else zero)
        if after:
            rj = q[j] + (bh[j] if has_b else zero)
            rh[j] = rj
            s += r[j] * rj
        else:
            s += q[j]
        hh, h = candidate_forward(s, z[j], hp[j], code, zero)
        ah[j] = hh
        hn[j] = h
        yn[j] = h


# the flag and activation codes each compiled copy of the drivers fixes (jit.specializing)
AFTER, CODE, RCODE = 1, _TANH, _SIG


@specializing("AFTER", "CODE", "RCODE", fastmath={"contract"})
def _forward_rows(U, Uh, bi, bh, has_b, H, A, RH, Q, Q2, y, M, Hm, zero, lo, hi):
    # the time loop on batch rows lo:hi (threads.time_loop); A holds X W (one GEMM before),
    # H[0] h_0. After: U is the whole (u, 3u) recurrent kernel and Q (B, 3u); before: U is
    # its z, r columns (u, 2u), Uh its h columns, Q (B, 2u), Q2 (B, u). Per row the z, r
    # gates in one vectorizable pass over their contiguous block, then (after) the
    # candidate and h_t, or (before) r h_{t-1}. With a recurrent-dropout mask M (Hm not
    # empty) the kernels read Hm[t] = h_{t-1} M; the direct path z h_{t-1} does not
    T = A.shape[0]
    u = H.shape[2]
    after, code, rcode = AFTER == 1, CODE, RCODE
    masked = Hm.shape[0] > 0
    for t in range(T):
        h = H[t]
        hm = Hm[t] if masked else h
        if masked:
            for n in range(lo, hi):
                hn, mn, out = h[n], M[n], hm[n]
                for j in range(u):
                    out[j] = hn[j] * mn[j]
        gemm_cols(hm[lo:hi], U, Q[lo:hi])
        for n in range(lo, hi):
            a = A[t, n]
            _gates_row(a, Q[n], bi, has_b, 0, 2 * u, rcode, zero)
            if after:
                _candidate_row(a, Q[n, 2 * u:], bi, bh, has_b, True, h[n], RH[t, n],
                               H[t + 1, n], y[n, t], u, code, zero)
            else:
                r, hp, rh = a[u:2 * u], hm[n], RH[t, n]
                for j in range(u):
                    rh[j] = r[j] * hp[j]
        if not after:
            gemm_cols(RH[t, lo:hi], Uh, Q2[lo:hi])  # (r h_{t-1}) U_h
            for n in range(lo, hi):
                _candidate_row(A[t, n], Q2[n], bi, bh, has_b, False, h[n], RH[t, n],
                               H[t + 1, n], y[n, t], u, code, zero)


@kernel(inline=True)
def _grad_row(a, gn, dhd, dhr, hp, rh, d, dr, dah, after, u, code, rcode, zero):
    # one row of dA_t (and, after, dR_t) from dh_t = g_t + dhd + dhr; dhd <- the direct
    # paths to h_{t-1}. Blocks sliced so that every index starts at 0 (see recurrent.py)
    z, r, hh = a[:u], a[u:2 * u], a[2 * u:3 * u]
    dz_, dr_, ds_ = d[:u], d[u:2 * u], d[2 * u:3 * u]
    rz, rr, rs = dr[:u], dr[u:2 * u], dr[2 * u:3 * u]
    for j in range(u):
        dh = gn[j] + dhd[j] + dhr[j]
        dz, ds, dhd[j] = unit_backward(z[j], hh[j], dh, hp[j], code, rcode, zero)
        dz_[j] = dz
        if after:
            rj = r[j]
            drj = ds * rh[j] * act_grad(rcode, rj, rj, zero)
            dr_[j] = drj
            ds_[j] = ds
            rz[j] = dz
            rr[j] = drj
            rs[j] = ds * rj
        else:
            dah[j] = ds


@specializing("AFTER", "CODE", "RCODE", fastmath={"contract"})
def _backward_rows(g, UT, UhT, H, A, RH, M, Hm, zero, need_h0, dA, dR, dAH, dhd, dhr, drh,
                   dm, lo, hi):
    # reverse over time on batch rows lo:hi. After: dA_t = (dz, dr, ds_h) and
    # dR_t = (dz, dr, ds_h r), one GEMM dR_t U^T per step. Before: dA holds (dz, dr) and dAH
    # ds_h: dAH_t U_h^T gives d(r h), then dr, then dA_t U_zr^T. dh_t = g_t + dhd (the
    # direct paths) + dhr (the GEMM's). With a mask the kernels read h_{t-1} m: their paths'
    # sum p reaches h_{t-1} as p m and the mask as dm += h_{t-1} p (when dm is sized). UT and
    # UhT are the kernels' transposes, contiguous (a step's product ran 1.5x faster from a
    # copy than through a transposed view)
    T = A.shape[0]
    u = H.shape[2]
    after, code, rcode = AFTER == 1, CODE, RCODE
    masked, need_dm = Hm.shape[0] > 0, dm.shape[0] > 0
    zero_rows(dhd, dhr, dm, lo, hi, zero)
    for t in range(T - 1, -1, -1):
        hp = H[t]
        hm = Hm[t] if masked else hp
        d = dA[t]
        for n in range(lo, hi):
            # before, dR and dAH hold no steps: the rows not written stand in (same types)
            _grad_row(A[t, n], g[n, t], dhd[n], dhr[n], hp[n], RH[t, n], d[n],
                      dR[t, n] if after else d[n], d[n] if after else dAH[t, n], after, u,
                      code, rcode, zero)
        if not after:
            gemm_cols(dAH[t, lo:hi], UhT, drh[lo:hi])  # d(r h_{t-1})
            for n in range(lo, hi):
                r, dr, dhn, drn, hpn = A[t, n, u:2 * u], d[n, u:], dhd[n], drh[n], hm[n]
                for j in range(u):
                    rj = r[j]
                    dr[j] = drn[j] * hpn[j] * act_grad(rcode, rj, rj, zero)
                    if masked:
                        drn[j] *= rj  # joins the masked paths below
                    else:
                        dhn[j] += drn[j] * rj
        if t > 0 or need_h0 or need_dm:
            gemm_cols((dR[t] if after else d)[lo:hi], UT, dhr[lo:hi])
            if masked:
                for n in range(lo, hi):
                    pn, mn, hn, dmn, rn = dhr[n], M[n], hp[n], dm[n], drh[n]
                    for j in range(u):
                        p = pn[j] + (zero if after else rn[j])
                        if need_dm:
                            dmn[j] += hn[j] * p
                        pn[j] = p * mn[j]


@kernel
def _weight_grads(xt, W, Hs, RH, dA, dR, dAH, after, need_dx, dW, dU, dxt):
    # after the time loop, outside its one-BLAS-thread setting: dU, dW and dx as one GEMM
    # each over all T B rows (blas.gemm, the loop's library: see recurrent._gemm),
    # and the bias sums. Hs: the states h_{t-1} the recurrent kernel read (masked or not)
    T, B, n_in = xt.shape
    u = Hs.shape[2]
    G = 3 * u
    if after:
        dA2 = dA.reshape(T * B, G)
        gemm(Hs.reshape(T * B, u).T, dR.reshape(T * B, G), dU)
    else:
        dA2 = np.concatenate((dA, dAH), axis=2).reshape(T * B, G)
        gemm(Hs.reshape(T * B, u).T, dA.reshape(T * B, 2 * u), dU[:, :2 * u])
        gemm(RH.reshape(T * B, u).T, dAH.reshape(T * B, u), dU[:, 2 * u:])
    gemm(xt.reshape(T * B, n_in).T, dA2, dW)
    if need_dx:
        gemm(dA2, W.T, dxt.reshape(T * B, n_in))
    db = np.zeros((2, G), dA.dtype)  # row 0: the input bias; row 1: the recurrent one
    for k in range(T * B):
        for m in range(G):
            db[0, m] += dA2[k, m]
    if after:
        dR2 = dR.reshape(T * B, G)
        for k in range(T * B):
            for m in range(G):
                db[1, m] += dR2[k, m]
    return db


def _driver(family, after: bool, acts: tuple[int, int]):
    """The copy of a driver compiled for this form of the reset gate and these activations."""
    return family.of(AFTER=int(after), CODE=acts[0], RCODE=acts[1])


def _split(U: np.ndarray, after: bool) -> tuple[np.ndarray, np.ndarray]:
    # the recurrent kernel as the per-step GEMMs read it (contiguous blocks)
    u = U.shape[0]
    if after:
        return np.ascontiguousarray(U), U[:0, :0]
    return np.ascontiguousarray(U[:, :2 * u]), np.ascontiguousarray(U[:, 2 * u:])


def gru_forward(x: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray | None = None,
                h0: np.ndarray | None = None, activation: str = "tanh",
                recurrent_activation: str = "sigmoid", reset_after: bool = True,
                mask: np.ndarray | None = None) -> tuple:
    """``(y, state)``: all hidden states ``y (B, T, u)`` of Keras 3's GRU (gates z, r, h;
    ``b`` is ``(2, 3u)`` with ``reset_after``, else ``(3u,)``) and what backward reads; with
    ``mask (B, u)`` the recurrent kernel reads ``h_{t-1} mask`` (recurrent dropout)."""
    acts = codes(activation, recurrent_activation)
    B, T, n_in, u = check_shapes(x, W, U, 3, (h0,), mask)
    after = bool(reset_after)
    if b is not None and tuple(b.shape) != ((2, 3 * u) if after else (3 * u,)):
        raise ValueError(f"a GRU bias of shape {tuple(b.shape)} does not fit {u} units with "
                         f"reset_after={after}")
    dt = x.dtype
    W = np.ascontiguousarray(W)
    Uq, Uh = _split(U, after)
    xt = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    H = np.empty((T + 1, B, u), dt)
    H[0] = 0 if h0 is None else h0
    A = np.empty((T, B, 3 * u), dt)
    RH = np.empty((T, B, u), dt)
    y = np.empty((B, T, u), dt)
    if b is None:
        bi = bh = W[0, :0]
    else:  # the z, r gates add both rows (they sum before the activation)
        bb = np.reshape(b, (-1, 3 * u))
        bi = np.array(bb[0], copy=True)  # not the caller's array: += below
        if after:
            bi[:2 * u] += bb[1, :2 * u]
        bh = np.ascontiguousarray(bb[-1, 2 * u:])
    # recurrent dropout: the mask and the masked states h_{t-1} m the kernels read (for dU)
    M = np.ascontiguousarray(mask, dtype=dt) if mask is not None else H[0, :0]
    Hm = np.empty((T, B, u), dt) if mask is not None else H[:0]
    _gemm(xt.reshape(T * B, n_in), W, A.reshape(T * B, 3 * u))  # before the loop
    time_loop(_driver(_forward_rows, after, acts),
              (Uq, Uh, bi, bh, b is not None, H, A, RH, np.empty((B, Uq.shape[1]), dt),
               np.empty((B, u), dt), y, M, Hm, dt.type(0)), B, T, (u, Uq.shape[1]))
    return y, (xt, H, A, RH, None if mask is None else (M, Hm))


def gru_backward(g: np.ndarray, state: tuple, W: np.ndarray, U: np.ndarray,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 reset_after: bool = True, bias: bool = True, need_dx: bool = True,
                 need_h0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dmask)`` of ``gru_forward`` given ``g = dL/dy``; ``db`` has
    the bias's shape; ``dx``, ``db``, ``dh0`` and ``dmask`` are None when not asked for (or
    without a mask)."""
    acts = codes(activation, recurrent_activation)
    xt, H, A, RH, masked = state
    after = bool(reset_after)
    W = np.ascontiguousarray(W)
    Uq, Uh = _split(U, after)
    T, B, n_in = xt.shape
    u = H.shape[2]
    dt = xt.dtype
    dA = np.empty((T, B, 3 * u if after else 2 * u), dt)
    dR = np.empty(A.shape if after else (0, B, 3 * u), dt)
    dAH = np.empty((0, B, u) if after else (T, B, u), dt)
    dhd, dhr, drh = (np.empty((B, u), dt) for _ in range(3))
    dW, dU = np.empty(W.shape, dt), np.empty((u, 3 * u), dt)
    dxt = np.empty(xt.shape, dt) if need_dx else xt[:0]
    M, Hm = masked if masked is not None else (H[0, :0], H[:0])  # (M empty: no mask)
    dm = np.empty((B, u) if need_mask and masked is not None else (0, u), dt)
    time_loop(_driver(_backward_rows, after, acts),
              (np.ascontiguousarray(g), np.ascontiguousarray(Uq.T),
               np.ascontiguousarray(Uh.T), H, A, RH, M, Hm, dt.type(0), need_h0, dA, dR, dAH,
               dhd, dhr, drh, dm), B, T, (Uq.shape[1], u))
    db = _weight_grads(xt, W, H[:T] if masked is None else Hm, RH, dA, dR, dAH, after,
                       need_dx, dW, dU, dxt)
    dx = np.ascontiguousarray(np.swapaxes(dxt, 0, 1)) if need_dx else None
    if bias:
        db = db if after else np.ascontiguousarray(db[0])
    return (dx, dW, dU, db if bias else None, dhd + dhr if need_h0 else None,
            dm if dm.shape[0] else None)
