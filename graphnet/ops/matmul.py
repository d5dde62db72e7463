"""Matrix product ``a @ b`` with NumPy's matmul semantics: 2-D, batched (..., m, k) @ (..., k, n)
with broadcast leading dimensions (Dense on sequences, attention's Q K^T and A V), and 1-D
operands: a vector on the left is a (1, k) row, on the right a (k, 1) column, and the added
axis is dropped from the result (matrix @ vector, vector @ matrix, vector @ vector -> scalar).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, broadcast_shapes, same_float_dtype

__all__ = ["matmul"]


class MatMul(Op):
    """y = a @ b;  da = g @ b^T, db = a^T @ g (each summed over the batch dims it broadcast).

    A 2-D b shared by every batch entry gets db = sum_i a_i^T g_i as one GEMM over all rows.
    A 1-D operand is viewed with an added axis (a as (1, k), b as (k, 1)), the product runs
    on the rank-2 views, and the added axis is squeezed from y; backward views g the same way
    and returns da, db in the operands' own shapes. The kernels only ever see rank >= 2.
    """
    name = "matmul"
    family = "linear"

    def infer(self, a, b):
        dtype = same_float_dtype(a, b)
        if a.ndim == 0 or b.ndim == 0:
            raise GraphError(f"needs operands of rank >= 1, got {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)}; use * to scale by a scalar")
        sa = (1,) + a.shape if a.ndim == 1 else a.shape
        sb = b.shape + (1,) if b.ndim == 1 else b.shape
        (m, ka), (kb, n) = sa[-2:], sb[-2:]
        if ka is not None and kb is not None and ka != kb:
            raise GraphError(f"inner dimensions differ: {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)} ({ka} != {kb})")
        try:
            lead = broadcast_shapes(sa[:-2], sb[:-2])
        except GraphError:
            raise GraphError(f"batch dimensions of {fmt_shape(a.shape)} and "
                             f"{fmt_shape(b.shape)} do not broadcast") from None
        return lead + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ()), dtype

    def _views(self, be, a, b):
        """The rank >= 2 views of the operands (a vector gains its matrix axis)."""
        a2 = be.reshape(a, (1,) + tuple(a.shape)) if a.ndim == 1 else a
        b2 = be.reshape(b, tuple(b.shape) + (1,)) if b.ndim == 1 else b
        return a2, b2

    def forward(self, ctx, a, b):
        be = ctx.be
        if a.ndim > 1 and b.ndim > 1:
            return be.matmul(a, b)
        a2, b2 = self._views(be, a, b)
        y = be.matmul(a2, b2)
        return be.reshape(y, self._drop(tuple(y.shape), a.ndim, b.ndim))

    @staticmethod
    def _drop(shape: tuple, na: int, nb: int) -> tuple:
        """``shape`` of the rank-2 product without the axes that 1-D operands added."""
        return shape[:-2] + ((shape[-2],) if na > 1 else ()) + ((shape[-1],) if nb > 1 else ())

    def backward(self, ctx, g, y, a, b):
        be = ctx.be
        a2, b2 = self._views(be, a, b)
        if a.ndim == 1 or b.ndim == 1:
            lead = tuple(g.shape)[:len(g.shape) - (a.ndim > 1) - (b.ndim > 1)]
            g = be.reshape(g, lead + (tuple(a2.shape)[-2], tuple(b2.shape)[-1]))
        da = db = None
        if ctx.wants(0):
            da = be.sum_to(be.matmul(g, b2, trans_b=True), tuple(a2.shape))
            if a.ndim == 1:
                da = be.reshape(da, tuple(a.shape))
        if ctx.wants(1):
            if b2.ndim == 2:
                db = be.matmul_at_sum(a2, g)
            else:
                db = be.sum_to(be.matmul(a2, g, trans_a=True), tuple(b2.shape))
            if b.ndim == 1:
                db = be.reshape(db, tuple(b.shape))
        return da, db


def matmul(a, b) -> Tensor:
    """Matrix product ``a @ b`` as ``numpy.matmul``: batch dimensions broadcast, and a 1-D
    operand is a vector (matrix @ vector, vector @ matrix, vector @ vector is a scalar)."""
    return apply(MatMul(), [a, b])
