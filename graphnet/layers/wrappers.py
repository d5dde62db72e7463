"""Layer wrappers: ``Bidirectional``, a recurrent layer run forward and backward over time.

As Keras 3: ``Bidirectional(layer, merge_mode="concat")`` makes two copies of ``layer`` from
its config, ``forward_<name>`` and ``backward_<name>`` (the latter with ``go_backwards``
flipped), or takes the ``backward_layer`` given. The backward copy's sequence output comes
out in reversed time order; with ``return_sequences`` it is reversed back before the merge,
so that step t of both halves saw x_t. ``merge_mode``: "concat" (features side by side),
"sum", "mul", "ave", or None (a list of both). With the layer's ``return_state`` the call
returns ``[output(s), *forward states, *backward states]``; ``initial_state`` takes the
forward states then the backward ones. The weights are the forward copy's then the backward
copy's (Keras' order), keyed ``bidirectional/forward_lstm/kernel``...; the copies' nodes are
the wrapper's (one layer in a model, its summary and drawing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import ops
from ..core.errors import GraphError
from ..core.tensor import Tensor
from .base import Layer, deserialize, serialize
from .recurrent import _Recurrent

__all__ = ["Bidirectional"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """A recurrent layer (SimpleRNN, LSTM, GRU) run over the sequence both ways, merged."""

    def __init__(self, layer: _Recurrent, merge_mode: str | None = "concat",
                 backward_layer: _Recurrent | None = None, **kw: Any) -> None:
        if not isinstance(layer, _Recurrent):
            raise GraphError(f"Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU), "
                             f"got {layer!r}")
        if merge_mode not in MERGE_MODES:
            raise GraphError(f"Bidirectional merge_mode must be one of {list(MERGE_MODES)}, "
                             f"got {merge_mode!r}")
        kw.setdefault("dtype", layer.dtype.name)
        super().__init__(**kw)
        self.layer = layer
        self.merge_mode = merge_mode
        cfg = layer.get_config()
        self.forward_layer = type(layer).from_config({**cfg, "name": f"forward_{cfg['name']}"})
        self._given_backward = backward_layer is not None
        if backward_layer is None:
            back = {**cfg, "name": f"backward_{cfg['name']}",
                    "go_backwards": not layer.go_backwards}
            if cfg.get("seed") is not None:  # its own initial weights
                back["seed"] = cfg["seed"] + 2
            backward_layer = type(layer).from_config(back)
        elif not isinstance(backward_layer, _Recurrent):
            raise GraphError(f"Bidirectional's backward_layer must be a recurrent layer, got "
                             f"{backward_layer!r}")
        else:
            for what in ("go_backwards", "return_sequences", "return_state"):
                same = getattr(backward_layer, what) == getattr(layer, what)
                if same != (what != "go_backwards"):
                    raise GraphError(f"Bidirectional's backward_layer must have "
                                     f"{'the opposite' if what == 'go_backwards' else 'the same'}"
                                     f" {what} as the forward layer")
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def __call__(self, inputs: Tensor | Sequence[Tensor],
                 initial_state: Tensor | Sequence[Tensor] | None = None, **kw: Any) -> Any:
        if initial_state is not None:  # the states become inputs, so saved models rebuild them
            states = [initial_state] if isinstance(initial_state, Tensor) else list(initial_state)
            inputs = [inputs, *states]
        return super().__call__(inputs, **kw)

    def call(self, inputs: Tensor | list[Tensor]) -> Any:
        x, *states = inputs if isinstance(inputs, list) else [inputs]
        n = len(self.forward_layer.STATES)
        if states and len(states) != 2 * n:
            raise GraphError(f"Bidirectional layer {self.name!r} takes initial_state as "
                             f"{2 * n} tensors (the forward layer's {n}, then the backward "
                             f"layer's), got {len(states)}")
        g = x.graph
        start = len(g.nodes)
        fwd = self.forward_layer(x, initial_state=states[:n] or None)
        bwd = self.backward_layer(x, initial_state=states[n:] or None)
        for t in g.nodes[start:]:
            t.layer = self  # one layer in the model: Keras' weights, one box in drawings
        if not self.weights:
            for sub in (self.forward_layer, self.backward_layer):
                self.weights += sub.weights
                self._weight_names += [f"{sub.name}/{w}" for w in sub._weight_names]
                self.losses += sub.losses
        f_states, b_states = [], []
        if self.return_state:
            fwd, *f_states = fwd
            bwd, *b_states = bwd
        if self.return_sequences:
            bwd = bwd[:, ::-1, :]  # back in the input's time order
        if self.merge_mode is None:
            out = [fwd, bwd]
        elif self.merge_mode == "concat":
            out = [ops.concatenate([fwd, bwd], axis=fwd.ndim - 1)]
        elif self.merge_mode == "sum":
            out = [fwd + bwd]
        elif self.merge_mode == "mul":
            out = [fwd * bwd]
        else:  # ave
            out = [(fwd + bwd) * 0.5]
        outs = out + f_states + b_states
        return outs[0] if len(outs) == 1 else outs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize(self.layer),
                "merge_mode": self.merge_mode,
                "backward_layer": serialize(self.backward_layer) if self._given_backward
                else None}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Bidirectional:
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)
