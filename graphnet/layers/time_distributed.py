"""TimeDistributed(layer): one layer applied to every time step of ``(batch, time, ...)``.

Time is folded into the batch (a free reshape ``(batch, T, ...) -> (batch T, ...)``), the
inner layer runs once on all steps, and the result is unfolded (``-> (batch, T, ...)``): the
same weights at every step, as in Keras. The inner layer's nodes and weights belong to the
wrapper (drawn inside it, saved under its name: ``time_distributed/kernel``).
"""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from .base import Layer, deserialize, serialize

__all__ = ["TimeDistributed"]


class TimeDistributed(Layer):
    """``y[:, t] = layer(x[:, t])`` for every step t; ``layer`` any one-input, one-output
    layer (Dense, Conv2D on frames, ...); weights those of ``layer``, in its order."""

    def __init__(self, layer: Layer, **kw: Any) -> None:
        super().__init__(**kw)
        if not isinstance(layer, Layer):
            raise GraphError(f"TimeDistributed wraps a layer, got {layer!r}")
        if layer.built:
            raise GraphError(f"TimeDistributed needs an unbuilt layer; {layer.name!r} was "
                             "already called")
        self.layer = layer

    def build(self, input_shape: Any) -> None:
        if not isinstance(input_shape, tuple):
            raise GraphError(f"TimeDistributed layer {self.name!r} takes one input, got "
                             f"{len(input_shape)}")
        if len(input_shape) < 3 or None in input_shape[1:]:
            raise GraphError(f"TimeDistributed layer {self.name!r} expects (batch, time, ...) "
                             f"of rank 3 or more with known sizes; got "
                             f"{fmt_shape(input_shape)}")

    def call(self, x: Tensor) -> Tensor:
        steps = x.shape[1]
        folded = ops.reshape(x, (-1, *x.shape[2:]), fold_batch=True)
        start = len(x.graph.nodes)
        y = self.layer(folded)
        if not isinstance(y, Tensor):
            raise GraphError(f"TimeDistributed layer {self.name!r}: the inner layer "
                             f"{self.layer.name!r} must give one tensor")
        for t in x.graph.nodes[start:]:  # the inner nodes are drawn and saved as ours
            t.layer = self
        self.weights, self._weight_names = self.layer.weights, self.layer._weight_names
        self.losses = self.layer.losses
        return ops.reshape(y, (-1, steps, *y.shape[1:]), fold_batch=True)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimeDistributed:
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)
