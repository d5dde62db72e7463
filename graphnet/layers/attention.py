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


def _axes(attention_axes: Any) -> tuple[int, ...] | None:
    """Keras' ``attention_axes``: None, an int or a sequence of ints."""
    if attention_axes is None:
        return None
    if isinstance(attention_axes, (int, np.integer)):
        return (int(attention_axes),)
    if not isinstance(attention_axes, (list, tuple)) or not all(
            isinstance(a, (int, np.integer)) for a in attention_axes):
        raise GraphError(f"attention_axes must be an int, list or tuple of ints, got "
                         f"{attention_axes!r}")
    return tuple(int(a) for a in attention_axes)


def float_mask(layer: Layer, mask: Any, what: str = "attention_mask") -> Tensor:
    """A boolean/0-1 mask (Tensor or array, 1 = attend) as a float Tensor; ``what`` names it
    in the error and the constant (``attention_mask``, ``padding_mask``)."""
    if isinstance(mask, Tensor):
        if mask.dtype.kind != "f":
            raise GraphError(f"{type(layer).__name__} layer {layer.name!r}: {what} "
                             f"{mask.name!r} has dtype {mask.dtype}; declare it float32 "
                             "(gn.Input(..., dtype='float32') takes boolean feeds as 1/0)")
        return mask
    return constant(np.asarray(mask).astype(layer.dtype), dtype=layer.dtype, name=what)


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention with learned projections (Keras' layer).

    Per head h: ``Q_h = query Wq_h + bq_h``, ``K_h = key Wk_h + bk_h``, ``V_h = value Wv_h +
    bv_h``, ``O_h = softmax(Q_h K_h^T / sqrt(key_dim) + mask) V_h``; the output is
    ``sum_h O_h Wo_h + bo``. Inputs ``(batch, ..., features)`` of any rank >= 3; attention runs
    over ``attention_axes`` (Keras' default: every axis but batch and features; the others
    are batch-like and must agree between query and value), all attended positions flattened
    into one softmax as Keras normalizes them. Output ``(batch, ..., output_shape or query
    features)``; scores ``(batch, <other axes>, heads, <query attention axes>, <key
    attention axes>)``.

    Called as Keras calls it: ``mha(query, value, key=None, attention_mask=None,
    return_attention_scores=False, training=None, use_causal_mask=False)``, positionally or
    by keyword, or ``mha([query, value(, key)])`` / ``mha(x)`` (self-attention).
    ``attention_mask`` (1 or True = attend) broadcasts as Keras' does: ``(batch, T, S)`` for
    sequences, the scores' shape without the heads axis in general (missing axes inserted
    before the query attention axes). ``dropout`` drops attention probabilities in training
    (``training=False`` removes it); the returned scores are those before dropout, as in
    Keras. ``use_causal_mask`` needs a single attention axis.

    Without mask or dropout the attention is one fused ``gn.attention`` node; with them it is
    composed from matmul, add, softmax and dropout (no new kernels).

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
                 dropout: float = 0.0, use_bias: bool = True,
                 output_shape: int | Sequence[int] | None = None,
                 attention_axes: int | Sequence[int] | None = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if int(num_heads) <= 0 or int(key_dim) <= 0 or (value_dim is not None
                                                         and int(value_dim) <= 0):
            raise GraphError(f"MultiHeadAttention needs positive num_heads, key_dim and "
                             f"value_dim; got {num_heads!r}, {key_dim!r}, {value_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise GraphError(f"MultiHeadAttention dropout must be in [0, 1), got {dropout!r}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self._value_dim_arg = value_dim
        self.dropout = float(dropout)
        if output_shape is not None and not isinstance(output_shape, (int, np.integer)):
            dims = tuple(output_shape)
            if len(dims) != 1:
                raise GraphError(f"output_shape must be one size (the output features), got "
                                 f"{output_shape!r}")
            output_shape = dims[0]
        # not self.output_shape: Layer keeps the output's tensor shape under that name
        self.output_dim = None if output_shape is None else int(output_shape)
        self._axes_arg = _axes(attention_axes)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.seed = seed

    # -- calling: Keras' signature onto Layer.__call__'s one list of Tensors ---------------
    def __call__(self, query: Tensor | Sequence[Tensor], value: Tensor | None = None,
                 key: Tensor | None = None, attention_mask: Any = None,
                 return_attention_scores: bool = False, training: bool | None = None,
                 use_causal_mask: bool = False, **kw: Any) -> Any:
        if isinstance(query, Tensor):
            xs = [query] if value is None else [query, value] + ([key] if key is not None
                                                                   else [])
        else:
            xs = list(query)
            if value is not None or key is not None:
                raise GraphError(f"MultiHeadAttention layer {self.name!r}: give the inputs "
                                 "either as a list or as query, value, key; not both")
        opts: dict[str, Any] = dict(kw)
        if use_causal_mask:
            opts["use_causal_mask"] = True
        if return_attention_scores:
            opts["return_attention_scores"] = True
        if training is not None:
            opts["training"] = bool(training)
        if isinstance(attention_mask, Tensor):
            if len(xs) == 1:
                xs = xs * 2
            if len(xs) == 2:
                xs.append(xs[1])
            xs.append(attention_mask)
            opts["masked"] = True
        elif attention_mask is not None:  # an array: kept in the call's options (saved)
            opts["attention_mask"] = np.asarray(attention_mask).astype(bool).tolist()
        return super().__call__(xs[0] if len(xs) == 1 else xs, **opts)

    def _layout(self, q: tuple, v: tuple, k: tuple) -> None:
        """Check the shapes; fix the attention axes and the other (batch-like) axes."""
        name = f"MultiHeadAttention layer {self.name!r}"
        for what, s in (("query", q), ("value", v), ("key", k)):
            if len(s) < 3 or None in s[1:]:
                raise GraphError(f"{name} needs a {what} of shape (batch, ..., features), "
                                 f"rank 3 or more with known sizes; got {fmt_shape(s)}")
        if not len(q) == len(v) == len(k):
            raise GraphError(f"{name}: query {fmt_shape(q)}, value {fmt_shape(v)} and key "
                             f"{fmt_shape(k)} need one rank")
        r = len(q)
        axes = tuple(range(1, r - 1)) if self._axes_arg is None else tuple(
            a + r if a < 0 else a for a in self._axes_arg)
        if not axes or len(set(axes)) != len(axes) or not all(0 < a < r - 1 for a in axes):
            raise GraphError(f"{name}: attention_axes {self._axes_arg} must name axes between "
                             f"the batch and the features of {fmt_shape(q)}")
        self.attn_axes = tuple(sorted(axes))
        self.other_axes = tuple(a for a in range(1, r - 1) if a not in self.attn_axes)
        if [q[a] for a in self.other_axes] != [v[a] for a in self.other_axes] or \
                v[:-1] != k[:-1]:
            raise GraphError(f"{name}: query {fmt_shape(q)}, value {fmt_shape(v)} and key "
                             f"{fmt_shape(k)} must agree on the non-attention axes, and key "
                             "and value on all but the features")

    def build(self, input_shape: Any) -> None:
        shapes = [input_shape] if isinstance(input_shape, tuple) else list(input_shape)
        q, v = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
        k = shapes[2] if len(shapes) > 2 else v
        self._layout(q, v, k)
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

    def _project(self, x: Tensor, kernel: Tensor, bias: Tensor | None, depth: int) -> Tensor:
        """x (batch, ..., d) projected: (batch, ..., heads, depth), a reshape, no copy."""
        n = self.num_heads * depth
        w = ops.reshape(kernel, (kernel.shape[0], n))
        b = ops.reshape(bias, (n,)) if bias is not None else None
        return ops.reshape(ops.dense(x, w, b), (-1, *x.shape[1:-1], self.num_heads, depth))

    def _heads(self, p: Tensor, x: Tensor) -> Tensor:
        """A projection ``p`` of x split: (batch, <other>, heads, T, depth), T the attention
        positions flattened."""
        depth = p.shape[-1]
        r = x.ndim  # the heads axis of p is r - 1, its depth r
        p = ops.transpose(p, (0, *self.other_axes, r - 1, *self.attn_axes, r))
        others = [x.shape[a] for a in self.other_axes]
        t = int(np.prod([x.shape[a] for a in self.attn_axes]))
        return ops.reshape(p, (-1, *others, self.num_heads, t, depth))

    def _unheads(self, o: Tensor, query: Tensor) -> Tensor:
        """(batch, <other>, heads, Tq, value_dim) back to (batch, ..., heads * value_dim)."""
        r = query.ndim
        o = ops.reshape(o, (-1, *[query.shape[a] for a in self.other_axes], self.num_heads,
                            *[query.shape[a] for a in self.attn_axes], self.value_dim))
        perm = (0, *self.other_axes, r - 1, *self.attn_axes, r)
        o = ops.transpose(o, tuple(int(i) for i in np.argsort(perm)))
        return ops.reshape(o, (-1, *query.shape[1:-1], self.num_heads * self.value_dim))

    def _bias(self, mask: Tensor | None, causal: bool, query: Tensor, key: Tensor,
              q: Tensor, k: Tensor) -> Tensor | None:
        """The additive mask (0 attend, -1e9 not) in the flattened scores' layout."""
        n = len(self.attn_axes)
        aq = [query.shape[a] for a in self.attn_axes]
        ak = [key.shape[a] for a in self.attn_axes]
        full = (-1, *q.shape[1:-2], *aq, *ak)  # the scores, attention axes unflattened
        bias = None
        if mask is not None:
            m = float_mask(self, mask)
            rank = len(full)
            if m.ndim > rank:
                raise GraphError(f"MultiHeadAttention layer {self.name!r}: attention_mask "
                                 f"{fmt_shape(m.shape)} has more axes than the scores "
                                 f"{fmt_shape((None, *full[1:]))}")
            if m.ndim < rank:  # Keras: expand before the query attention axes
                cut = m.ndim - 2 * n
                shape = (*m.shape[:cut], *(1,) * (rank - m.ndim), *m.shape[cut:])
                m = ops.reshape(m, tuple(-1 if d is None else d for d in shape))
            bias = (m - 1.0) * (-_MASKED)
        if causal:
            tri = np.where(np.triu(np.ones((aq[0], ak[0]), bool), 1), _MASKED, 0.0)
            c = constant(tri, dtype=q.dtype, name="causal_mask")
            bias = c if bias is None else bias + c
        if bias is None:
            return None
        # broadcast onto the full scores by adding zeros of their shape, then flatten
        zeros = constant(np.zeros((1, *full[1:])), dtype=q.dtype, name="scores_shape")
        b = bias + zeros
        return ops.reshape(b, (-1 if b.shape[0] is None else b.shape[0], *q.shape[1:-1],
                               int(np.prod(ak))))

    def call(self, inputs: Tensor | Sequence[Tensor], use_causal_mask: bool = False,
             return_attention_scores: bool = False, training: bool | None = None,
             attention_mask: Any = None, masked: bool = False
             ) -> Tensor | tuple[Tensor, Tensor]:
        xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        mask = xs.pop() if masked else attention_mask
        query, value, key = _qvk(self, xs[0] if len(xs) == 1 else xs)
        pq = self._project(query, self.query_kernel, self.query_bias, self.key_dim)
        pk = self._project(key, self.key_kernel, self.key_bias, self.key_dim)
        pv = self._project(value, self.value_kernel, self.value_bias, self.value_dim)
        scale = 1.0 / math.sqrt(self.key_dim)
        if use_causal_mask and len(self.attn_axes) != 1:
            raise GraphError(f"MultiHeadAttention layer {self.name!r}: use_causal_mask needs "
                             f"one attention axis, got attention_axes {self.attn_axes}")
        wo = ops.reshape(self.output_kernel, (self.num_heads * self.value_dim,
                                              self.output_kernel.shape[-1]))
        drop = self.dropout > 0.0 and training is not False
        if (mask is None and not drop and not return_attention_scores and not self.other_axes
                and len(self.attn_axes) == 1):
            # (batch, T, heads, depth) as projected: the fused node reads each head through
            # strides, so no transpose copies the heads out and back in
            o = ops.attention(pq, pk, pv, causal=use_causal_mask, heads_last=True)
            return ops.dense(ops.reshape(o, (-1, *query.shape[1:-1],
                                             self.num_heads * self.value_dim)),
                             wo, self.output_bias)
        q, k, v = self._heads(pq, query), self._heads(pk, key), self._heads(pv, value)
        bias = self._bias(mask, use_causal_mask, query, key, q, k) \
            if mask is not None or (use_causal_mask and (drop or return_attention_scores)) \
            else None
        if bias is None and not drop:
            o = ops.attention(q, k, v, causal=use_causal_mask)  # (batch, .., heads, Tq, vd)
            scores = _scores(q, k, scale, use_causal_mask) if return_attention_scores \
                else None
        else:
            perm = (*range(k.ndim - 2), k.ndim - 1, k.ndim - 2)
            s = ops.matmul(q, ops.transpose(k, perm)) * scale
            scores = ops.softmax(s if bias is None else s + bias, -1)
            o = ops.matmul(ops.dropout(scores, self.dropout) if drop else scores, v)
        out = ops.dense(self._unheads(o, query), wo, self.output_bias)
        if return_attention_scores:
            aq = [query.shape[a] for a in self.attn_axes]
            ak = [key.shape[a] for a in self.attn_axes]
            return out, ops.reshape(scores, (-1, *q.shape[1:-2], *aq, *ak))
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self._value_dim_arg, "dropout": self.dropout,
                "use_bias": self.use_bias, "output_shape": self.output_dim,
                "attention_axes": None if self._axes_arg is None else list(self._axes_arg),
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
