"""Embedding and PositionalEncoding: token ids to learned vectors, and where each token sits.

``Embedding`` keeps Keras' layout, ``embeddings (input_dim, output_dim)`` (PyTorch's
``nn.Embedding.weight`` unchanged). A Sequential model that starts with it makes an int64
Input. ``PositionalEncoding`` adds the fixed sinusoids of ``gn.positional_encoding``.
"""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, constant, fmt_shape
from . import regularizers as _regularizers
from .base import Layer

__all__ = ["Embedding", "PositionalEncoding"]


class Embedding(Layer):
    """Integer ids ``(batch, ...)`` -> rows of ``embeddings``: ``(batch, ..., output_dim)``.

    ``input_dim`` is the vocabulary size (ids in ``0..input_dim-1``); the table starts
    uniform in [-0.05, 0.05] as in Keras. Its gradient is a scatter-add of the rows used.
    """

    input_dtype = "int64"

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, seed: int | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        if int(input_dim) <= 0 or int(output_dim) <= 0:
            raise GraphError(f"Embedding needs positive input_dim and output_dim, got "
                             f"{input_dim!r} and {output_dim!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.seed = seed

    def build(self, input_shape: tuple) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          self.embeddings_regularizer, seed=self.seed)

    def call(self, ids: Tensor) -> Tensor:
        return ops.embedding(ids, self.embeddings)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": _regularizers.serialize(self.embeddings_regularizer),
                "seed": self.seed}


class PositionalEncoding(Layer):
    """``x + PE`` for ``x (batch, T, d)``: the sinusoidal encoding of Vaswani et al.
    (``gn.positional_encoding(T, d)``) added as a constant, so that attention, which sees a
    set of tokens, can tell their order. No weights."""

    def call(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or None in x.shape[1:]:
            raise GraphError(f"PositionalEncoding layer {self.name!r} needs inputs (batch, "
                             f"time, features); got {fmt_shape(x.shape)}")
        _, t, d = x.shape
        pe = ops.positional_encoding(t, d, dtype=x.dtype)
        return x + constant(pe, dtype=x.dtype, name="positional_encoding")
