"""LayerNormalization and BatchNormalization with Keras 3's arguments, defaults and weights.

* ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True)``: weights
  ``[gamma, beta]`` of the normalized axes' shape (those present).
* ``BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True)``:
  weights ``[gamma, beta, moving_mean, moving_variance]``, the last two non-trainable. The
  training program (``fit``) normalizes with each batch's statistics and moves the moving
  ones, ``moving = moving momentum + batch (1 - momentum)``; evaluation and prediction use
  the moving ones. With ``trainable=False`` (at construction or set later, before
  ``compile``) the layer runs in inference mode even during fit, as in Keras 3.

The moving statistics are weights, so ``model.save`` / ``gn.load_model`` keep them. To
PyTorch: ``nn.LayerNorm(eps=epsilon)``, ``nn.BatchNorm2d(eps=epsilon, momentum=1 - momentum)``
(whose ``running_var`` is the unbiased variance, Keras' the biased one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, constant, fmt_shape
from ..ops.base import norm_axes
from . import regularizers as _regularizers
from .base import Layer

__all__ = ["LayerNormalization", "BatchNormalization"]


class _Normalization(Layer):
    """What both layers share: axis, epsilon, center/scale and the gamma/beta weights."""

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.axis = axis if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
        if float(epsilon) <= 0:
            raise GraphError(f"{type(self).__name__} needs epsilon > 0, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)

    def _axes(self, input_shape: tuple) -> tuple:
        axes = norm_axes(self.axis, len(input_shape))
        if 0 in axes:
            raise GraphError(f"{type(self).__name__} {self.name!r} cannot normalize over the "
                             f"batch axis of {fmt_shape(input_shape)} (axis={self.axis!r})")
        if any(input_shape[a] is None for a in axes):
            raise GraphError(f"{type(self).__name__} {self.name!r} needs known sizes on "
                             f"axis={self.axis!r}, got {fmt_shape(input_shape)}")
        return axes

    def _gamma_beta(self, shape: tuple) -> None:
        self.gamma = (self.add_weight("gamma", shape, self.gamma_initializer,
                                      self.gamma_regularizer) if self.scale else None)
        self.beta = (self.add_weight("beta", shape, self.beta_initializer,
                                     self.beta_regularizer) if self.center else None)

    def _given(self, shape: tuple) -> tuple[Tensor, Tensor]:
        """gamma and beta, or the fixed ones and zeros standing in for absent ones."""
        g = self.gamma if self.gamma is not None else constant(np.ones(shape, self.dtype))
        b = self.beta if self.beta is not None else constant(np.zeros(shape, self.dtype))
        return g, b

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer)}


class LayerNormalization(_Normalization):
    """Normalizes each sample over ``axis`` (an int or a list), then ``gamma * xhat + beta``
    (one fused node, ``gn.layer_norm``); gamma and beta have the normalized axes' shape."""

    def build(self, input_shape: tuple) -> None:
        self._norm_axes = self._axes(input_shape)
        self._gamma_beta(tuple(input_shape[a] for a in self._norm_axes))

    def call(self, x: Tensor) -> Tensor:
        g, b = self._given(tuple(x.shape[a] for a in self._norm_axes))
        return ops.layer_norm(x, g, b, axis=self._norm_axes, epsilon=self.epsilon)


class BatchNormalization(_Normalization):
    """Normalizes each channel (``axis``, the last by default) with the batch's statistics
    while training and the moving ones otherwise (one fused node, ``gn.batch_norm``)."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kw: Any) -> None:
        self._ops: list = []  # the batch_norm nodes' ops: trainable=False freezes them
        if not isinstance(axis, (int, np.integer)):
            raise GraphError(f"BatchNormalization takes one channel axis, got axis={axis!r}")
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kw)
        if not 0.0 <= float(momentum) <= 1.0:
            raise GraphError(f"BatchNormalization needs 0 <= momentum <= 1, got {momentum!r}")
        self.momentum = float(momentum)
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        # Keras 3: a frozen BatchNormalization runs in inference mode, in fit too
        self._trainable = bool(value)
        for op in self._ops:
            op.frozen = op.attrs["frozen"] = not self._trainable

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2:
            raise GraphError(f"BatchNormalization {self.name!r} needs inputs of shape (batch, "
                             f"..., channels), got {fmt_shape(input_shape)}")
        (self._channel,) = self._axes(input_shape)
        C = (input_shape[self._channel],)
        self._gamma_beta(C)
        self.moving_mean = self.add_weight("moving_mean", C, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", C,
                                               self.moving_variance_initializer,
                                               trainable=False)

    def call(self, x: Tensor) -> Tensor:
        g, b = self._given((x.shape[self._channel],))
        last = x.ndim - 1
        perm = list(range(x.ndim))
        if self._channel != last:  # channels first: move them last around the node
            perm[self._channel], perm[last] = last, self._channel
            x = ops.transpose(x, perm)
        y = ops.batch_norm(x, g, b, self.moving_mean, self.moving_variance,
                           momentum=self.momentum, epsilon=self.epsilon,
                           frozen=not self.trainable)
        self._ops.append(y.op)
        return ops.transpose(y, perm) if self._channel != last else y

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum,
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer)}
