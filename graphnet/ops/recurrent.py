"""Fused recurrent ops: a whole SimpleRNN or LSTM over time as ONE node (Lecture 2).

``h_t = f_W(x_t, h_{t-1})`` run for every step inside one compiled call, forward and backward
through time, with Keras' layouts (kernel ``(in, G u)``, recurrent kernel ``(u, G u)``, bias
``(G u,)``; the LSTM's gates in Keras' order i, f, c, o). A node has one output, so the LSTM's
last cell state, which Keras' ``return_state=True`` needs, comes out through ``return_cell``:
the node then outputs ``[h_t | c_t]`` side by side, ``(B, T, 2u)``, and the layer slices it.
The layers' ``unroll=True`` builds the same math from primitive ops, one scope per step.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, same_float_dtype

__all__ = ["simple_rnn", "lstm"]

# activations the fused kernels support (their derivatives are read from the outputs)
RECURRENT_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


def _check_activation(what: str, act: str) -> None:
    if act not in RECURRENT_ACTIVATIONS:
        raise GraphError(f"{what} {act!r} is not supported by the fused recurrent kernels; "
                         f"choose one of {list(RECURRENT_ACTIVATIONS)}")


def _infer(x, W, U, rest, gates: int, use_bias: bool, states: tuple[str, ...]) -> tuple:
    """The shape rule shared by the cells: x (B, T, in), W (in, G u), U (u, G u), b (G u,),
    initial states (B, u); returns (B, T, u) and the dtype."""
    dt = same_float_dtype(x, W, U, *rest)
    if x.ndim != 3:
        raise GraphError(f"the input must be 3-D (batch, timesteps, features), got "
                         f"{fmt_shape(x.shape)}")
    if U.ndim != 2 or None in U.shape or U.shape[1] != gates * U.shape[0]:
        raise GraphError(f"the recurrent kernel must be (units, {gates} * units), got "
                         f"{fmt_shape(U.shape)}")
    u = U.shape[0]
    if W.ndim != 2 or W.shape != (x.shape[2], gates * u):
        raise GraphError(f"x {fmt_shape(x.shape)} has {x.shape[2]} features, so the kernel "
                         f"must be ({x.shape[2]}, {gates * u}) for {u} units; got "
                         f"{fmt_shape(W.shape)}")
    if use_bias and rest[0].shape != (gates * u,):
        raise GraphError(f"the bias must have shape ({gates * u},) for {u} units, got "
                         f"{fmt_shape(rest[0].shape)}")
    for name, s in zip(states, rest[int(use_bias):]):  # the initial states, then the mask
        if s.ndim != 2 or s.shape[1] != u or (s.shape[0] is not None and x.shape[0] is not None
                                               and s.shape[0] != x.shape[0]):
            what = "the recurrent mask" if name == "mask" else f"the initial state {name}"
            raise GraphError(f"{what} must be (batch, {u}) to match x "
                             f"{fmt_shape(x.shape)}, got {fmt_shape(s.shape)}")
    return (x.shape[0], x.shape[1], u), dt


class _Cell(Op):
    """What the fused cells share: the optional inputs after ``x, W, U`` (bias, initial
    states, then the recurrent-dropout mask ``m (B, u)``) and where each one sits."""

    family = "recurrent"
    with_mask = False  # a class default: graphs saved before the mask existed load as before
    STATES: tuple[str, ...] = ()

    def _names(self) -> tuple[str, ...]:
        return tuple(s for s in self.STATES if getattr(self, f"with_{s}")) + \
            ("mask",) * self.with_mask

    def _split(self, rest) -> tuple:
        """(bias, {state or "mask": array}) from the inputs after x, W, U."""
        k = int(self.use_bias)
        return (rest[0] if k else None), dict(zip(self._names(), rest[k:]))

    def _grads(self, dx, dW, dU, db, named: dict) -> tuple:
        """The gradients in input order; ``named`` maps state names (and "mask") to theirs."""
        return (dx, dW, dU) + ((db,) if self.use_bias else ()) + \
            tuple(named[n] for n in self._names())

    def _wants(self, ctx, name: str) -> bool:
        names = self._names()
        return name in names and ctx.wants(3 + int(self.use_bias) + names.index(name))


class SimpleRNN(_Cell):
    """h_t = act(x_t W + (h_{t-1} m) U + b), t = 1..T (h_0 given or zero, m the recurrent
    dropout mask or 1); y = (h_1, ..., h_T).

    Backward through time: dz_t = (g_t + m dz_{t+1} U^T) act'(h_t); dW = X^T dZ,
    dU = (H_{t-1} m)^T dZ, db = sum dZ, dx = dZ W^T, dh_0 = m dz_1 U^T,
    dm = sum_t h_{t-1} dz_t U^T.
    """

    name = "simple_rnn"
    STATES = ("h0",)

    def infer(self, x, W, U, *rest):
        _check_activation("activation", self.activation)
        return _infer(x, W, U, rest, 1, self.use_bias, self._names())

    def forward(self, ctx, x, W, U, *rest):
        b, named = self._split(rest)
        y, ctx.state = ctx.be.rnn_forward(x, W, U, b, named.get("h0"), self.activation,
                                          mask=named.get("mask"))
        return y

    def backward(self, ctx, g, y, x, W, U, *rest):
        dx, dW, dU, db, dh0, dm = ctx.be.rnn_backward(
            g, ctx.state, W, U, self.activation, bias=self.use_bias, need_dx=ctx.wants(0),
            need_h0=self._wants(ctx, "h0"), need_mask=self._wants(ctx, "mask"))
        return self._grads(dx, dW, dU, db, {"h0": dh0, "mask": dm})


class LSTM(_Cell):
    """i, f, o = σ(z_i, z_f, z_o), c~ = tanh(z_c) with z = x_t W + (h_{t-1} m) U + b;
    c_t = f c_{t-1} + i c~, h_t = o tanh(c_t); y = (h_1..h_T), or [h | c] with return_cell.

    Backward through time: dc_t += dh_t o tanh'(c_t); dz_i = dc_t c~ σ', dz_f = dc_t c_{t-1} σ',
    dz_c = dc_t i tanh', dz_o = dh_t tanh(c_t) σ'; dh_{t-1} = m dZ_t U^T, dc_{t-1} = dc_t f;
    then dW, dU, db, dx, dm as SimpleRNN's.
    """

    name = "lstm"
    STATES = ("h0", "c0")

    def infer(self, x, W, U, *rest):
        _check_activation("activation", self.activation)
        _check_activation("recurrent_activation", self.recurrent_activation)
        (B, T, u), dt = _infer(x, W, U, rest, 4, self.use_bias, self._names())
        return (B, T, 2 * u if self.return_cell else u), dt

    def forward(self, ctx, x, W, U, *rest):
        b, named = self._split(rest)
        y, ctx.state = ctx.be.lstm_forward(x, W, U, b, named.get("h0"), named.get("c0"),
                                           self.activation, self.recurrent_activation,
                                           self.return_cell, mask=named.get("mask"))
        return y

    def backward(self, ctx, g, y, x, W, U, *rest):
        dx, dW, dU, db, dh0, dc0, dm = ctx.be.lstm_backward(
            g, ctx.state, W, U, self.activation, self.recurrent_activation,
            bias=self.use_bias, need_dx=ctx.wants(0), need_h0=self._wants(ctx, "h0"),
            need_c0=self._wants(ctx, "c0"), need_mask=self._wants(ctx, "mask"))
        return self._grads(dx, dW, dU, db, {"h0": dh0, "c0": dc0, "mask": dm})


def _inputs(x, kernel, recurrent_kernel, *optional) -> list:
    return [x, kernel, recurrent_kernel, *(t for t in optional if t is not None)]


def _mask_attr(mask) -> dict:
    return {"with_mask": True} if mask is not None else {}  # saved graphs stay as they were


def simple_rnn(x, kernel, recurrent_kernel, bias=None, h0=None,
               activation: str = "tanh", mask=None) -> Tensor:
    """All hidden states ``(B, T, units)`` of ``h_t = act(x_t kernel + (h_{t-1} mask)
    recurrent_kernel + bias)`` over ``x (B, T, in)`` as one node; ``h0`` defaults to zeros,
    ``mask (B, units)`` (recurrent dropout's, one for every step) to ones."""
    op = SimpleRNN(activation=activation or "linear", use_bias=bias is not None,
                   with_h0=h0 is not None, **_mask_attr(mask))
    return apply(op, _inputs(x, kernel, recurrent_kernel, bias, h0, mask))


def lstm(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, activation: str = "tanh",
         recurrent_activation: str = "sigmoid", return_cell: bool = False,
         mask=None) -> Tensor:
    """All hidden states ``(B, T, units)`` of an LSTM over ``x (B, T, in)`` as one node
    (Keras' layouts, gates i, f, c, o); with ``return_cell`` the node outputs ``[h | c]``
    ``(B, T, 2 units)``, so that the last cell state can be sliced out. ``mask (B, units)``
    multiplies ``h_{t-1}`` where every gate's recurrent kernel reads it (recurrent dropout)."""
    op = LSTM(activation=activation or "linear",
              recurrent_activation=recurrent_activation or "linear",
              use_bias=bias is not None, with_h0=h0 is not None, with_c0=c0 is not None,
              return_cell=bool(return_cell), **_mask_attr(mask))
    return apply(op, _inputs(x, kernel, recurrent_kernel, bias, h0, c0, mask))
