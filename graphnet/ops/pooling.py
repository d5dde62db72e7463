"""2-D pooling (channels-last NHWC, Keras semantics): ``max_pool2d`` and ``avg_pool2d``.

Windows of ``pool_size`` move by ``strides`` (default: the pool size). ``padding="valid"``
keeps only whole windows; ``"same"`` gives ``ceil(size / stride)`` outputs per axis and pads
as TensorFlow does (the odd cell after, not before). Padded cells are never read: they never
win a max and an average divides by the count of real cells only.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply
from .base import Op, pair, same_float_dtype, spatial

__all__ = ["max_pool2d", "avg_pool2d"]

PADDINGS = ("valid", "same")


def _axis(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(outputs, pad before, pad after) along one axis of size n, window k, stride s."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)  # TensorFlow: the extra cell goes after
    return out, total // 2, total - total // 2


class MaxPool2D(Op):
    """y[n, i, j, c] = max of x[n, i*sh - top + a, j*sw - left + b, c] over the window's
    real cells; dx = g routed to each window's first maximum (argmax saved by forward),
    summed where overlapping windows share a winner."""

    name = "max_pool2d"
    family = "pool"  # the drawings' colour class (visualize/dot.py)
    kind = "max"

    def infer(self, x):
        dt = same_float_dtype(x)
        H, W = spatial(x, self.name)
        if self.padding not in PADDINGS:
            raise GraphError(f"padding must be 'valid' or 'same', got {self.padding!r}")
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        if self.padding == "valid" and (H < ph or W < pw):
            raise GraphError(f"pool_size {self.pool_size} does not fit the input's {H}x{W} "
                             f"spatial size with padding='valid'; use padding='same' or a "
                             f"smaller pool")
        (oh, top, bottom), (ow, left, right) = _axis(H, ph, sh, self.padding), \
            _axis(W, pw, sw, self.padding)
        self.pads = (top, bottom, left, right)
        return (x.shape[0], oh, ow, x.shape[3]), dt

    def _out_hw(self, shape: tuple) -> tuple[int, int]:
        return tuple(_axis(n, k, s, self.padding)[0]
                     for n, k, s in zip(shape[1:3], self.pool_size, self.strides))

    def forward(self, ctx, x):
        shape = (x.shape[0], *self._out_hw(x.shape), x.shape[3])
        y = ctx.buffer("y", shape, x.dtype)
        out = None if y is None else (
            y, ctx.buffer("arg", shape if self.kind == "max" else (1, 1, 1, 1), "int64"))
        y, ctx.arg = ctx.be.pool2d(x, self.pool_size, self.strides, self.pads, self.kind,
                                   out=out)
        return y

    def backward(self, ctx, g, y, x):
        return (ctx.be.pool2d_grad(g, ctx.arg, x.shape, self.pool_size, self.strides,
                                   self.pads, self.kind,
                                   out=ctx.buffer("dx", x.shape, x.dtype)),)


class AvgPool2D(MaxPool2D):
    """y[n, i, j, c] = mean of x over the window's real cells (count excludes padding);
    dx = g[n, i, j, c] / count added to every real cell of the window."""

    name = "avg_pool2d"
    kind = "avg"


def _pool(cls, x, pool_size, strides, padding) -> Tensor:
    size = pair(pool_size, "pool_size")
    step = size if strides is None else pair(strides, "strides")
    return apply(cls(pool_size=size, strides=step, padding=str(padding).lower()), [x])


def max_pool2d(x, pool_size=2, strides=None, padding: str = "valid") -> Tensor:
    """Max over ``pool_size`` windows of NHWC ``x`` moved by ``strides`` (default: the pool
    size); ``padding`` "valid" or "same" (TensorFlow's). Gradient ties go to the first
    maximum in scan order (rows, then columns)."""
    return _pool(MaxPool2D, x, pool_size, strides, padding)


def avg_pool2d(x, pool_size=2, strides=None, padding: str = "valid") -> Tensor:
    """Mean over ``pool_size`` windows of NHWC ``x``; with "same" padding each window divides
    by its count of real cells, as TensorFlow does."""
    return _pool(AvgPool2D, x, pool_size, strides, padding)
