"""Recurrent kernels: a whole SimpleRNN or LSTM over time in one compiled call, and its BPTT.

One driver serves both cells. Inside, everything is time-major (``xt`` is ``x`` as
``(T, B, in)``), so that each step's state ``h_{t-1}`` is a contiguous ``(B, units)`` block
BLAS can read. Forward: the input projection of every step is ONE GEMM (``(T B, in) @ W``),
then per step one GEMM ``R = h_{t-1} U`` and, per batch row, passes over contiguous blocks
that add ``R`` and the bias and apply the gates (``_gates_row``), then the cell update.
Backward through time runs the steps in reverse: one pass per row forms the step's
pre-activation gradients ``dZ_t`` and one GEMM carries ``dh_{t-1} = dZ_t U^T`` back; after
the loop ``dW = X^T dZ``, ``dU = H_{t-1}^T dZ`` and ``dx = dZ W^T`` are one GEMM each over
all steps, and ``db`` is the column sum of ``dZ``. Those GEMMs before and after the loop run
on all of BLAS's threads. A long loop runs on one block of batch rows per thread, each
with its own small GEMMs (``threads.time_loop``); a short one on the calling thread, its
GEMMs on BLAS's threads while no other task wants a core and on one otherwise
(``threads.loop_blas_threads``). Each driver is compiled once per cell and pair of
activations (``jit.specializing``).

The passes are pure arithmetic over unit-stride blocks, so that with ``activation.py``'s
vectorizable float32 exp and tanh LLVM runs them 16 lanes wide (Numba here has no SVML;
a per-element libm call kept every loop scalar: the LSTM of the music demo's shape ran its
forward 1.7x and its backward 1.45x slower, measured side by side). ``unit_forward`` and
``unit_backward`` hold the same cell math as scalar functions of one unit, the form the
CUDA twins (``_base.twin``) run one thread per unit with; tests/cuda/test_recurrent.py
checks both backends agree. Derivatives are read from the outputs: the
activations allowed here (linear, relu, sigmoid, tanh) are either functions of their output
or, for relu, a sign test where the output has the input's sign, so the kept activations
stand in for the pre-activations.
"""

import numpy as np

from ..blas import gemm, gemm_cols
from ..jit import kernel, specializing
from ..threads import time_loop
from .activation import act, act_grad, code_of

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward"]

SIMPLE, LSTM = 0, 1  # the cells the driver knows
GATES = (1, 4)  # pre-activations per unit: SimpleRNN z; LSTM i, f, c~, o (Keras' order)
# activations whose derivative can be read from the output (see the module docstring)
ALLOWED = ("linear", "relu", "sigmoid", "tanh")
_SIG, _TANH = code_of("sigmoid"), code_of("tanh")
# the cell and activation codes each compiled copy of the drivers fixes (jit.specializing):
# a loop that branches on a run-time code inside stays scalar
CELL, CODE, RCODE = LSTM, _TANH, _SIG


@kernel(inline=True)
def unit_forward(cell, a, r, b, has_b, c_prev, n, j, code, rcode, zero):
    """One unit's step: ``a[n]`` holds its ``x_t W`` row; adds ``r = h_{t-1} U`` and the
    bias, writes the activations back into ``a`` and returns ``(h_t, c_t)``."""
    if cell == SIMPLE:  # h = act(z)
        z = a[n, j] + r[n, j]
        if has_b:
            z += b[j]
        h = act(code, z, zero)
        a[n, j] = h
        return h, zero
    u = a.shape[1] // 4
    zi = a[n, j] + r[n, j]
    zf = a[n, u + j] + r[n, u + j]
    zc = a[n, 2 * u + j] + r[n, 2 * u + j]
    zo = a[n, 3 * u + j] + r[n, 3 * u + j]
    if has_b:
        zi += b[j]
        zf += b[u + j]
        zc += b[2 * u + j]
        zo += b[3 * u + j]
    i = act(rcode, zi, zero)
    f = act(rcode, zf, zero)
    cc = act(code, zc, zero)
    o = act(rcode, zo, zero)
    a[n, j] = i
    a[n, u + j] = f
    a[n, 2 * u + j] = cc
    a[n, 3 * u + j] = o
    c = f * c_prev + i * cc  # c_t = f c_{t-1} + i c~
    return o * act(code, c, zero), c  # h_t = o act(c_t)


@kernel(inline=True)
def unit_backward(cell, a, dz, c_prev, c, dh, dc, n, j, code, rcode, zero):
    """The chain rule through one unit's step: writes its row of ``dZ_t`` from ``dh_t`` and
    ``dc_t`` (the upstream gradients of its outputs) and returns ``dc_{t-1}``."""
    if cell == SIMPLE:  # dz = dh act'(z)
        h = a[n, j]
        dz[n, j] = dh * act_grad(code, h, h, zero)
        return zero
    u = a.shape[1] // 4
    i = a[n, j]
    f = a[n, u + j]
    cc = a[n, 2 * u + j]
    o = a[n, 3 * u + j]
    tc = act(code, c, zero)
    dc = dc + dh * o * act_grad(code, c, tc, zero)  # h = o act(c): both paths into c
    dz[n, j] = dc * cc * act_grad(rcode, i, i, zero)            # d/di of i c~
    dz[n, u + j] = dc * c_prev * act_grad(rcode, f, f, zero)    # d/df of f c_{t-1}
    dz[n, 2 * u + j] = dc * i * act_grad(code, cc, cc, zero)    # d/dc~
    dz[n, 3 * u + j] = dh * tc * act_grad(rcode, o, o, zero)    # d/do of o act(c)
    return dc * f


@kernel(inline=True)
def _gates_row(a, r, b, has_b, lo, hi, code, zero):
    # a[lo:hi] <- act(a + r + b) over one row's contiguous block of gates: a loop of pure
    # arithmetic (the float32 exp/tanh are vectorizable), so LLVM runs it 8-16 lanes wide.
    # The blocks are sliced and indexed from 0: Numba wraps a negative index, and an index
    # such as lo + k that LLVM cannot prove >= 0 keeps that test in the loop, which then
    # stays scalar (the gates at offsets 2u and 3u ran 4-7x slower than the block at 0)
    x, rr = a[lo:hi], r[lo:hi]
    bb = b[lo:hi] if has_b else b
    for k in range(x.size):
        x[k] = act(code, x[k] + rr[k] + (bb[k] if has_b else zero), zero)


@kernel(inline=True)
def _cell_row(a, cp, cn, h, yn, u, code, zero):
    # c_t = f c_{t-1} + i c~ and h_t = o act(c_t) over one row (gates i f c~ o in a,
    # sliced so every index starts at 0: see _gates_row)
    i, f, cc, o = a[:u], a[u:2 * u], a[2 * u:3 * u], a[3 * u:4 * u]
    for j in range(u):
        c = f[j] * cp[j] + i[j] * cc[j]
        hj = o[j] * act(code, c, zero)
        cn[j] = c
        h[j] = hj
        yn[j] = hj


# fastmath "contract" only: multiply-adds fuse into FMAs (the exp and tanh polynomials
# halve); no assumption about NaN or infinities. Each driver runs the time loop on a block
# of batch rows ``lo:hi``: an RNN's rows never meet, so a long loop runs one block per
# thread at once with no synchronisation between steps (``threads.time_loop``), each
# block's step GEMMs in column blocks on OpenBLAS's small-matrix kernels (blas.gemm_cols)
# on its own thread. On the lstm workload's shapes the forward's step products took 79 us
# a step on two such threads against 146 as one GEMM on two BLAS threads, the backward's
# 92 against 110; the gate passes halve too (docs/architecture.md, thirteenth round).
@specializing("CELL", "CODE", "RCODE", fastmath={"contract"})
def _forward_rows(U, b, has_b, H, C, A, R, y, M, Hm, zero, lo, hi):
    # the time loop on batch rows lo:hi. A holds X W for every step (one GEMM before);
    # H[0], C[0] the initial state. Per step one GEMM R = h_{t-1} U, then per batch row the
    # gates in vectorizable passes over contiguous blocks (i f | c~ | o for the LSTM) and
    # the cell update in one more pass. With a recurrent-dropout mask M (Hm not empty) U
    # reads Hm[t] = h_{t-1} M instead.
    T = A.shape[0]
    u = U.shape[0]
    lstm, code, rcode = CELL == LSTM, CODE, RCODE
    cell_out = y.shape[2] > u  # y is [h | c] side by side
    masked = Hm.shape[0] > 0
    for t in range(T):
        if masked:
            for n in range(lo, hi):
                hn, mn, out = H[t, n], M[n], Hm[t, n]
                for j in range(u):
                    out[j] = hn[j] * mn[j]
            gemm_cols(Hm[t, lo:hi], U, R[lo:hi])  # (h_{t-1} m) U
        else:
            gemm_cols(H[t, lo:hi], U, R[lo:hi])  # h_{t-1} U
        for n in range(lo, hi):
            a = A[t, n]
            r = R[n]
            h = H[t + 1, n]
            yn = y[n, t]
            if not lstm:  # h = act(z); A[t] is H[t + 1]
                _gates_row(a, r, b, has_b, 0, u, code, zero)
                for j in range(u):
                    yn[j] = a[j]
                continue
            _gates_row(a, r, b, has_b, 0, 2 * u, rcode, zero)
            _gates_row(a, r, b, has_b, 2 * u, 3 * u, code, zero)
            _gates_row(a, r, b, has_b, 3 * u, 4 * u, rcode, zero)
            cp = C[t, n]
            cn = C[t + 1, n]
            _cell_row(a, cp, cn, h, yn, u, code, zero)
            if cell_out:
                yc = yn[u:]
                for j in range(u):
                    yc[j] = cn[j]


@kernel(inline=True)
def _lstm_grad_row(a, d, gn, dhn, dcn, cp, cn, u, cell_out, code, rcode, zero):
    # one row of dZ_t from dh_t = g_t + dh and the carried dc (updated to dc_{t-1}); the
    # gate blocks sliced so that every index starts at 0 (see _gates_row)
    ai, af, ac, ao = a[:u], a[u:2 * u], a[2 * u:3 * u], a[3 * u:4 * u]
    di, df, dcc, do = d[:u], d[u:2 * u], d[2 * u:3 * u], d[3 * u:4 * u]
    gc = gn[u:] if cell_out else gn
    for j in range(u):
        i, f, cc, o = ai[j], af[j], ac[j], ao[j]
        dht = gn[j] + dhn[j]
        c = cn[j]
        tc = act(code, c, zero)
        dct = dcn[j] + dht * o * act_grad(code, c, tc, zero)  # both paths into c
        if cell_out:
            dct += gc[j]
        di[j] = dct * cc * act_grad(rcode, i, i, zero)        # d/di of i c~
        df[j] = dct * cp[j] * act_grad(rcode, f, f, zero)     # d/df of f c_{t-1}
        dcc[j] = dct * i * act_grad(code, cc, cc, zero)       # d/dc~
        do[j] = dht * tc * act_grad(rcode, o, o, zero)        # d/do of o act(c)
        dcn[j] = dct * f


@kernel(inline=True)
def zero_rows(a, b, c, lo, hi, zero):
    """Rows lo:hi of the carried gradients a and b, and of c where it has rows, set to 0
    (each block of a split backward clears its own rows)."""
    for n in range(lo, hi):
        for j in range(a.shape[1]):
            a[n, j] = zero
            b[n, j] = zero
    for n in range(lo, min(hi, c.shape[0])):
        for j in range(c.shape[1]):
            c[n, j] = zero


@specializing("CELL", "CODE", "RCODE", fastmath={"contract"})
def _backward_rows(g, UT, H, C, A, M, zero, need_h0, dZ, dh, dc, dm, lo, hi):
    # reverse over time on batch rows lo:hi: dZ_t from (g_t + dZ_{t+1} U^T) and the carried
    # dc; dh and dc end as dh0 and dc0. The step's pass runs over one batch row's contiguous
    # blocks, vectorizable like the forward's. With a mask, U read h_{t-1} m: the product's
    # gradient p = dZ_t U^T reaches h_{t-1} as p m (M not empty) and the mask as
    # dm += h_{t-1} p (when dm is sized). UT is U^T, contiguous: the step's product read U^T
    # as a transposed view ran (32, 1024) x (1024, 256) in 167 us on two BLAS threads, from
    # a copy in 111.
    T = A.shape[0]
    u = UT.shape[1]
    lstm, code, rcode = CELL == LSTM, CODE, RCODE
    cell_out = g.shape[2] > u
    masked, need_dm = M.shape[0] > 0, dm.shape[0] > 0
    zero_rows(dh, dc, dm, lo, hi, zero)
    for t in range(T - 1, -1, -1):
        for n in range(lo, hi):
            a = A[t, n]
            d = dZ[t, n]
            gn = g[n, t]
            dhn = dh[n]
            if not lstm:  # dz = dh act'(z), read from h
                for j in range(u):
                    hj = a[j]
                    d[j] = (gn[j] + dhn[j]) * act_grad(code, hj, hj, zero)
                continue
            dcn = dc[n]
            cp = C[t, n]
            cn = C[t + 1, n]
            _lstm_grad_row(a, d, gn, dhn, dcn, cp, cn, u, cell_out, code, rcode, zero)
        if t > 0 or need_h0 or need_dm:
            gemm_cols(dZ[t, lo:hi], UT, dh[lo:hi])  # dh_{t-1} = dZ_t U^T
            if masked:
                for n in range(lo, hi):
                    pn, mn = dh[n], M[n]
                    if need_dm:
                        hn, dmn = H[t, n], dm[n]
                        for j in range(u):
                            dmn[j] += hn[j] * pn[j]
                    for j in range(u):
                        pn[j] *= mn[j]


def codes(activation: str, recurrent_activation: str = "sigmoid") -> tuple[int, int]:
    for a in (activation, recurrent_activation):
        if a not in ALLOWED:
            raise ValueError(f"recurrent kernels support the activations {list(ALLOWED)}, "
                             f"got {a!r}")
    return code_of(activation), code_of(recurrent_activation)


def check_shapes(x, W, U, gates: int, states: tuple, mask=None) -> tuple[int, int, int, int]:
    if x.ndim != 3:
        raise ValueError(f"x must be (batch, timesteps, features), got shape {x.shape}")
    B, T, n_in = x.shape
    u = U.shape[0]
    if W.shape != (n_in, gates * u) or U.shape != (u, gates * u):
        raise ValueError(f"kernel {W.shape} and recurrent_kernel {U.shape} do not fit x "
                         f"{x.shape}: expected ({n_in}, {gates * u}) and ({u}, {gates * u})")
    for s in states:
        if s is not None and tuple(s.shape) != (B, u):
            raise ValueError(f"an initial state of shape {tuple(s.shape)} does not fit a batch "
                             f"of {B} and {u} units")
    if mask is not None and tuple(mask.shape) != (B, u):
        raise ValueError(f"a recurrent mask of shape {tuple(mask.shape)} does not fit a batch "
                         f"of {B} and {u} units")
    return B, T, n_in, u


@kernel
def _gemm(a, b, out):
    # out = a b through blas.gemm, the library of the time loop's GEMMs and NumPy's own: two
    # libraries keep two pools whose idle workers spin for a while after a threaded GEMM,
    # and a GEMM split over two threads beside the other pool's spinning worker waited for
    # it (the lstm workload's backward 50 -> 70-145 ms when these went through another)
    gemm(a, b, out)


def _driver(family, cell: int, acts: tuple[int, int]):
    """The copy of a driver compiled for this cell and these activations."""
    code, rcode = acts
    if cell == SIMPLE:
        rcode = 0  # unused: one copy per activation
    return family.of(CELL=cell, CODE=code, RCODE=rcode)


def _run_forward(cell: int, x, W, U, b, h0, c0, acts: tuple[int, int], cell_out: bool,
                 mask=None):
    gates = GATES[cell]
    B, T, n_in, u = check_shapes(x, W, U, gates, (h0, c0), mask)
    W, U = np.ascontiguousarray(W), np.ascontiguousarray(U)  # one layout: one compilation
    dt = x.dtype
    xt = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    H = np.empty((T + 1, B, u), dt)
    H[0] = 0 if h0 is None else h0
    if cell == LSTM:
        C = np.empty((T + 1, B, u), dt)
        C[0] = 0 if c0 is None else c0
        A = np.empty((T, B, gates * u), dt)
    else:  # SimpleRNN: the activations are the states, so A is H[1:]
        C, A = H[:0], H[1:]
    y = np.empty((B, T, 2 * u if cell_out else u), dt)
    bb = W[0, :0] if b is None else np.ascontiguousarray(b)  # empty: no bias
    # recurrent dropout: the mask and the masked states h_{t-1} m that U reads (kept for dU)
    M = np.ascontiguousarray(mask, dtype=dt) if mask is not None else H[0, :0]
    Hm = np.empty((T, B, u), dt) if mask is not None else H[:0]
    _gemm(xt.reshape(T * B, n_in), W, A.reshape(T * B, gates * u))  # before the loop, on
    time_loop(_driver(_forward_rows, cell, acts),  # and on all of its threads
              (U, bb, b is not None, H, C, A, np.empty((B, gates * u), dt), y, M, Hm,
               dt.type(0)), B, T, (u, gates * u))
    return y, (xt, H, C if cell == LSTM else None, A, None if mask is None else (M, Hm))


def _run_backward(cell: int, g, state, W, U, acts, bias: bool, need_dx: bool, need_h0: bool,
                  need_mask: bool = False):
    xt, H, C, A, masked = state
    W, U = np.ascontiguousarray(W), np.ascontiguousarray(U)
    T, B, n_in = xt.shape
    u = U.shape[0]
    dt = xt.dtype
    M, Hm = masked if masked is not None else (H[0, :0], H[:T])  # U read Hm = h_{t-1} m
    # (M empty: no mask)
    dZ = np.empty(A.shape, dt)
    dh, dc = np.empty((B, u), dt), np.empty((B, u), dt)
    dm = np.empty((B, u) if need_mask and masked is not None else (0, u), dt)
    time_loop(_driver(_backward_rows, cell, acts),
              (np.ascontiguousarray(g), np.ascontiguousarray(U.T), H, H[:0] if C is None else C,
               A, M, dt.type(0), need_h0, dZ, dh, dc, dm), B, T, (A.shape[2], u))
    # the weight gradients: one GEMM each over all T B rows, after the loop and on all of
    # BLAS's threads (inside the loop's single-thread setting they took twice as long)
    dZ2 = dZ.reshape(T * B, A.shape[2])
    dU, dW = np.empty(U.shape, dt), np.empty(W.shape, dt)
    _gemm(Hm.reshape(T * B, u).T, dZ2, dU)
    _gemm(xt.reshape(T * B, n_in).T, dZ2, dW)
    dx = None
    if need_dx:
        dxt = np.empty(xt.shape, dt)
        _gemm(dZ2, W.T, dxt.reshape(T * B, n_in))
        dx = np.ascontiguousarray(np.swapaxes(dxt, 0, 1))
    db = dZ2.sum(0) if bias else None
    return dx, dW, dU, db, dh if need_h0 else None, dc, dm if dm.shape[0] else None


def rnn_forward(x: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray | None = None,
                h0: np.ndarray | None = None, activation: str = "tanh",
                mask: np.ndarray | None = None) -> tuple:
    """``(y, state)``: all hidden states ``y (B, T, u)`` of ``h_t = act(x_t W + h_{t-1} U + b)``
    and what the backward pass reads (time-major inputs, states and activations); with
    ``mask (B, u)`` U reads ``h_{t-1} mask`` (recurrent dropout, one mask for all steps)."""
    return _run_forward(SIMPLE, x, W, U, b, h0, None, codes(activation), False, mask)


def rnn_backward(g: np.ndarray, state: tuple, W: np.ndarray, U: np.ndarray,
                 activation: str = "tanh", bias: bool = True, need_dx: bool = True,
                 need_h0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dmask)`` of ``rnn_forward`` given ``g = dL/dy``; ``dx``,
    ``db``, ``dh0`` and ``dmask`` are None when not asked for (or without a mask)."""
    dx, dW, dU, db, dh0, _, dm = _run_backward(SIMPLE, g, state, W, U, codes(activation),
                                               bias, need_dx, need_h0, need_mask)
    return dx, dW, dU, db, dh0, dm


def lstm_forward(x: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray | None = None,
                 h0: np.ndarray | None = None, c0: np.ndarray | None = None,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 return_cell: bool = False, mask: np.ndarray | None = None) -> tuple:
    """``(y, state)``: the LSTM's hidden states ``y (B, T, u)``, or ``[h | c]`` side by side
    ``(B, T, 2u)`` with ``return_cell``; Keras' layouts and gate order i, f, c, o; with
    ``mask (B, u)`` every gate's U reads ``h_{t-1} mask`` (recurrent dropout)."""
    return _run_forward(LSTM, x, W, U, b, h0, c0, codes(activation, recurrent_activation),
                        return_cell, mask)


def lstm_backward(g: np.ndarray, state: tuple, W: np.ndarray, U: np.ndarray,
                  activation: str = "tanh", recurrent_activation: str = "sigmoid",
                  bias: bool = True, need_dx: bool = True, need_h0: bool = False,
                  need_c0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dc0, dmask)`` of ``lstm_forward`` given ``g = dL/dy``
    (``(B, T, 2u)`` when the forward returned the cells); unrequested gradients are None."""
    dx, dW, dU, db, dh0, dc0, dm = _run_backward(LSTM, g, state, W, U,
                                                 codes(activation, recurrent_activation),
                                                 bias, need_dx, need_h0, need_mask)
    return dx, dW, dU, db, dh0, dc0 if need_c0 else None, dm
