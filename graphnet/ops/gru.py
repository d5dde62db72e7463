"""The fused GRU op: a whole gated recurrent unit over time as ONE node (Lecture 2).

Keras 3's cell and layouts: kernel ``(in, 3u)``, recurrent kernel ``(u, 3u)``, gates z
(update), r (reset), h~ (candidate) in that order; ``reset_after=True`` (the default) with
a bias of two rows ``(2, 3u)`` (input, recurrent), ``reset_after=False`` with one ``(3u,)``.
The layer's ``unroll=True`` builds the same math from primitive ops, one scope per step.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import same_float_dtype
from .recurrent import _Cell, _check_activation, _infer, _inputs, _mask_attr

__all__ = ["gru"]


class GRU(_Cell):
    """z = σ(x_t W_z + h_{t-1} U_z + b_z), r = σ(x_t W_r + h_{t-1} U_r + b_r),
    h~ = tanh(x_t W_h + b_h + r (h_{t-1} U_h + b'_h))   (reset_after; else
    h~ = tanh(x_t W_h + b_h + (r h_{t-1}) U_h)),  h_t = z h_{t-1} + (1 - z) h~; with a
    recurrent-dropout mask m every U reads h_{t-1} m (the direct path z h_{t-1} does not).

    Backward through time, with dh_t = g_t + (the paths from step t+1):
    dh~ = dh_t (1 - z), ds_h = dh~ tanh'(h~), dz = dh_t (h_{t-1} - h~) σ'(z),
    dr = ds_h (h_{t-1} U_h + b'_h) σ'(r) (reset before: dr = (ds_h U_h^T) h_{t-1} σ'(r));
    dh_{t-1} = dh_t z + [dz, dr, ds_h r] U^T (reset before: [dz, dr] U_zr^T + r ds_h U_h^T);
    dW = X^T [dz, dr, ds_h], dU and db the matching sums over all steps, dx = [...] W^T;
    with a mask the paths through U (the GEMM's and, reset before, r's) reach h_{t-1} times
    m and the mask as dm = sum_t h_{t-1} (those paths).
    """

    name = "gru"
    STATES = ("h0",)

    def infer(self, x, W, U, *rest):
        _check_activation("activation", self.activation)
        _check_activation("recurrent_activation", self.recurrent_activation)
        states = rest[int(self.use_bias):]
        (B, T, u), dt = _infer(x, W, U, states, 3, False, self._names())
        if self.use_bias:
            same_float_dtype(x, rest[0])
            want = (2, 3 * u) if self.reset_after else (3 * u,)
            if rest[0].shape != want:
                raise GraphError(f"the bias must have shape {fmt_shape(want)} for {u} units "
                                 f"with reset_after={self.reset_after}, got "
                                 f"{fmt_shape(rest[0].shape)}")
        return (B, T, u), dt

    def forward(self, ctx, x, W, U, *rest):
        b, named = self._split(rest)
        y, ctx.state = ctx.be.gru_forward(x, W, U, b, named.get("h0"), self.activation,
                                          self.recurrent_activation, self.reset_after,
                                          mask=named.get("mask"))
        return y

    def backward(self, ctx, g, y, x, W, U, *rest):
        dx, dW, dU, db, dh0, dm = ctx.be.gru_backward(
            g, ctx.state, W, U, self.activation, self.recurrent_activation,
            reset_after=self.reset_after, bias=self.use_bias, need_dx=ctx.wants(0),
            need_h0=self._wants(ctx, "h0"), need_mask=self._wants(ctx, "mask"))
        return self._grads(dx, dW, dU, db, {"h0": dh0, "mask": dm})


def gru(x, kernel, recurrent_kernel, bias=None, h0=None, activation: str = "tanh",
        recurrent_activation: str = "sigmoid", reset_after: bool = True,
        mask=None) -> Tensor:
    """All hidden states ``(B, T, units)`` of Keras 3's GRU over ``x (B, T, in)`` as one node
    (gates z, r, h; ``bias`` ``(2, 3 units)`` with ``reset_after``, else ``(3 units,)``);
    ``h0`` defaults to zeros; ``mask (B, units)`` multiplies ``h_{t-1}`` where the recurrent
    kernel reads it (recurrent dropout)."""
    op = GRU(activation=activation or "linear",
             recurrent_activation=recurrent_activation or "linear",
             use_bias=bias is not None, with_h0=h0 is not None, reset_after=bool(reset_after),
             **_mask_attr(mask))
    return apply(op, _inputs(x, kernel, recurrent_kernel, bias, h0, mask))
