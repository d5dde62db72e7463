"""TransformerEncoder: one Transformer block (Vaswani et al.) built from existing layers.

Post-norm (``normalize_first=False``, the original block and keras_hub's default)::

    x1  = LayerNorm(x + Dropout(MultiHeadAttention(x, x, mask)))
    out = LayerNorm(x1 + Dropout(Dense(d)(activation(Dense(intermediate_dim)(x1)))))

pre-norm (``normalize_first=True``)::

    x1  = x + Dropout(MultiHeadAttention(LayerNorm(x), mask))
    out = x1 + Dropout(FFN(LayerNorm(x1)))

No new op or kernel: the block calls ``MultiHeadAttention``, ``LayerNormalization`` and two
``Dense`` layers, each under its own name scope inside the block's (``<block>/attention``,
``<block>/attention_add``, ``<block>/attention_norm``, ``<block>/ffn/intermediate``,
``<block>/ffn/output``, ``<block>/ffn_add``, ``<block>/ffn_norm``). Their nodes and weights
belong to the block (one layer of the model, saved under its name), so a layer-level
drawing shows one box and ``expand_nested=True`` shows the sub-blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.tensor import Tensor, fmt_shape
from .attention import MultiHeadAttention, float_mask
from .base import Layer
from .core import Dense
from .normalization import LayerNormalization

__all__ = ["TransformerEncoder"]


class TransformerEncoder(Layer):
    """One Transformer encoder block on ``(batch, time, d)``, output ``(batch, time, d)``.

    Arguments as keras_hub's ``TransformerEncoder``: ``intermediate_dim`` (the feed-forward
    width), ``num_heads`` (must divide d; each head has ``key_dim = d // num_heads``),
    ``dropout`` (on the attention probabilities and after the attention and feed-forward
    outputs, training only), ``activation`` of the first feed-forward Dense, the layer norms'
    ``layer_norm_epsilon``, ``normalize_first`` (pre-norm) and the Dense/attention
    initializers.

    Call: ``block(x, padding_mask=None, attention_mask=None, use_causal_mask=False,
    training=None)``. ``padding_mask (batch, time)`` (1 = a real token) masks the padded keys;
    ``attention_mask (batch, time, time)`` says which keys each query may see; the causal
    mask lets step t see steps <= t only. Masks combine (a key is seen if every mask allows
    it).

    Weights (``get_weights`` order, keras_hub's): the attention's eight (``query/kernel (d,
    heads, d/heads)``, ``query/bias``, ``key/...``, ``value/...``, ``attention_output/kernel
    (heads, d/heads, d)``, ``attention_output/bias (d,)``), ``attention_norm`` gamma and
    beta ``(d,)``, ``ffn_norm`` gamma and beta ``(d,)``, ``ffn/intermediate`` kernel ``(d,
    intermediate_dim)`` and bias, ``ffn/output`` kernel ``(intermediate_dim, d)`` and bias.
    From PyTorch's ``nn.TransformerEncoderLayer(d, heads, intermediate_dim,
    batch_first=True)``: q, k, v are the three row blocks of ``self_attn.in_proj_weight``
    (mapped as in ``MultiHeadAttention``'s docstring), ``norm1`` is ``attention_norm``,
    ``norm2`` ``ffn_norm``, ``linear1.weight.T`` / ``linear2.weight.T`` the Dense kernels.
    """

    def __init__(self, intermediate_dim: int, num_heads: int, dropout: float = 0.0,
                 activation: str = "relu", layer_norm_epsilon: float = 1e-5,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 normalize_first: bool = False, seed: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if int(intermediate_dim) <= 0 or int(num_heads) <= 0:
            raise GraphError(f"TransformerEncoder needs positive intermediate_dim and "
                             f"num_heads; got {intermediate_dim!r}, {num_heads!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise GraphError(f"TransformerEncoder dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(activation, str):
            raise GraphError(f"TransformerEncoder activation must be a name ('relu', "
                             f"'gelu', ...), got {activation!r}")
        self.intermediate_dim = int(intermediate_dim)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.normalize_first = bool(normalize_first)
        self.seed = seed

    # -- calling: masks travel as inputs (Tensors) or as saved options (arrays) ------------
    def __call__(self, inputs: Tensor, padding_mask: Any = None, attention_mask: Any = None,
                 use_causal_mask: bool = False, training: bool | None = None,
                 **kw: Any) -> Any:
        xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        opts: dict[str, Any] = dict(kw)
        for what, m in (("padding_mask", padding_mask), ("attention_mask", attention_mask)):
            if isinstance(m, Tensor):
                xs.append(m)
                opts[f"{what}_input"] = True
            elif m is not None:  # an array: kept in the call's options (saved)
                opts[what] = np.asarray(m).astype(bool).tolist()
        if use_causal_mask:
            opts["use_causal_mask"] = True
        if training is not None:
            opts["training"] = bool(training)
        return super().__call__(xs[0] if len(xs) == 1 else xs, **opts)

    def build(self, input_shape: Any) -> None:
        shape = input_shape if isinstance(input_shape, tuple) else input_shape[0]
        if len(shape) != 3 or None in shape[1:]:
            raise GraphError(f"TransformerEncoder layer {self.name!r} needs inputs (batch, "
                             f"time, features) with known sizes; got {fmt_shape(shape)}")
        d = int(shape[-1])
        if d % self.num_heads:
            raise GraphError(f"TransformerEncoder layer {self.name!r}: num_heads "
                             f"{self.num_heads} must divide the features {d}")
        seeds = [None if self.seed is None else self.seed + 10 * i for i in range(3)]
        init = {"kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}
        self.attention = MultiHeadAttention(self.num_heads, d // self.num_heads,
                                            dropout=self.dropout, seed=seeds[0],
                                            name="attention", dtype=self.dtype.name, **init)
        self.attention_norm = LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                 name="attention_norm", dtype=self.dtype.name)
        self.ffn_norm = LayerNormalization(epsilon=self.layer_norm_epsilon, name="ffn_norm",
                                           dtype=self.dtype.name)
        self.intermediate = Dense(self.intermediate_dim, activation=self.activation,
                                  seed=seeds[1], name="intermediate", dtype=self.dtype.name,
                                  **init)
        self.output_dense = Dense(d, seed=seeds[2], name="output", dtype=self.dtype.name,
                                  **init)

    def sublayers(self) -> dict[str, Layer]:
        """The layers inside, by their scope below the block's (drawings label them)."""
        return {"attention": self.attention, "attention_norm": self.attention_norm,
                "ffn_norm": self.ffn_norm, "ffn/intermediate": self.intermediate,
                "ffn/output": self.output_dense}

    def _drop(self, x: Tensor, training: bool | None, k: int) -> Tensor:
        if self.dropout == 0.0 or training is False:
            return x
        return ops.dropout(x, self.dropout, seed=None if self.seed is None else self.seed + k)

    def _mask(self, x: Tensor, padding: Any, attention: Any) -> Tensor | None:
        """The combined (batch, T, T) (or broadcastable) 0/1 attention mask, or None."""
        t = x.shape[1]
        mask = None
        if padding is not None:
            p = float_mask(self, padding, "padding_mask")
            if p.ndim != 2 or p.shape[1] != t:
                raise GraphError(f"TransformerEncoder layer {self.name!r}: padding_mask must "
                                 f"be (batch, {t}), got {fmt_shape(p.shape)}")
            mask = ops.reshape(p, (-1 if p.shape[0] is None else p.shape[0], 1, t))
        if attention is not None:
            a = float_mask(self, attention, "attention_mask")
            mask = a if mask is None else mask * a
        return mask

    def call(self, inputs: Tensor | Sequence[Tensor], use_causal_mask: bool = False,
             training: bool | None = None, padding_mask_input: bool = False,
             attention_mask_input: bool = False, padding_mask: Any = None,
             attention_mask: Any = None) -> Tensor:
        xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        x = xs.pop(0)
        if padding_mask_input:
            padding_mask = xs.pop(0)
        if attention_mask_input:
            attention_mask = xs.pop(0)
        g = x.graph
        start = len(g.nodes)
        mask = self._mask(x, padding_mask, attention_mask)

        def scope(name: str) -> Any:
            return g.name_scope(name, unique=False)

        pre = self.normalize_first
        h = self.attention_norm(x) if pre else x
        a = self.attention(h, h, attention_mask=mask, use_causal_mask=use_causal_mask,
                           training=training)
        with scope("attention_add"):
            x1 = x + self._drop(a, training, 1)
        if not pre:
            x1 = self.attention_norm(x1)
        h = self.ffn_norm(x1) if pre else x1
        with scope("ffn"):
            f = self.output_dense(self.intermediate(h))
        with scope("ffn_add"):
            out = x1 + self._drop(f, training, 2)
        if not pre:
            out = self.ffn_norm(out)
        for t in g.nodes[start:]:  # the sub-layers' nodes are drawn and saved as ours
            t.layer = self
        if not self.weights:
            subs = self.sublayers()
            self.weights = [w for s in subs.values() for w in s.weights]
            self._weight_names = [f"{k}/{n}" for k, s in subs.items()
                                  for n in s._weight_names]
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads, "dropout": self.dropout,
                "activation": self.activation, "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "normalize_first": self.normalize_first, "seed": self.seed}
