"""Matrix product ``a @ b``: 2-D, and batched (..., m, k) @ (..., k, n) with NumPy's
broadcasting of the leading dimensions (Dense on sequences, attention's Q K^T and A V).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, broadcast_shapes, same_float_dtype

__all__ = ["matmul"]


class MatMul(Op):
    """y = a @ b;  da = g @ b^T, db = a^T @ g (each summed over the batch dims it broadcast).

    A 2-D b shared by every batch entry gets db = sum_i a_i^T g_i as one GEMM over all rows.
    """
    name = "matmul"
    family = "linear"

    def infer(self, a, b):
        dtype = same_float_dtype(a, b)
        if a.ndim < 2 or b.ndim < 2:
            raise GraphError(f"needs operands of rank >= 2, got {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)}; reshape a vector to (1, k) or (k, 1)")
        (m, ka), (kb, n) = a.shape[-2:], b.shape[-2:]
        if ka is not None and kb is not None and ka != kb:
            raise GraphError(f"inner dimensions differ: {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)} ({ka} != {kb})")
        try:
            lead = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except GraphError:
            raise GraphError(f"batch dimensions of {fmt_shape(a.shape)} and "
                             f"{fmt_shape(b.shape)} do not broadcast") from None
        return lead + (m, n), dtype

    def forward(self, ctx, a, b):
        return ctx.be.matmul(a, b)

    def backward(self, ctx, g, y, a, b):
        be = ctx.be
        da = be.sum_to(be.matmul(g, b, trans_b=True), a.shape)
        if b.ndim == 2:
            db = be.matmul_at_sum(a, g)
        else:
            db = be.sum_to(be.matmul(a, g, trans_a=True), b.shape)
        return da, db


def matmul(a, b) -> Tensor:
    """Matrix product ``a @ b`` with broadcast batch dimensions (NumPy's matmul, rank >= 2)."""
    return apply(MatMul(), [a, b])
