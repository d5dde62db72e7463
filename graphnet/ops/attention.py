"""Scaled dot-product attention ``softmax(Q K^T / sqrt(d)) V`` as one fused node.

One node instead of five (matmul, scale, mask, softmax, matmul) keeps the attention weights
in one place for backward and draws as one box; ``gn.matmul`` and ``gn.softmax`` compose the
same thing step by step (MultiHeadAttention does so for the scores it returns).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, same_float_dtype

__all__ = ["attention"]


class Attention(Op):
    """A = softmax(scale Q K^T) (keys j > i masked when causal), y = A V, for
    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv); with ``heads_last``
    q (..., Tq, H, d), k (..., Tk, H, d), v (..., Tk, H, dv) -> (..., Tq, H, dv), per head.

    Backward: dV = A^T g, dA = g V^T, dS = A (dA - rowsum(dA A)), dQ = scale dS K,
    dK = scale dS^T Q.
    """

    name = "attention"
    family = "attention"
    heads_last = False  # a class default: graphs saved before the flag load as before

    def infer(self, q, k, v):
        dt = same_float_dtype(q, k, v)
        fq, fk, fv = (fmt_shape(t.shape) for t in (q, k, v))
        if self.heads_last:
            if min(q.ndim, k.ndim, v.ndim) < 3 or not k.ndim == v.ndim == q.ndim:
                raise GraphError(f"queries {fq}, keys {fk} and values {fv} need one rank, at "
                                 "least 3, with heads last: (..., time, heads, depth)")
            if not q.shape[-2] == k.shape[-2] == v.shape[-2]:
                raise GraphError(f"queries {fq}, keys {fk} and values {fv} need the same "
                                 "number of heads (the axis before the depth)")
            # the checks below read the heads-first shapes (..., heads, time, depth)
            q, k, v = (_HeadsFirst(t) for t in (q, k, v))
        if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
            raise GraphError(f"queries {fq}, keys {fk} and values {fv} need one rank, at "
                             "least 2: (..., time, features)")
        if k.shape[:-2] != q.shape[:-2] or v.shape[:-2] != q.shape[:-2]:
            raise GraphError(f"queries {fq}, keys {fk} and values {fv} must agree on the "
                             "leading (batch, heads) dimensions")
        if q.shape[-1] != k.shape[-1]:
            raise GraphError(f"queries {fq} have depth {q.shape[-1]} but keys {fk} have depth "
                             f"{k.shape[-1]}; Q K^T needs the same depth")
        if k.shape[-2] != v.shape[-2]:
            raise GraphError(f"keys {fk} and values {fv} need the same length (one value per "
                             f"key), got {k.shape[-2]} and {v.shape[-2]}")
        if self.scale is not None and not float(self.scale) > 0:
            raise GraphError(f"scale must be positive, got {self.scale}")
        if self.heads_last:
            return tuple(q.shape[:-3]) + (q.shape[-2], q.shape[-3], v.shape[-1]), dt
        return tuple(q.shape[:-1]) + (v.shape[-1],), dt

    def forward(self, ctx, q, k, v):
        shape = tuple(q.shape)[:-1] + (tuple(v.shape)[-1],)  # tuples: device shapes too
        sq, sk = tuple(q.shape), tuple(k.shape)
        if self.heads_last:  # the weights (..., H, Tq, Tk)
            a = sq[:-3] + (sq[-2], sq[-3], sk[-3])
        else:
            a = shape[:-1] + (sk[-2],)
        out = (ctx.buffer("y", shape, q.dtype), ctx.buffer("a", a, q.dtype))
        y, ctx.a = ctx.be.attention(q, k, v, self.causal, self.scale,
                                    out=None if out[0] is None else out,
                                    heads_last=self.heads_last)
        return y

    def backward(self, ctx, g, y, q, k, v):
        return ctx.be.attention_grad(g, q, k, v, ctx.a, self.scale,
                                     need=(ctx.wants(0), ctx.wants(1), ctx.wants(2)),
                                     heads_last=self.heads_last)


class _HeadsFirst:
    """A tensor's shape read heads first: (..., T, H, d) as (..., H, T, d)."""

    def __init__(self, t: Tensor) -> None:
        s = tuple(t.shape)
        self.shape = (*s[:-3], s[-2], s[-3], s[-1])
        self.ndim = len(s)


def attention(q, k, v, causal: bool = False, scale: float | None = None,
              heads_last: bool = False) -> Tensor:
    """``softmax(scale q k^T) v`` over the last two axes, ``scale`` 1/sqrt(depth) by default;
    ``causal=True`` lets query i see keys 0..i only (top-left aligned, as PyTorch's
    ``is_causal``). ``heads_last=True``: q, k, v are ``(..., time, heads, depth)`` (a
    projection ``(B, T, H d)`` reshaped, no transpose) and so is the output, per head."""
    op = Attention(causal=bool(causal), scale=None if scale is None else float(scale),
                   **({"heads_last": True} if heads_last else {}))
    return apply(op, [q, k, v])
