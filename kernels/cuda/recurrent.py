"""Recurrent kernels on the GPU: the CPU family's driver as a host loop over time steps.

Forward: the input projection of every step is one tiled GEMM (``(T B, in) @ W``); then ONE
launch per step, a thread per (batch row, unit), that forms its entries of ``h_{t-1} U``,
adds the bias and runs the cell. Backward through time: one launch per step that forms
``dh_t = g_t + dZ_{t+1} U^T`` and ``dZ_t`` (carrying ``dc``); then ``dW``, ``dU`` and ``dx``
as single GEMMs over all steps and ``db`` as one column sum. A step is latency-bound (a
GEMM launch and its host-side set-up cost more than the small product), so fusing the
recurrent product into the cell halves the launches and drops the per-step allocations. The
cell math is the CPU kernels' own ``unit_forward`` / ``unit_backward``, compiled for the
device (``_base.twin``), and the state layout (time-major) is the CPU's.
"""

from __future__ import annotations

from numba import cuda

from ..cpu import recurrent as _cpu
from . import _base
from .activation import act, act_grad
from .matmul import matmul
from .shape import transpose

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward"]

LSTM = _cpu.LSTM
unit_forward = _base.twin(_cpu.unit_forward, act=act)
unit_backward = _base.twin(_cpu.unit_backward, act=act, act_grad=act_grad)


@cuda.jit
def _fill_state(dst, src, has_src, zero):
    # the initial state: a copy of h0 (or c0), or zeros
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[i] = src[i] if has_src else zero


@cuda.jit
def _step_forward(cell, A, R, U, H, b, has_b, C, y, t, M, masked, code, rcode, zero):
    # one thread per (row n, unit j): its G entries of R = h_{t-1} U (a dot product each;
    # consecutive threads read consecutive columns of U; with recurrent dropout U reads
    # h_{t-1} M), then the cell on a = x_t W, R, b
    # (step t's views are taken here: a device-array slice on the host costs more than the step)
    a = A[t]
    u = H.shape[2]
    G = U.shape[1]
    for k in range(cuda.grid(1), H.shape[1] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        for m in range(j, G, u):
            s = zero
            for q in range(u):
                hq = H[t, n, q]
                if masked:
                    hq *= M[n, q]
                s += hq * U[q, m]
            R[n, m] = s
        cp = C[t, n, j] if cell == LSTM else zero
        h, c = unit_forward(cell, a, R, b, has_b, cp, n, j, code, rcode, zero)
        H[t + 1, n, j] = h
        y[n, t, j] = h
        if cell == LSTM:
            C[t + 1, n, j] = c
        if y.shape[2] > u:  # y is [h | c]
            y[n, t, u + j] = c


@cuda.jit
def _step_backward(cell, A, dZ, UT, g, dc, C, t, M, masked, code, rcode, zero):
    # one thread per (row n, unit j): dh_t = g_t + (dZ_{t+1} U^T)[n, j] (a dot product with
    # row n of the next step's dZ; UT = U^T so that consecutive threads read consecutive
    # memory; times M[n, j] where U read h_t M), then the cell's chain rule writes dZ_t's
    # entries and carries dc
    a, d, d_next = A[t], dZ[t], dZ[min(t + 1, dZ.shape[0] - 1)]
    u = dc.shape[1]
    for k in range(cuda.grid(1), dc.shape[0] * u, cuda.gridsize(1)):
        n, j = k // u, k % u
        dht = g[n, t, j]
        if t + 1 < g.shape[1]:
            p = zero
            for m in range(UT.shape[0]):
                p += d_next[n, m] * UT[m, j]
            dht += p * M[n, j] if masked else p
        dct = dc[n, j]
        if g.shape[2] > u:
            dct += g[n, t, u + j]
        if cell == LSTM:
            dc[n, j] = unit_backward(cell, a, d, C[t, n, j], C[t + 1, n, j], dht, dct, n, j,
                                     code, rcode, zero)
        else:
            unit_backward(cell, a, d, zero, zero, dht, dct, n, j, code, rcode, zero)


def _state(dst, src) -> None:
    from . import asarray

    s = _base.flat(asarray(src)) if src is not None else _base.flat(dst)
    _fill_state[_base.blocks(dst.size), _base.TPB](_base.flat(dst), s, src is not None,
                                                   dst.dtype.type(0))


def _run_forward(cell: int, x, W, U, b, h0, c0, acts: tuple[int, int], cell_out: bool,
                 mask=None):
    from . import asarray
    from .elementwise import mul

    x, W, U = asarray(x), asarray(W), asarray(U)
    gates = _cpu.GATES[cell]
    B, T, n_in, u = _cpu.check_shapes(x, W, U, gates, (h0, c0), mask)
    dt = x.dtype
    xt = transpose(x, (1, 0, 2))
    A = matmul(_base.rows(xt, n_in), W).reshape((T, B, gates * u))  # x_t W, every step
    H = _base.empty((T + 1, B, u), dt)
    _state(H[0], h0)
    C = None
    if cell == LSTM:
        C = _base.empty((T + 1, B, u), dt)
        _state(C[0], c0)
    y = _base.empty((B, T, 2 * u if cell_out else u), dt)
    bb = asarray(b) if b is not None else _base.flat(A)  # a stand-in for no bias (unread)
    R = _base.empty((B, gates * u), dt)  # h_{t-1} U, one step at a time
    M = asarray(mask) if mask is not None else H[0]  # (a stand-in without a mask: unread)
    step = _step_forward[_base.blocks(B * u), _base.TPB]
    for t in range(T):  # one launch per step: the recurrent product is fused into the cell
        step(cell, A, R, U, H, bb, b is not None, H if C is None else C, y, t, M,
             mask is not None, *acts, dt.type(0))
    # as the CPU's state: the mask and the masked states h_{t-1} m that U read (for dU)
    return y, (xt, H, C, A, None if mask is None else (M, mul(H[:T], M)))


def _run_backward(cell: int, g, state, W, U, acts, bias: bool, need_dx: bool, need_h0: bool,
                  need_mask: bool = False):
    from . import asarray, zeros
    from .elementwise import mul
    from .reduce import sum as rsum

    xt, H, C, A = (None if s is None else asarray(s) for s in state[:4])
    M, Hm = (asarray(v) for v in state[4]) if state[4] is not None else (H[0], H[:-1])
    masked = state[4] is not None
    g, W, U = asarray(g), asarray(W), asarray(U)
    T, B, n_in = xt.shape
    u = U.shape[0]
    G = A.shape[2]
    dt = xt.dtype
    dZ = _base.empty(A.shape, dt)
    dc = zeros((B, u), dt)
    UT = transpose(U, (1, 0))
    step = _step_backward[_base.blocks(B * u), _base.TPB]
    for t in range(T - 1, -1, -1):  # one launch per step (dZ_{t+1} U^T fused in)
        step(cell, A, dZ, UT, g, dc, H if C is None else C, t, M, masked, *acts, dt.type(0))
    dZ2 = _base.rows(dZ, G)
    dh = dm = None
    if need_h0:  # dh0 = dZ_0 U^T (times the mask U read h_0 through)
        dh = matmul(dZ[0], U, trans_b=True)
        dh = mul(dh, M) if masked else dh
    if need_mask and masked:  # dm = sum_t h_{t-1} (dZ_t U^T), all steps in one GEMM
        P = matmul(dZ2, U, trans_b=True).reshape((T, B, u))
        dm = rsum(mul(H[:T], P), (0,))
    dU = matmul(_base.rows(Hm, u), dZ2, trans_a=True)
    dW = matmul(_base.rows(xt, n_in), dZ2, trans_a=True)
    db = rsum(dZ2, (0,)) if bias else None
    dx = None
    if need_dx:
        dx = transpose(matmul(dZ2, W, trans_b=True).reshape((T, B, n_in)), (1, 0, 2))
    return dx, dW, dU, db, dh, dc, dm


def rnn_forward(x, W, U, b=None, h0=None, activation: str = "tanh", mask=None) -> tuple:
    """``(y, state)``: all hidden states ``y (B, T, u)`` of ``h_t = act(x_t W + h_{t-1} U + b)``
    and what the backward pass reads; ``mask (B, u)``: U reads ``h_{t-1} mask``."""
    return _run_forward(_cpu.SIMPLE, x, W, U, b, h0, None, _cpu.codes(activation), False,
                        mask)


def rnn_backward(g, state, W, U, activation: str = "tanh", bias: bool = True,
                 need_dx: bool = True, need_h0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dmask)`` of ``rnn_forward`` given ``g = dL/dy``; what is not
    asked for is None."""
    dx, dW, dU, db, dh0, _, dm = _run_backward(_cpu.SIMPLE, g, state, W, U,
                                               _cpu.codes(activation), bias, need_dx, need_h0,
                                               need_mask)
    return dx, dW, dU, db, dh0, dm


def lstm_forward(x, W, U, b=None, h0=None, c0=None, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", return_cell: bool = False,
                 mask=None) -> tuple:
    """``(y, state)``: the LSTM's hidden states ``y (B, T, u)``, or ``[h | c]`` side by side
    ``(B, T, 2u)`` with ``return_cell``; Keras' layouts and gate order i, f, c, o; ``mask``
    as ``rnn_forward``'s."""
    return _run_forward(LSTM, x, W, U, b, h0, c0, _cpu.codes(activation, recurrent_activation),
                        return_cell, mask)


def lstm_backward(g, state, W, U, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                  bias: bool = True, need_dx: bool = True, need_h0: bool = False,
                  need_c0: bool = False, need_mask: bool = False) -> tuple:
    """``(dx, dW, dU, db, dh0, dc0, dmask)`` of ``lstm_forward`` given ``g = dL/dy``
    (``(B, T, 2u)`` when the forward returned the cells); unrequested gradients are None."""
    dx, dW, dU, db, dh0, dc0, dm = _run_backward(LSTM, g, state, W, U,
                                                 _cpu.codes(activation, recurrent_activation),
                                                 bias, need_dx, need_h0, need_mask)
    return dx, dW, dU, db, dh0, dc0 if need_c0 else None, dm
