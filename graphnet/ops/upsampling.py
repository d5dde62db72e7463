"""2-D up-sampling (channels-last NHWC) by integer factors, as Keras' ``UpSampling2D``.

"nearest" repeats each cell ``size`` times per axis; "bilinear" interpolates at half-pixel
centres (TF2's ``tf.image.resize``, PyTorch's ``align_corners=False``).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply
from .base import Op, pair, same_float_dtype, spatial

__all__ = ["upsample2d"]

INTERPOLATIONS = ("nearest", "bilinear")


class UpSample2D(Op):
    """y[n, i, j] = sum_{a, b} wy(i, a) wx(j, b) x[n, a, b]: wy, wx pick one source cell
    (nearest) or two with weights 1 - l and l (bilinear); dx = the adjoint,
    dx[n, a, b] = sum_{i, j} wy(i, a) wx(j, b) g[n, i, j]."""

    name = "upsample2d"
    family = "upsampling"

    def infer(self, x):
        dt = same_float_dtype(x)
        H, W = spatial(x, self.name)
        if self.interpolation not in INTERPOLATIONS:
            raise GraphError(f"interpolation must be one of {list(INTERPOLATIONS)}, got "
                             f"{self.interpolation!r}")
        sh, sw = self.size
        return (x.shape[0], H * sh, W * sw, x.shape[3]), dt

    def forward(self, ctx, x):
        return ctx.be.upsample2d(x, self.size, self.interpolation)

    def backward(self, ctx, g, y, x):
        return (ctx.be.upsample2d_grad(g, x.shape, self.size, self.interpolation),)


def upsample2d(x, size=2, interpolation: str = "nearest") -> Tensor:
    """NHWC ``x`` enlarged ``size`` times (an int or a (rows, cols) pair) by "nearest"
    (repeat) or "bilinear" (half-pixel centres) interpolation."""
    return apply(UpSample2D(size=pair(size, "size"), interpolation=str(interpolation).lower()),
                 [x])
