"""Recurrent layers: SimpleRNN, LSTM and GRU with Keras' arguments, layouts and return
conventions.

Weights in Keras' layouts: ``kernel (features, G units)``, ``recurrent_kernel (units, G
units)``, ``bias (G units,)`` with G = 1 (SimpleRNN) or 4 (LSTM, gates i, f, c, o). To
PyTorch's ``nn.RNN`` / ``nn.LSTM``: ``weight_ih = kernel.T``, ``weight_hh =
recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0`` (the gate orders agree).

By default a layer is ONE fused node over the whole sequence (``gn.simple_rnn``,
``gn.lstm``): fast. ``unroll=True`` builds the same cell from primitive ops, one name scope
``t<k>`` per time step (``lstm/t3/...``), so drawings show the steps and
``prog.gradients()`` shows the gradient reaching each step (vanishing or exploding).
``layer(x, initial_state=[h0, c0])`` starts from given states; ``return_state=True`` returns
``[output, h_T]`` (SimpleRNN, GRU) or ``[output, h_T, c_T]`` (LSTM), as Keras does.
``go_backwards=True`` reads the sequence from its end and, as Keras, returns the outputs in
that reversed order. ``dropout`` masks the inputs and ``recurrent_dropout`` the state
``h_{t-1}`` where the recurrent kernel reads it, one mask per sequence (drawn afresh each
training step, the same at every time step: variational dropout), off at inference. With
``implementation=2`` (the default) every gate reads the same mask of x_t and the same mask
of h_{t-1}, and the layer stays ONE fused node (the recurrent mask is an input of the
node); ``implementation=1`` gives each gate's products their own masks, as Keras 3's
implementation 1, and builds the unrolled form.
``kernel_regularizer``, ``recurrent_regularizer`` and ``bias_regularizer`` add their penalties
to the model's loss, as Dense's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .. import ops
from ..core import initializers
from ..core.errors import GraphError
from ..core.initializers import initialize
from ..core.tensor import Tensor, fmt_shape
from ..ops.activation import activate
from ..ops.recurrent import RECURRENT_ACTIVATIONS
from . import regularizers as _regularizers
from .base import Layer

__all__ = ["SimpleRNN", "LSTM", "GRU"]


def _activation(layer: str, what: str, spec: str | None) -> str:
    name = "linear" if spec is None else spec
    if name not in RECURRENT_ACTIVATIONS:
        raise GraphError(f"{layer} supports {what} in {list(RECURRENT_ACTIVATIONS)} (by name), "
                         f"got {spec!r}")
    return name


class _Recurrent(Layer):
    """What SimpleRNN and LSTM share: weights, input checks, initial states, outputs."""

    GATES: ClassVar[int] = 1
    STATES: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, units: int, activation: str | None = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 return_sequences: bool = False, return_state: bool = False,
                 unroll: bool = False, seed: int | None = None, go_backwards: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, implementation: int = 2, **kw: Any) -> None:
        super().__init__(**kw)
        kind = type(self).__name__
        if int(units) <= 0:
            raise GraphError(f"{kind} needs a positive number of units, got {units!r}")
        if implementation not in (1, 2):
            raise GraphError(f"{kind} implementation must be 1 (a dropout mask per gate) or 2 "
                             f"(one mask shared by the gates), got {implementation!r}")
        self.implementation = int(implementation)
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise GraphError(f"{kind} {what} must be in [0, 1), got {rate!r}")
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.units = int(units)
        self.activation = _activation(kind, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.unroll = bool(unroll)
        self.seed = seed
        self.go_backwards = bool(go_backwards)

    def __call__(self, inputs: Tensor | Sequence[Tensor],
                 initial_state: Tensor | Sequence[Tensor] | None = None, **kw: Any) -> Any:
        # the states become inputs of the call, so that saved models rebuild them
        if initial_state is not None:
            states = [initial_state] if isinstance(initial_state, Tensor) else list(initial_state)
            inputs = [inputs, *states]
        return super().__call__(inputs, **kw)

    def _check_input(self, shape: tuple) -> None:
        if len(shape) != 3 or shape[1] is None or shape[2] is None:
            raise GraphError(f"{type(self).__name__} layer {self.name!r} needs inputs of shape "
                             f"(batch, timesteps, features) with known timesteps and features; "
                             f"got {fmt_shape(shape)}")

    def build(self, input_shape: Any) -> None:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        self._check_input(shape)
        n = self.GATES * self.units
        self.kernel = self.add_weight("kernel", (shape[2], n), self.kernel_initializer,
                                      self.kernel_regularizer, seed=self.seed)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, n), self.recurrent_initializer,
            self.recurrent_regularizer, seed=None if self.seed is None else self.seed + 1)
        self.bias = (self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                                     self.bias_regularizer)
                     if self.use_bias else None)

    def _bias_shape(self) -> tuple:
        return (self.GATES * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def call(self, inputs: Tensor | list[Tensor]) -> Any:
        x, *states = inputs if isinstance(inputs, list) else [inputs]
        self._check_input(x.shape)
        if states and len(states) != len(self.STATES):
            raise GraphError(f"{type(self).__name__} layer {self.name!r} takes initial_state "
                             f"as a list of {len(self.STATES)} tensors "
                             f"{[f'{s}0' for s in self.STATES]}, got {len(states)}")
        for name, s in zip(self.STATES, states):
            if s.ndim != 2 or s.shape[1] != self.units:
                raise GraphError(f"{type(self).__name__} layer {self.name!r}: the initial state "
                                 f"{name}0 must be (batch, {self.units}), got "
                                 f"{fmt_shape(s.shape)}")
        if self.dropout and self._n_masks() == 1:  # one mask (batch, 1, features) for all steps
            x = x * ops.reshape(self._mask(x[:, 0, :], self.dropout), (-1, 1, x.shape[2]))
        # recurrent dropout masks h_{t-1} inside the step: one mask is an input of the fused
        # node; masks per gate need the unrolled form, its masks drawn once per sequence, at
        # the first step
        unroll = self.unroll or (self.recurrent_dropout > 0 and self.implementation == 1)
        self._x_masks: list[Tensor] = []
        self._h_masks: list[Tensor] = []
        if self.go_backwards and not unroll:  # Keras: the sequence comes out reversed too
            x = x[:, ::-1, :]
        seq, finals = (self._unrolled if unroll else self._fused)(x, states or None)
        out = seq if self.return_sequences else finals[0]
        return [out, *finals] if self.return_state else out

    @staticmethod
    def _mask(like: Tensor, rate: float, width: int | None = None) -> Tensor:
        """Inverted-dropout mask of ``like``'s shape (or ``like``'s batch and ``width``
        columns): 0 or 1 / (1 - rate) while training (a fresh draw each step of training),
        ones at inference. ``like`` gives the shape only: no gradient flows back into it."""
        ones = 1.0 if width is None else np.ones(width, like.dtype)
        return ops.dropout(ops.stop_gradient(like) * 0.0 + ones, rate)

    def _n_masks(self) -> int:
        """Masks per dropout: with recurrent dropout and implementation 1 one per gate (each
        gate's product sees its own mask of x_t and of h_{t-1}), else one."""
        return self.GATES if self.recurrent_dropout > 0 and self.implementation == 1 else 1

    def _recurrent_mask(self, x: Tensor) -> Tensor | None:
        """The fused node's recurrent-dropout mask (batch, units), or None without one; x
        gives it its batch only."""
        if not self.recurrent_dropout:
            return None
        return self._mask(x[:, 0, :1], self.recurrent_dropout, self.units)

    def _masked(self, v: Tensor, k: int, rate: float, masks: list[Tensor]) -> Tensor:
        """``v`` times mask ``k`` of ``masks`` (drawn on first use), or ``v`` at rate 0."""
        if not rate:
            return v
        if not masks:
            masks += [self._mask(v, rate) for _ in range(self._n_masks())]
        return v * masks[min(k, len(masks) - 1)]

    def _gate_products(self, v: Tensor, kernel: Tensor, rate: float, masks: list[Tensor],
                       gates: Sequence[int]) -> Tensor:
        """``v @ kernel``, each gate's block of columns reading its own mask of ``v`` when
        there is one per gate (``gates`` names the blocks' gates)."""
        if not rate or self._n_masks() == 1:
            return ops.matmul(self._masked(v, 0, rate, masks), kernel)
        u = self.units
        return ops.concatenate([ops.matmul(self._masked(v, k, rate, masks),
                                           kernel[:, i * u:(i + 1) * u])
                                for i, k in enumerate(gates)], axis=1)

    def _input_product(self, xt: Tensor, bias: Tensor | None) -> Tensor:
        """``x_t W + b``; with per-gate input masks each gate's block reads its own."""
        if not (self.dropout and self._n_masks() > 1):
            return ops.dense(xt, self.kernel, bias)
        z = self._gate_products(xt, self.kernel, self.dropout, self._x_masks,
                                range(self.GATES))
        return z if bias is None else z + bias

    def _recurrent_product(self, h: Tensor, kernel: Tensor, gates: Sequence[int]) -> Tensor:
        """``h_{t-1} kernel`` with recurrent dropout's masks."""
        return self._gate_products(h, kernel, self.recurrent_dropout, self._h_masks, gates)

    def _unrolled(self, x: Tensor, states: list[Tensor] | None) -> tuple:
        """The cell step by step from primitive ops, each step in the name scope ``t<k>``."""
        g = x.graph
        carry = states or [None] * len(self.STATES)
        hs = []
        T = x.shape[1]
        for k in range(T):
            with g.name_scope(f"t{k}", unique=False):
                carry = self._step(x[:, T - 1 - k if self.go_backwards else k, :], carry)
            hs.append(carry[0])
        seq = None
        if self.return_sequences:
            u = self.units
            seq = ops.concatenate([ops.reshape(h, (-1, 1, u)) for h in hs], axis=1)
        return seq, carry

    def _step(self, xt: Tensor, carry: list) -> list:
        z = self._input_product(xt, self.bias)  # x_t W + b
        if carry[0] is not None:  # + h_{t-1} U
            z = z + self._recurrent_product(carry[0], self.recurrent_kernel, range(self.GATES))
        return self._cell(z, carry)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "unroll": self.unroll, "seed": self.seed, "go_backwards": self.go_backwards,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "implementation": self.implementation,
                **{f"{w}_regularizer": _regularizers.serialize(getattr(self, f"{w}_regularizer"))
                   for w in ("kernel", "recurrent", "bias")}}


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias)`` over ``(batch,
    timesteps, features)``; the last ``h`` (or all of them with ``return_sequences``).

    ``activation``: "tanh" (default), "relu", "sigmoid" or "linear"; ``recurrent_initializer=
    "identity"`` with ReLU is the lecture's remedy for vanishing gradients.
    """

    def _fused(self, x: Tensor, states: list[Tensor] | None) -> tuple:
        y = ops.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias,
                           states[0] if states else None, activation=self.activation,
                           mask=self._recurrent_mask(x))
        return y, [y[:, -1, :]]

    def _cell(self, z: Tensor, carry: list) -> list:
        return [activate(z, self.activation)]


class LSTM(_Recurrent):
    """Long short-term memory over ``(batch, timesteps, features)``, Keras' gates i, f, c, o:
    ``c_t = f c_{t-1} + i c~``, ``h_t = o activation(c_t)``, the gates i, f, o through
    ``recurrent_activation`` (sigmoid) and c~ through ``activation`` (tanh).

    ``unit_forget_bias=True`` starts the forget gate's bias at 1 (Keras' default), so the
    cell remembers by default early in training.
    """

    GATES = 4
    STATES = ("h", "c")

    def __init__(self, units: int, activation: str | None = "tanh",
                 recurrent_activation: str | None = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, return_sequences: bool = False,
                 return_state: bool = False, unroll: bool = False, seed: int | None = None,
                 go_backwards: bool = False, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 implementation: int = 2, **kw: Any) -> None:
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, return_sequences, return_state, unroll, seed,
                         go_backwards, dropout, recurrent_dropout, kernel_regularizer,
                         recurrent_regularizer, bias_regularizer, implementation, **kw)
        self.recurrent_activation = _activation("LSTM", "recurrent_activation",
                                                recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        u, init = self.units, self.bias_initializer

        def forget_ones(shape: tuple) -> np.ndarray:
            part = (lambda s: np.asarray(init(s))) if callable(init) else \
                (lambda s: initialize(init, s, dtype=self.dtype))
            return np.concatenate([part((u,)), np.ones(u, self.dtype), part((2 * u,))])
        return forget_ones

    def _fused(self, x: Tensor, states: list[Tensor] | None) -> tuple:
        u = self.units
        h0, c0 = states if states else (None, None)
        y = ops.lstm(x, self.kernel, self.recurrent_kernel, self.bias, h0, c0,
                     activation=self.activation, recurrent_activation=self.recurrent_activation,
                     return_cell=self.return_state, mask=self._recurrent_mask(x))
        if not self.return_state:
            return y, [y[:, -1, :]]
        # the node outputs [h | c] side by side: slice the sequence and the last states
        seq = y[:, :, :u] if self.return_sequences else None
        return seq, [y[:, -1, :u], y[:, -1, u:]]

    def _cell(self, z: Tensor, carry: list) -> list:
        u = self.units
        i = activate(z[:, :u], self.recurrent_activation)
        cc = activate(z[:, 2 * u:3 * u], self.activation)
        c = i * cc
        if carry[1] is not None:  # c_t = f c_{t-1} + i c~ (c_0 = 0 drops the first term)
            c = activate(z[:, u:2 * u], self.recurrent_activation) * carry[1] + c
        o = activate(z[:, 3 * u:], self.recurrent_activation)
        return [o * activate(c, self.activation), c]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Gated recurrent unit over ``(batch, timesteps, features)``, Keras 3's cell: gates z
    (update), r (reset), h~ (candidate) in that order along ``3 units``;
    ``h_t = z h_{t-1} + (1 - z) h~``, z and r through ``recurrent_activation`` (sigmoid), h~
    through ``activation`` (tanh).

    ``reset_after=True`` (Keras 3's default): ``h~ = act(x_t W_h + b_h + r (h_{t-1} U_h +
    b'_h))`` with a bias of two rows ``(2, 3 units)`` (input, recurrent); to PyTorch's
    ``nn.GRU`` (gates r, z, n): reorder the blocks and transpose (``weight_ih = kernel[:, [r,
    z, h]].T``, ``bias_ih = bias[0]``, ``bias_hh = bias[1]`` reordered alike).
    ``reset_after=False``: ``h~ = act(x_t W_h + b_h + (r h_{t-1}) U_h)``, bias ``(3 units,)``.
    """

    GATES = 3

    def __init__(self, units: int, activation: str | None = "tanh",
                 recurrent_activation: str | None = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, unroll: bool = False, reset_after: bool = True,
                 seed: int | None = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, implementation: int = 2, **kw: Any) -> None:
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, return_sequences, return_state, unroll, seed,
                         go_backwards, dropout, recurrent_dropout, kernel_regularizer,
                         recurrent_regularizer, bias_regularizer, implementation, **kw)
        self.recurrent_activation = _activation("GRU", "recurrent_activation",
                                                recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _fused(self, x: Tensor, states: list[Tensor] | None) -> tuple:
        y = ops.gru(x, self.kernel, self.recurrent_kernel, self.bias,
                    states[0] if states else None, activation=self.activation,
                    recurrent_activation=self.recurrent_activation, reset_after=self.reset_after,
                    mask=self._recurrent_mask(x))
        return y, [y[:, -1, :]]

    def _step(self, xt: Tensor, carry: list) -> list:
        u, h, b = self.units, carry[0], self.bias
        U = self.recurrent_kernel

        def part(t: Tensor | None, k: int) -> Tensor | None:  # gate k's block of 3 units
            return None if t is None else t[..., k * u:(k + 1) * u]

        def plus(a: Tensor, c: Tensor | None) -> Tensor:
            return a if c is None else a + c

        if self.reset_after:
            xz = self._input_product(xt, None if b is None else b[0])  # x_t W + b_in
            rec = None if b is None else b[1]  # h_{t-1} U + b_rec (h_0 = 0: the bias alone)
            if h is not None:
                rec = plus(self._recurrent_product(h, U, (0, 1, 2)), rec)
        else:
            xz = self._input_product(xt, b)
            rec = None if h is None else self._recurrent_product(h, U[:, :2 * u], (0, 1))
        z = activate(plus(part(xz, 0), part(rec, 0)), self.recurrent_activation)
        r = activate(plus(part(xz, 1), part(rec, 1)), self.recurrent_activation)
        if self.reset_after:
            inner = None if rec is None else r * part(rec, 2)
        else:
            inner = None if h is None else ops.matmul(
                r * self._masked(h, 2, self.recurrent_dropout, self._h_masks), U[:, 2 * u:])
        hh = activate(plus(part(xz, 2), inner), self.activation)
        out = (1 - z) * hh
        return [out if h is None else z * h + out]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "reset_after": self.reset_after}
