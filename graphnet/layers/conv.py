"""Convolution layers: Conv1D, Conv2D and Conv2DTranspose, in Keras' weight layouts.

Conv2D's kernel is ``(kh, kw, in, filters)``, Conv2DTranspose's ``(kh, kw, filters, in)``,
Conv1D's ``(k, in, filters)``, and the bias ``(filters,)``, as Keras stores them (whatever
the ``data_format``: channels-first data runs as transposes around the channels-last node).
Conv1D runs the conv2d node on ``(batch, 1, time, channels)`` with a ``(1, k, in, filters)``
view of its kernel (free reshapes); its "causal" padding is explicit pads on the left.
PyTorch's ``nn.Conv2d`` and ``nn.ConvTranspose2d`` weights are both
``kernel.transpose(3, 2, 0, 1)`` (NCHW images; TF's asymmetric "same" padding needs an
explicit ``F.pad`` there); ``nn.Conv1d``'s is Conv1D's ``kernel.transpose(2, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral
from typing import Any

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from ..ops.base import pair
from . import regularizers as _regularizers
from .base import Layer
from .core import _FUSED, _activation_name, get_activation
from .pooling import data_format_of, from_channels_last, single, to_channels_last

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose"]


class Conv2D(Layer):
    """``activation(conv(x, kernel) + bias)`` on ``(batch, height, width, channels)`` images;
    kernel ``(kh, kw, in, filters)``; ``padding="same"`` keeps ``ceil(n / stride)`` pixels.

    ReLU, tanh, leaky ReLU, ELU and GELU run fused in the conv node (as in Dense).
    ``data_format="channels_first"`` takes and gives ``(batch, channels, height, width)``.
    """

    _rank = 2
    _paddings: tuple[str, ...] = ("valid", "same")

    def __init__(self, filters: int, kernel_size: int | tuple, strides: int | tuple = (1, 1),
                 padding: str = "valid", data_format: str | None = None,
                 dilation_rate: int | tuple = (1, 1),
                 activation: str | Callable | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        cls = type(self).__name__
        if not isinstance(filters, Integral) or filters <= 0:
            raise GraphError(f"{cls} needs a positive number of filters, got {filters!r}")
        if str(padding).lower() not in self._paddings:
            raise GraphError(f"{cls} padding must be "
                             f"{' or '.join(repr(p) for p in self._paddings)}, got {padding!r}")
        self.filters = int(filters)
        size = pair if self._rank == 2 else single
        self.kernel_size = size(kernel_size, f"{cls} kernel_size")
        self.strides = size(strides, f"{cls} strides")
        self.padding = str(padding).lower()
        self.data_format = data_format_of(self, data_format, channels_first=True)
        self.dilation_rate = size(dilation_rate, f"{cls} dilation_rate")
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.seed = seed

    def _kernel_shape(self, channels: int) -> tuple:
        return (*self.kernel_size, channels, self.filters)

    def _op(self, x: Tensor, activation: str | None) -> Tensor:
        return ops.conv2d(x, self.kernel, self.bias, strides=self.strides,
                          padding=self.padding, dilation_rate=self.dilation_rate,
                          activation=activation)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != self._rank + 2 or None in input_shape[1:]:
            dims = ("(batch, height, width, channels)" if self._rank == 2
                    else "(batch, time, channels)")
            if self.data_format == "channels_first":
                dims = dims.replace(", channels)", ")").replace("(batch,", "(batch, channels,")
            fmt = self.data_format.replace("_", "-")
            raise GraphError(f"{type(self).__name__} expects {fmt} {dims} input; "
                             f"layer {self.name!r} got {fmt_shape(input_shape)}")
        channels = input_shape[1 if self.data_format == "channels_first" else -1]
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels),
                                      self.kernel_initializer, self.kernel_regularizer,
                                      seed=self.seed)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)

    def call(self, x: Tensor) -> Tensor:
        # ReLU and friends run in the conv node's own epilogue; sigmoid and softmax stay
        # separate nodes so that a loss can read the logits under them (as in Dense)
        act = self.activation if isinstance(self.activation, str) else None
        x = to_channels_last(x, self.data_format)
        y = self._op(x, act) if act in _FUSED else self._act(self._op(x, None))
        return from_channels_last(y, self.data_format)

    def get_config(self) -> dict[str, Any]:
        listed = list if self._rank == 2 else int
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": listed(self.kernel_size), "strides": listed(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": listed(self.dilation_rate),
                "activation": _activation_name(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}


class Conv2DTranspose(Conv2D):
    """The up-sampling adjoint of Conv2D (segmentation decoders; a Conv2D subclass, as in
    Keras): kernel ``(kh, kw, filters, in)``; ``stride * n`` pixels out for "same",
    ``stride * n + max(k - stride, 0)`` for "valid"; with ``output_padding`` p (each below
    its stride) ``(n - 1) stride + k - 2 pad + p``, pad 0 for "valid", ``k // 2`` for "same"
    (dilated k); pads placed as TensorFlow places them, equal to Keras 3 on torch in the
    tests (tests/layers/test_conv.py)."""

    def __init__(self, filters: int, kernel_size: int | tuple, strides: int | tuple = (1, 1),
                 padding: str = "valid", output_padding: int | tuple | None = None,
                 data_format: str | None = None, dilation_rate: int | tuple = (1, 1),
                 **kw: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         **kw)
        if output_padding is None:
            self.output_padding = None
        else:
            op = (output_padding,) * 2 if isinstance(output_padding, Integral) \
                else tuple(output_padding)
            if len(op) != 2 or not all(isinstance(p, Integral) and 0 <= p < s
                                       for p, s in zip(op, self.strides)):
                raise GraphError(f"Conv2DTranspose output_padding must be a non-negative int "
                                 f"or pair, each below its stride {self.strides}; got "
                                 f"{output_padding!r}")
            self.output_padding = (int(op[0]), int(op[1]))

    def _kernel_shape(self, channels: int) -> tuple:
        return (*self.kernel_size, self.filters, channels)

    def _op(self, x: Tensor, activation: str | None) -> Tensor:
        return ops.conv2d_transpose(x, self.kernel, self.bias, strides=self.strides,
                                    padding=self.padding, dilation_rate=self.dilation_rate,
                                    activation=activation, output_padding=self.output_padding)

    def get_config(self) -> dict[str, Any]:
        op = self.output_padding
        return {**super().get_config(), "output_padding": None if op is None else list(op)}


class Conv1D(Conv2D):
    """``activation(conv(x, kernel) + bias)`` on ``(batch, time, channels)`` sequences;
    kernel ``(kernel_size, in, filters)``; ``padding`` "valid", "same" or "causal" (output t
    sees inputs up to t only: ``(kernel_size - 1) dilation_rate`` zeros on the left)."""

    _rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, filters: int, kernel_size: int | tuple, strides: int | tuple = 1,
                 padding: str = "valid", data_format: str | None = None,
                 dilation_rate: int | tuple = 1, **kw: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         **kw)

    def _kernel_shape(self, channels: int) -> tuple:
        return (self.kernel_size, channels, self.filters)

    def _op(self, x: Tensor, activation: str | None) -> Tensor:
        pad = self.padding
        if pad == "causal":
            pad = ((0, 0), ((self.kernel_size - 1) * self.dilation_rate, 0))
        image = ops.reshape(x, (-1, 1, *x.shape[1:]))
        kernel = ops.reshape(self.kernel, (1, *self.kernel.shape))
        y = ops.conv2d(image, kernel, self.bias, strides=(1, self.strides), padding=pad,
                       dilation_rate=(1, self.dilation_rate), activation=activation)
        return ops.reshape(y, (-1, *y.shape[2:]))
