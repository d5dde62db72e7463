"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, and the merges Concatenate, Add.

Dense keeps Keras' layout, kernel ``(in, out)`` and bias ``(out,)``, so weights move to and
from Keras unchanged and to PyTorch's ``nn.Linear`` as ``weight = kernel.T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from . import regularizers as _regularizers
from .base import Layer

__all__ = ["Dense", "Activation", "Dropout", "Flatten", "Reshape", "Concatenate", "Add",
           "get_activation"]

# Activations the fused dense node applies in its own pass over the output. Sigmoid and
# softmax stay separate nodes so that cross-entropy losses can read the logits under them.
_FUSED = ("relu", "tanh", "leaky_relu", "elu", "gelu")


def get_activation(spec: str | Callable | None) -> Callable[[Tensor], Tensor]:
    """An activation by Keras' name (relu, sigmoid, tanh, softmax, ...) or a callable."""
    if spec is None or spec == "linear":
        return lambda x: x
    if callable(spec):
        return spec
    table = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
             "leaky_relu": ops.leaky_relu, "elu": ops.elu, "gelu": ops.gelu,
             "softmax": ops.softmax, "log_softmax": ops.log_softmax}
    key = str(spec).lower()
    if key not in table:
        raise GraphError(f"unknown activation {spec!r}; choose one of "
                         f"{['linear', *sorted(table)]} or pass a function")
    return table[key]


def _activation_name(spec: str | Callable | None) -> str | None:
    if spec is None or isinstance(spec, str):
        return spec
    name = getattr(spec, "__name__", None)
    if name in ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "softmax",
                "log_softmax"):
        return name
    raise GraphError(f"cannot save the custom activation {spec!r}; use an activation name")


class Dense(Layer):
    """``activation(x @ kernel + bias)`` on the last axis; kernel ``(in, units)``.

    ReLU, tanh, leaky ReLU, ELU and GELU run fused in the dense node; sigmoid and softmax stay
    separate nodes so that a cross-entropy loss can read the logits under them (stable, as
    Keras does). Inputs ``(batch, ..., in)`` use the last axis.
    """

    def __init__(self, units: int, activation: str | Callable | None = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if int(units) <= 0:
            raise GraphError(f"Dense needs a positive number of units, got {units!r}")
        self.units = int(units)
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.seed = seed

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise GraphError(f"Dense layer {self.name!r} needs inputs of shape (batch, ..., "
                             f"features); got {fmt_shape(input_shape)}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer, self.kernel_regularizer,
                                      seed=self.seed)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)

    def call(self, x: Tensor) -> Tensor:
        act = self.activation if isinstance(self.activation, str) else None
        if act in _FUSED:
            return ops.dense(x, self.kernel, self.bias, activation=act)
        return self._act(ops.dense(x, self.kernel, self.bias))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units,
                "activation": _activation_name(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}


class Activation(Layer):
    """Applies an activation by name (``"relu"``, ``"softmax"``...) or a function."""

    def __init__(self, activation: str | Callable, **kw: Any) -> None:
        super().__init__(**kw)
        self.activation = activation
        self._act = get_activation(activation)

    def call(self, x: Tensor) -> Tensor:
        return self._act(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": _activation_name(self.activation)}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of units while training, scaling the rest by 1/(1-rate).

    Only the training program (``gn.compile(..., training=True)``) drops; evaluation and
    prediction pass values through unchanged.
    """

    def __init__(self, rate: float, seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if not 0.0 <= float(rate) < 1.0:
            raise GraphError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed

    def call(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.rate, seed=self.seed) if self.rate > 0 else x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Flatten(Layer):
    """``(batch, d1, d2, ...)`` -> ``(batch, d1 * d2 * ...)``."""

    def call(self, x: Tensor) -> Tensor:
        if any(d is None for d in x.shape[1:]):
            raise GraphError(f"Flatten layer {self.name!r} needs known non-batch dimensions; "
                             f"got {fmt_shape(x.shape)}")
        return ops.reshape(x, (-1, int(np.prod(x.shape[1:], dtype=np.int64))))


class Reshape(Layer):
    """Reshape the non-batch dimensions to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kw: Any) -> None:
        super().__init__(**kw)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, x: Tensor) -> Tensor:
        size = int(np.prod(x.shape[1:], dtype=np.int64))
        target = list(self.target_shape)
        if target.count(-1) > 1:
            raise GraphError(f"Reshape layer {self.name!r}: at most one -1 in {self.target_shape}")
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if known == 0 or size % known:
                raise GraphError(f"Reshape layer {self.name!r} cannot reshape "
                                 f"{fmt_shape(x.shape)} to (None, *{self.target_shape})")
            target[target.index(-1)] = size // known
        if int(np.prod(target, dtype=np.int64)) != size:
            raise GraphError(f"Reshape layer {self.name!r} cannot reshape {fmt_shape(x.shape)} "
                             f"({size} values per sample) to {self.target_shape}")
        return ops.reshape(x, (-1, *target))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Concatenate(Layer):
    """Joins a list of Tensors along ``axis`` (the last by default)."""

    def __init__(self, axis: int = -1, **kw: Any) -> None:
        super().__init__(**kw)
        self.axis = int(axis)

    def call(self, xs: Sequence[Tensor]) -> Tensor:
        return ops.concatenate(list(xs), axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class Add(Layer):
    """The elementwise sum of a list of same-shape Tensors (residual connections)."""

    def call(self, xs: Sequence[Tensor]) -> Tensor:
        xs = list(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
