"""Softmax and log-softmax along an axis, stable for large logits (the row maximum is taken
out before exponentiating)."""

from __future__ import annotations

from typing import ClassVar

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply
from .base import Op, norm_axes, same_float_dtype

__all__ = ["softmax", "log_softmax"]


class Softmax(Op):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m) along ``axis`` (m the maximum);
    dx = y (g - sum_j g_j y_j)."""

    name = "softmax"
    family = "activation"
    log: ClassVar[bool] = False

    def infer(self, x):
        if x.ndim == 0:
            raise GraphError(f"{self.name} needs at least one axis; got a scalar")
        norm_axes(self.axis, x.ndim)  # raises for an axis out of range
        return x.shape, same_float_dtype(x)

    def forward(self, ctx, x):
        return ctx.be.softmax(x, self.axis, self.log)

    def backward(self, ctx, g, y, x):
        return (ctx.be.softmax_grad(g, y, self.axis, self.log),)


class LogSoftmax(Softmax):
    """y_i = x_i - m - log sum_j e^(x_j - m);  dx = g - softmax(x) sum_j g_j,
    with softmax(x) = e^y."""

    name = "log_softmax"
    log = True


def softmax(x, axis: int = -1) -> Tensor:
    """Normalised exponentials along ``axis``: each slice sums to 1."""
    return apply(Softmax(axis=int(axis)), [x])


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)), computed without forming the softmax (finite for any finite x)."""
    return apply(LogSoftmax(axis=int(axis)), [x])
