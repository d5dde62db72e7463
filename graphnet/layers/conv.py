"""Convolution layers: Conv2D and Conv2DTranspose, channels-last, in Keras' weight layouts.

Conv2D's kernel is ``(kh, kw, in, filters)``, Conv2DTranspose's ``(kh, kw, filters, in)``, and
the bias ``(filters,)``, as Keras stores them; PyTorch's ``nn.Conv2d`` and
``nn.ConvTranspose2d`` weights are both ``kernel.transpose(3, 2, 0, 1)`` (NCHW images; TF's
asymmetric "same" padding needs an explicit ``F.pad`` there).
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

__all__ = ["Conv2D", "Conv2DTranspose"]


class Conv2D(Layer):
    """``activation(conv(x, kernel) + bias)`` on ``(batch, height, width, channels)`` images;
    kernel ``(kh, kw, in, filters)``; ``padding="same"`` keeps ``ceil(n / stride)`` pixels.

    ReLU, tanh, leaky ReLU, ELU and GELU run fused in the conv node (as in Dense).
    """

    def __init__(self, filters: int, kernel_size: int | tuple, strides: int | tuple = (1, 1),
                 padding: str = "valid", dilation_rate: int | tuple = (1, 1),
                 activation: str | Callable | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        cls = type(self).__name__
        if not isinstance(filters, Integral) or filters <= 0:
            raise GraphError(f"{cls} needs a positive number of filters, got {filters!r}")
        if str(padding).lower() not in ("valid", "same"):
            raise GraphError(f"{cls} padding must be 'valid' or 'same', got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, f"{cls} kernel_size")
        self.strides = pair(strides, f"{cls} strides")
        self.padding = str(padding).lower()
        self.dilation_rate = pair(dilation_rate, f"{cls} dilation_rate")
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
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise GraphError(f"{type(self).__name__} expects channels-last (batch, height, "
                             f"width, channels) input; layer {self.name!r} got "
                             f"{fmt_shape(input_shape)}")
        self.kernel = self.add_weight("kernel", self._kernel_shape(input_shape[-1]),
                                      self.kernel_initializer, self.kernel_regularizer,
                                      seed=self.seed)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)

    def call(self, x: Tensor) -> Tensor:
        # ReLU and friends run in the conv node's own epilogue; sigmoid and softmax stay
        # separate nodes so that a loss can read the logits under them (as in Dense)
        act = self.activation if isinstance(self.activation, str) else None
        if act in _FUSED:
            return self._op(x, act)
        return self._act(self._op(x, None))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "activation": _activation_name(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}


class Conv2DTranspose(Conv2D):
    """The up-sampling adjoint of Conv2D (segmentation decoders; a Conv2D subclass, as in
    Keras): kernel ``(kh, kw, filters, in)``; ``stride * n`` pixels out for "same",
    ``stride * n + max(k - stride, 0)`` for "valid"."""

    def _kernel_shape(self, channels: int) -> tuple:
        return (*self.kernel_size, self.filters, channels)

    def _op(self, x: Tensor, activation: str | None) -> Tensor:
        return ops.conv2d_transpose(x, self.kernel, self.bias, strides=self.strides,
                                    padding=self.padding, dilation_rate=self.dilation_rate,
                                    activation=activation)
