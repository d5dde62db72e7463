"""UpSampling2D (channels-last, Keras' arguments): repeat or bilinearly interpolate each cell
``size`` times, the up-sampling half of a fully convolutional segmentation network."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core.errors import GraphError
from ..core.tensor import Tensor
from ..ops.base import pair
from ..ops.upsampling import INTERPOLATIONS
from .base import Layer
from .pooling import channels_last, data_format_of

__all__ = ["UpSampling2D"]


class UpSampling2D(Layer):
    """``(batch, h, w, c)`` -> ``(batch, h * size[0], w * size[1], c)``; ``interpolation``
    "nearest" (repeat) or "bilinear" (half-pixel centres, as ``tf.image.resize``)."""

    def __init__(self, size=(2, 2), data_format: str | None = None,
                 interpolation: str = "nearest", **kw: Any) -> None:
        super().__init__(**kw)
        self.size = pair(size, "size")
        data_format_of(self, data_format)
        self.interpolation = str(interpolation).lower()
        if self.interpolation not in INTERPOLATIONS:
            raise GraphError(f"UpSampling2D interpolation must be one of "
                             f"{list(INTERPOLATIONS)}, got {interpolation!r}")

    def call(self, x: Tensor) -> Tensor:
        channels_last(self, x)
        return ops.upsample2d(x, self.size, self.interpolation)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}
