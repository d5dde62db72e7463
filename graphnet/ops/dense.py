"""The dense (fully connected) op: ``act(x @ W + b)`` in one node, as Keras' Dense layer computes.

Fusing keeps a layer to one GEMM plus one pass over its output, forward and backward, and
draws one node per layer.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .activation import check_fused
from .base import Op, same_float_dtype

__all__ = ["dense"]

# leaky_relu's slope and elu's scale inside dense: the standalone functions' defaults
_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}
# activations whose derivative needs the pre-activation z, not just the output y
_NEEDS_Z = ("gelu",)


class Dense(Op):
    """z = x W + b, y = act(z): x (..., in), W (in, out), b (out,) optional.

    Backward: dZ = g act'(z) (one fused pass that also sums db = sum over rows of dZ),
    dx = dZ W^T, dW = x^T dZ with every leading axis of x counted as a row.
    """

    name = "dense"
    family = "dense"

    def infer(self, x, W, *b):
        check_fused(self.activation, "dense")
        dt = same_float_dtype(x, W, *b)
        if W.ndim != 2 or None in W.shape:
            raise GraphError(f"the kernel W must be 2-D (in, out), got {fmt_shape(W.shape)}")
        if x.ndim < 1 or x.shape[-1] != W.shape[0]:
            raise GraphError(f"x {fmt_shape(x.shape)} has {x.shape[-1] if x.ndim else 'no'} "
                             f"features but W {fmt_shape(W.shape)} expects {W.shape[0]}")
        if b and b[0].shape != (W.shape[1],):
            raise GraphError(f"the bias must have shape ({W.shape[1]},) to match W "
                             f"{fmt_shape(W.shape)}, got {fmt_shape(b[0].shape)}")
        return tuple(x.shape[:-1]) + (W.shape[1],), dt

    def forward(self, ctx, x, W, *b):
        act = self.activation
        keep_z = act in _NEEDS_Z
        shape = x.shape[:-1] + (W.shape[1],)
        z = ctx.buffer("z", shape, x.dtype)
        out = None if z is None else (ctx.buffer("y", shape, x.dtype) if keep_z else z, z)
        y, ctx.z = ctx.be.dense(x, W, b[0] if b else None, act, _ALPHA.get(act, 0.0),
                                keep_z=keep_z, out=out)
        return y

    def backward(self, ctx, g, y, x, W, *b):
        act = self.activation
        dz = ctx.buffer("dz", g.shape, g.dtype)
        out = None if dz is None else (dz, ctx.buffer("dx", x.shape, x.dtype),
                                       ctx.buffer("dW", W.shape, W.dtype),
                                       ctx.buffer("db", W.shape[1:], W.dtype))
        dx, dW, db = ctx.be.dense_grad(g, x, W, ctx.z, y, act, _ALPHA.get(act, 0.0),
                                       bias=bool(b), need_dx=ctx.wants(0), out=out)
        return (dx, dW, db) if b else (dx, dW)


def dense(x, W, b=None, activation: str | None = None) -> Tensor:
    """``activation(x @ W + b)`` as one node; ``activation`` is None/"linear", "relu",
    "sigmoid", "tanh", "leaky_relu" (slope 0.2), "elu" (alpha 1) or "gelu"."""
    act = "linear" if activation is None else activation
    return apply(Dense(activation=act), [x, W] if b is None else [x, W, b])
