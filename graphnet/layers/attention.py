"""Attention layers in Keras' spirit: MultiHeadAttention (learned Q, K, V and output
projections around the fused ``gn.attention`` node) and the plain dot-product Attention.

Both take ``layer(query)`` (self-attention), ``layer([query, value])`` or
``layer([query, value, key])`` and the call options ``use_causal_mask`` and
``return_attention_scores``; with the latter they return ``(output, scores)``, the scores
built from ``gn.matmul`` and ``gn.softmax`` so they can be fetched and drawn (a branch that
programs not fetching it prune away).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, constant, fmt_shape
from .base import Layer

__all__ = ["MultiHeadAttention", "Attention"]

# added to masked scores in the composed scores branch: exp() of it is 0, and unlike -inf
# it keeps check_numerics quiet
_MASKED = -1e9


def _qvk(layer: Layer, inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(query, value, key) from ``x``, ``[query, value]`` or ``[query, value, key]``."""
    if isinstance(inputs, Tensor):
        return inputs, inputs, inputs
    xs = list(inputs)
    if len(xs) not in (2, 3):
        raise GraphError(f"{type(layer).__name__} layer {layer.name!r} takes a tensor, "
                         f"[query, value] or [query, value, key]; got {len(xs)} tensors")
    return xs[0], xs[1], xs[2] if len(xs) == 3 else xs[1]


def _shapes(layer: Layer, input_shape: Any) -> tuple[tuple, tuple, tuple]:
    shapes = [input_shape] if isinstance(input_shape, tuple) else list(input_shape)
    q, v = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    k = shapes[2] if len(shapes) > 2 else v
    for what, s in (("query", q), ("value", v), ("key", k)):
        if len(s) != 3 or None in s[1:]:
            raise GraphError(f"{type(layer).__name__} layer {layer.name!r} needs a {what} of "
                             f"shape (batch, time, features); got {fmt_shape(s)}")
    return q, v, k


def _scores(q: Tensor, k: Tensor, scale: float, causal: bool) -> Tensor:
    """softmax(scale q k^T) with the causal mask, composed from matmul and softmax."""
    perm = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    s = ops.matmul(q, ops.transpose(k, perm))
    if scale != 1.0:
        s = s * scale
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        mask = np.where(np.triu(np.ones((tq, tk), bool), 1), _MASKED, 0.0)
        s = s + constant(mask, dtype=s.dtype, name="causal_mask")
    return ops.softmax(s, -1)


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention with learned projections (Keras' layer).

    Per head h: ``Q_h = query Wq_h + bq_h``, ``K_h = key Wk_h + bk_h``, ``V_h = value Wv_h +
    bv_h``, ``O_h = softmax(Q_h K_h^T / sqrt(key_dim)) V_h``; the output is
    ``sum_h O_h Wo_h + bo``. Inputs ``(batch, T, features)``; output
    ``(batch, Tq, output_shape or query features)``; scores ``(batch, heads, Tq, Tk)``.

    Weights in Keras' layouts and order: ``query/kernel (dq, heads, key_dim)``,
    ``query/bias (heads, key_dim)``, the same for ``key`` and for ``value`` (with
    ``value_dim``), ``attention_output/kernel (heads, value_dim, out)`` and its bias
    ``(out,)``. The graph views each kernel as the 2-D ``(d, heads * key_dim)`` matrix of
    one dense node (a free reshape; head h owns columns ``h*key_dim ...``). PyTorch's
    ``nn.MultiheadAttention(E, H, batch_first=True)``: ``Wq = in_proj_weight[:E]`` gives
    ``query/kernel = Wq.T.reshape(E, H, E // H)`` (K, V likewise) and ``out_proj.weight``
    gives ``attention_output/kernel = out_proj.weight.T.reshape(H, E // H, E)``.
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None,
                 use_bias: bool = True, output_shape: int | Sequence[int] | None = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if int(num_heads) <= 0 or int(key_dim) <= 0 or (value_dim is not None
                                                         and int(value_dim) <= 0):
            raise GraphError(f"MultiHeadAttention needs positive num_heads, key_dim and "
                             f"value_dim; got {num_heads!r}, {key_dim!r}, {value_dim!r}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self._value_dim_arg = value_dim
        if output_shape is not None and not isinstance(output_shape, (int, np.integer)):
            dims = tuple(output_shape)
            if len(dims) != 1:
                raise GraphError(f"output_shape must be one size (the output features), got "
                                 f"{output_shape!r}")
            output_shape = dims[0]
        # not self.output_shape: Layer keeps the output's tensor shape under that name
        self.output_dim = None if output_shape is None else int(output_shape)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.seed = seed

    def build(self, input_shape: Any) -> None:
        q, v, k = _shapes(self, input_shape)
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_dim or q[-1]
        # one seed per kernel, so that the query and key projections differ
        seeds = [None if self.seed is None else self.seed + i for i in range(4)]
        self.query_kernel, self.query_bias = self._pair("query", (q[-1], h, kd), seeds[0])
        self.key_kernel, self.key_bias = self._pair("key", (k[-1], h, kd), seeds[1])
        self.value_kernel, self.value_bias = self._pair("value", (v[-1], h, vd), seeds[2])
        self.output_kernel, self.output_bias = self._pair("attention_output", (h, vd, out),
                                                          seeds[3])

    def _pair(self, name: str, shape: tuple, seed: int | None) -> tuple:
        kernel = self.add_weight(f"{name}/kernel", shape, self.kernel_initializer, seed=seed)
        bias = self.add_weight(f"{name}/bias", shape[1:] if name != "attention_output"
                               else shape[-1:], self.bias_initializer) if self.use_bias else None
        return kernel, bias

    def _heads(self, x: Tensor, kernel: Tensor, bias: Tensor | None, depth: int) -> Tensor:
        """x (batch, T, d) projected and split: (batch, heads, T, depth)."""
        n = self.num_heads * depth
        w = ops.reshape(kernel, (kernel.shape[0], n))
        b = ops.reshape(bias, (n,)) if bias is not None else None
        p = ops.reshape(ops.dense(x, w, b), (-1, x.shape[1], self.num_heads, depth))
        return ops.transpose(p, (0, 2, 1, 3))

    def call(self, inputs: Tensor | Sequence[Tensor], use_causal_mask: bool = False,
             return_attention_scores: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        query, value, key = _qvk(self, inputs)
        q = self._heads(query, self.query_kernel, self.query_bias, self.key_dim)
        k = self._heads(key, self.key_kernel, self.key_bias, self.key_dim)
        v = self._heads(value, self.value_kernel, self.value_bias, self.value_dim)
        o = ops.attention(q, k, v, causal=use_causal_mask)  # (batch, heads, Tq, value_dim)
        n = self.num_heads * self.value_dim
        o = ops.reshape(ops.transpose(o, (0, 2, 1, 3)), (-1, query.shape[1], n))
        wo = ops.reshape(self.output_kernel, (n, self.output_kernel.shape[-1]))
        out = ops.dense(o, wo, self.output_bias)
        if return_attention_scores:
            return out, _scores(q, k, 1.0 / math.sqrt(self.key_dim), use_causal_mask)
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self._value_dim_arg, "use_bias": self.use_bias,
                "output_shape": self.output_dim,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "seed": self.seed}


class Attention(Layer):
    """Dot-product attention without projections (Keras' ``Attention``):
    ``softmax(scale query key^T) value``, ``scale`` 1, or a learned scalar (initially 1)
    with ``use_scale=True``. Query and key need the same features. Only ``score_mode="dot"``.
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", **kw: Any) -> None:
        super().__init__(**kw)
        if score_mode != "dot":
            raise GraphError(f"Attention supports score_mode='dot' only, got {score_mode!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode

    def build(self, input_shape: Any) -> None:
        _shapes(self, input_shape)
        self.scale = self.add_weight("scale", (), "ones") if self.use_scale else None

    def call(self, inputs: Tensor | Sequence[Tensor], use_causal_mask: bool = False,
             return_attention_scores: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        query, value, key = _qvk(self, inputs)
        # a learned scale multiplies the scores; scaling the queries is the same product
        q = query * self.scale if self.scale is not None else query
        out = ops.attention(q, key, value, causal=use_causal_mask, scale=1.0)
        if return_attention_scores:
            return out, _scores(q, key, 1.0, use_causal_mask)
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode}
