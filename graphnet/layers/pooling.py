"""Pooling layers (channels-last, Keras' names and arguments): windowed max and average
pooling, and their global forms over height and width."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from ..ops.base import pair
from ..ops.pooling import PADDINGS
from .base import Layer

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D"]


def data_format_of(layer: Layer, data_format: str | None) -> None:
    """Keras' ``data_format`` argument: graphnet's layers are channels-last only."""
    if data_format not in (None, "channels_last"):
        raise GraphError(f"{type(layer).__name__}: graphnet is channels-last only (NHWC); "
                         f"got data_format={data_format!r}")


def channels_last(layer: Layer, x: Tensor) -> None:
    """Refuse anything but 4-D channels-last inputs, naming the layer and the shape."""
    if x.ndim != 4:
        raise GraphError(f"{type(layer).__name__} layer {layer.name!r} expects channels-last "
                         f"(batch, height, width, channels) inputs; got {fmt_shape(x.shape)}")


class MaxPooling2D(Layer):
    """The maximum over ``pool_size`` windows moved by ``strides`` (default: the pool size);
    ``padding`` "valid" or "same" (TensorFlow's: padded cells never win)."""

    _pool = staticmethod(ops.max_pool2d)

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid",
                 data_format: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = str(padding).lower()
        if self.padding not in PADDINGS:
            raise GraphError(f"{type(self).__name__} padding must be 'valid' or 'same', "
                             f"got {padding!r}")
        data_format_of(self, data_format)

    def call(self, x: Tensor) -> Tensor:
        channels_last(self, x)
        return self._pool(x, self.pool_size, self.strides, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class AveragePooling2D(MaxPooling2D):
    """The mean over ``pool_size`` windows; with "same" padding each window divides by its
    count of real cells (TensorFlow's rule)."""

    _pool = staticmethod(ops.avg_pool2d)


class GlobalAveragePooling2D(Layer):
    """``(batch, h, w, c)`` -> ``(batch, c)``: the mean over height and width (``keepdims``
    keeps them as 1s)."""

    _reduce = staticmethod(ops.mean)

    def __init__(self, data_format: str | None = None, keepdims: bool = False,
                 **kw: Any) -> None:
        super().__init__(**kw)
        data_format_of(self, data_format)
        self.keepdims = bool(keepdims)

    def call(self, x: Tensor) -> Tensor:
        channels_last(self, x)
        return self._reduce(x, axis=(1, 2), keepdims=self.keepdims)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """``(batch, h, w, c)`` -> ``(batch, c)``: the maximum over height and width."""

    _reduce = staticmethod(ops.max)


MaxPool2D = MaxPooling2D  # Keras' aliases
AvgPool2D = AveragePooling2D
