"""Pooling layers (Keras' names and arguments): windowed max and average pooling, and their
global forms, over images (2D: height and width) and sequences (1D: time).

graphnet computes channels-last; ``data_format="channels_first"`` (Keras' NCHW / NCT) is
accepted by the layers that say so, and runs as a transpose to channels-last, the op, and a
transpose back (``to_channels_last`` / ``from_channels_last``, shared with the conv layers).
A 1D layer runs the 2D op on ``(batch, 1, time, channels)``, a free reshape.
"""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from ..ops.base import pair
from ..ops.pooling import PADDINGS
from .base import Layer

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPooling1D", "MaxPool1D",
           "AveragePooling1D", "AvgPool1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D"]

FORMATS = ("channels_last", "channels_first")


def data_format_of(layer: Layer, data_format: str | None,
                   channels_first: bool = False) -> str:
    """Keras' ``data_format`` argument (None: channels-last): "channels_last", or
    "channels_first" where the layer supports it (``channels_first=True``); else a
    GraphError naming the layer."""
    fmt = "channels_last" if data_format is None else str(data_format).lower()
    if fmt not in FORMATS:
        raise GraphError(f"{type(layer).__name__}: data_format must be 'channels_last' or "
                         f"'channels_first', got {data_format!r}")
    if fmt == "channels_first" and not channels_first:
        raise GraphError(f"{type(layer).__name__}: graphnet runs this layer channels-last only "
                         f"(NHWC); got data_format={data_format!r}")
    return fmt


def to_channels_last(x: Tensor, data_format: str) -> Tensor:
    """``(batch, channels, *spatial)`` -> ``(batch, *spatial, channels)`` for channels-first
    data; channels-last data passes unchanged."""
    if data_format != "channels_first":
        return x
    return ops.transpose(x, (0, *range(2, x.ndim), 1))


def from_channels_last(y: Tensor, data_format: str) -> Tensor:
    """The inverse of ``to_channels_last``: back to the layer's data format."""
    if data_format != "channels_first":
        return y
    return ops.transpose(y, (0, y.ndim - 1, *range(1, y.ndim - 1)))


def channels_last(layer: Layer, x: Tensor, rank: int = 2,
                  data_format: str = "channels_last") -> None:
    """Refuse anything but ``rank + 2``-D inputs, naming the layer, the layout and the shape."""
    if x.ndim != rank + 2:
        dims = "(batch, height, width, channels)" if rank == 2 else "(batch, time, channels)"
        if data_format == "channels_first":
            dims = "(batch, channels, " + dims[len("(batch, "):-len(", channels)")] + ")"
        raise GraphError(f"{type(layer).__name__} layer {layer.name!r} expects "
                         f"{data_format.replace('_', '-')} {dims} inputs; got "
                         f"{fmt_shape(x.shape)}")


def single(v: Any, what: str) -> int:
    """An int or a one-int tuple as a positive int (Keras' 1D ``pool_size``, ``strides``)."""
    p = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(p) != 1:
        raise GraphError(f"{what} must be a positive int or a 1-tuple, got {v!r}")
    return pair((p[0], 1), what)[0]


class MaxPooling2D(Layer):
    """The maximum over ``pool_size`` windows moved by ``strides`` (default: the pool size);
    ``padding`` "valid" or "same" (TensorFlow's: padded cells never win)."""

    _pool = staticmethod(ops.max_pool2d)
    _rank = 2

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid",
                 data_format: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        size = pair if self._rank == 2 else single
        self.pool_size = size(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else size(strides, "strides")
        self.padding = str(padding).lower()
        if self.padding not in PADDINGS:
            raise GraphError(f"{type(self).__name__} padding must be 'valid' or 'same', "
                             f"got {padding!r}")
        self.data_format = data_format_of(self, data_format, channels_first=True)

    def call(self, x: Tensor) -> Tensor:
        channels_last(self, x, self._rank, self.data_format)
        x = to_channels_last(x, self.data_format)
        if self._rank == 2:
            y = self._pool(x, self.pool_size, self.strides, self.padding)
        else:  # (batch, time, c) as a one-row image
            t = ops.reshape(x, (-1, 1, *x.shape[1:]))
            y = self._pool(t, (1, self.pool_size), (1, self.strides), self.padding)
            y = ops.reshape(y, (-1, *y.shape[2:]))
        return from_channels_last(y, self.data_format)

    def get_config(self) -> dict[str, Any]:
        listed = list if self._rank == 2 else int
        return {**super().get_config(), "pool_size": listed(self.pool_size),
                "strides": listed(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class AveragePooling2D(MaxPooling2D):
    """The mean over ``pool_size`` windows; with "same" padding each window divides by its
    count of real cells (TensorFlow's rule)."""

    _pool = staticmethod(ops.avg_pool2d)


class MaxPooling1D(MaxPooling2D):
    """The maximum over ``pool_size`` steps of ``(batch, time, channels)`` sequences, moved
    by ``strides`` (default: the pool size); "valid" or "same" padding."""

    _rank = 1

    def __init__(self, pool_size: int = 2, strides: int | None = None, padding: str = "valid",
                 data_format: str | None = None, **kw: Any) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kw)


class AveragePooling1D(MaxPooling1D):
    """The mean over ``pool_size`` steps of ``(batch, time, channels)`` sequences."""

    _pool = staticmethod(ops.avg_pool2d)


class GlobalAveragePooling2D(Layer):
    """``(batch, h, w, c)`` -> ``(batch, c)``: the mean over height and width (``keepdims``
    keeps them as 1s)."""

    _reduce = staticmethod(ops.mean)
    _rank = 2

    def __init__(self, data_format: str | None = None, keepdims: bool = False,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.data_format = data_format_of(self, data_format, channels_first=True)
        self.keepdims = bool(keepdims)

    def call(self, x: Tensor) -> Tensor:
        channels_last(self, x, self._rank, self.data_format)
        first = 2 if self.data_format == "channels_first" else 1
        return self._reduce(x, axis=tuple(range(first, first + self._rank)),
                            keepdims=self.keepdims)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims,
                "data_format": self.data_format}


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """``(batch, h, w, c)`` -> ``(batch, c)``: the maximum over height and width."""

    _reduce = staticmethod(ops.max)


class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """``(batch, time, c)`` -> ``(batch, c)``: the mean over time."""

    _rank = 1


class GlobalMaxPooling1D(GlobalMaxPooling2D):
    """``(batch, time, c)`` -> ``(batch, c)``: the maximum over time."""

    _rank = 1


MaxPool2D = MaxPooling2D  # Keras' aliases
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
