"""Reductions over axes: sum, mean, max (NumPy's names and ``axis``/``keepdims`` arguments).

``axis`` is None (all axes), an int or a tuple, negative values counting from the end. The
batch dimension (None) stays None unless it is reduced. Backward copies the upstream
gradient back along the reduced axes (a ``Broadcast``, written out when the next op asks).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.rows import Broadcast
from ..core.tensor import Tensor, apply
from .base import Op, norm_axes, same_float_dtype

__all__ = ["sum", "mean", "max"]


def _reduced(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    """The shape left after reducing ``axes``: dropped, or kept as 1 with ``keepdims``."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class Sum(Op):
    """y = sum_{axes} x;  dx = g broadcast back along the reduced axes."""
    name = "sum"
    family = "reduce"
    float_only = False  # sums and maxima of integers are fine; a mean needs floats

    def infer(self, x):
        if self.float_only:
            dtype = same_float_dtype(x)
        elif x.dtype.kind not in "fiu":
            raise GraphError(f"needs a numeric input, got {x.dtype}")
        else:
            dtype = x.dtype
        self.axes = norm_axes(self.axis, x.ndim)
        return _reduced(x.shape, self.axes, self.keepdims), dtype

    def forward(self, ctx, x):
        # the kernels drop the reduced axes; keepdims puts back the 1s (a free reshape)
        return ctx.be.sum(x, self.axes).reshape(_reduced(x.shape, self.axes, self.keepdims))

    def backward(self, ctx, g, y, x):
        # written out only when the next backward asks (an embedding's row sums read g)
        return (Broadcast(g, tuple(x.shape), self.axes, 1.0, ctx),)


class Mean(Sum):
    """y = (1/n) sum_{axes} x, n = number of reduced elements;  dx = g/n broadcast back."""
    name = "mean"
    float_only = True

    def forward(self, ctx, x):
        return ctx.be.mean(x, self.axes).reshape(_reduced(x.shape, self.axes, self.keepdims))

    def backward(self, ctx, g, y, x):
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        return (Broadcast(g, tuple(x.shape), self.axes, 1.0 / n, ctx),)


class Max(Sum):
    """y = max_{axes} x;  dx = g at the first maximum of each reduced block, 0 elsewhere.

    Forward keeps the argmax in ``ctx`` (as Caffe's max-pool keeps its mask) for backward.
    """
    name = "max"

    def forward(self, ctx, x):
        y, ctx.argmax = ctx.be.max(x, self.axes)
        return y.reshape(_reduced(x.shape, self.axes, self.keepdims))

    def backward(self, ctx, g, y, x):
        return (ctx.be.max_grad(g, ctx.argmax, x.shape, self.axes),)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (None: all; int or tuple, negative allowed)."""
    return apply(Sum(axis=axis, keepdims=bool(keepdims)), [x])


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None: all; int or tuple, negative allowed)."""
    return apply(Mean(axis=axis, keepdims=bool(keepdims)), [x])


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - NumPy's name
    """Maximum over ``axis``; its gradient flows to the first maximum (NumPy's argmax)."""
    return apply(Max(axis=axis, keepdims=bool(keepdims)), [x])
