"""The Layer base class: a callable that builds a named subgraph and owns its Parameters.

Calling a layer on Tensors enters the inputs' graph and the layer's name scope, creates the
weights on the first call (from the input shape, as Keras does), runs ``call`` and marks every
node it made with ``tensor.layer = self`` so that drawings can cluster them. Subclasses write
``build(input_shape)`` (``add_weight``) and ``call(inputs)`` (graphnet ops), and list their
constructor arguments in ``get_config`` so that ``gn.load_model`` can rebuild them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..core.errors import GraphError
from ..core.graph import Graph
from ..core.initializers import initialize
from ..core.tensor import Parameter, Tensor, fmt_shape
from . import regularizers as _regularizers

LAYERS: dict[str, type[Layer]] = {}  # class name -> class, for gn.load_model


def _snake(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``SimpleRNN`` -> ``simple_rnn``: Keras' default layer names."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


class Layer:
    """Base class of Keras-style layers.

    Attributes after the first call: ``input_shape`` / ``output_shape`` (batch dim None),
    ``weights`` (Parameters in ``get_weights`` order), ``losses`` (regularization Tensors).
    ``input_dtype`` (class attribute) tells a Sequential model which Input to make when this
    layer comes first (int64 for embeddings).
    """

    input_dtype: ClassVar[str | None] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        LAYERS[cls.__name__] = cls

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: str = "float32",
                 input_shape: Sequence[int] | None = None) -> None:
        self._given_name = name
        self._name: str | None = name
        self.trainable = trainable
        self.dtype = np.dtype(dtype)
        self.built = False
        self.graph: Graph | None = None
        self.weights: list[Parameter] = []
        self._weight_names: list[str] = []
        self.losses: list[Tensor] = []
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        # one entry per call: (input Tensors, output Tensors); functional models read these
        self.calls: list[tuple[list[Tensor], list[Tensor]]] = []
        self.call_single: list[bool] = []  # whether each call took one Tensor (not a list)
        self.call_kwargs: list[dict[str, Any]] = []  # each call's keyword options (saved)

    # -- naming ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The layer's unique name in its graph (``dense``, ``dense_1``...), fixed on first call."""
        return self._name or _snake(type(self).__name__)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- calling --------------------------------------------------------------------------
    def __call__(self, inputs: Tensor | Sequence[Tensor], **kwargs: Any) -> Any:
        xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not xs or not all(isinstance(x, Tensor) for x in xs):
            raise GraphError(f"layer {self.name!r} must be called on gn Tensors, got {inputs!r}")
        g = xs[0].graph
        if self.graph is not None and g is not self.graph:
            raise GraphError(f"layer {self.name!r} was built in graph {self.graph.name!r} and "
                             f"cannot be called on tensors of graph {g.name!r}")
        with g:
            first = self._name is None or self.graph is None
            if first:
                self._claim_name(g)
            start = len(g.nodes)
            with g.name_scope(self.name, unique=False):
                if not self.built:
                    shapes = [x.shape for x in xs]
                    self.build(shapes[0] if isinstance(inputs, Tensor) else shapes)
                    self.built = True
                    self.input_shape = shapes[0] if isinstance(inputs, Tensor) else shapes
                out = self.call(inputs, **kwargs)
            for t in g.nodes[start:]:
                if t.layer is None:  # a sublayer called inside keeps its own nodes
                    t.layer = self
        outs = [out] if isinstance(out, Tensor) else list(out)
        if not self.calls:
            self.output_shape = out.shape if isinstance(out, Tensor) else [o.shape for o in outs]
        self.calls.append((xs, outs))
        self.call_single.append(isinstance(inputs, Tensor))
        self.call_kwargs.append(dict(kwargs))
        return out

    def _claim_name(self, g: Graph) -> None:
        """Take a unique name in ``g``: ``dense``, ``dense_1``...; a given name must be free."""
        self.graph = g
        base = self._given_name or _snake(type(self).__name__)
        full = g.unique_name(base)
        if self._given_name is not None and full != (f"{g.scope}/{base}" if g.scope else base):
            raise GraphError(f"layer name {base!r} is already used in graph {g.name!r}; "
                             "every layer of a model needs its own name")
        self._name = full.rsplit("/", 1)[-1]

    def build(self, input_shape: Any) -> None:
        """Create the weights from the input shape (batch dim None); no weights by default."""

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    # -- weights --------------------------------------------------------------------------
    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True,
                   seed: int | None = None) -> Parameter:
        """A Parameter named ``<layer>/<name>``, initialised by name (or a callable(shape))."""
        shape = tuple(int(d) for d in shape)
        if callable(initializer):
            value = np.asarray(initializer(shape), dtype=self.dtype)
        else:
            value = initialize(initializer, shape, seed=seed, dtype=self.dtype)
        p = Parameter(value, dtype=self.dtype, name=name, trainable=trainable and self.trainable)
        self.weights.append(p)
        self._weight_names.append(name)
        reg = _regularizers.get(regularizer)
        if reg is not None:
            self.losses.append(reg(p))
        return p

    @property
    def trainable_weights(self) -> list[Parameter]:
        return [w for w in self.weights if self.trainable and w.trainable]

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return [w for w in self.weights if not (self.trainable and w.trainable)]

    @property
    def weight_names(self) -> list[str]:
        """``<layer>/<weight>`` keys, as checkpoints store them."""
        return [f"{self.name}/{n}" for n in self._weight_names]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras' order and layouts (Dense: kernel (in, out), bias)."""
        return [np.array(w.value, copy=True) for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Assign all weights at once; counts and shapes are checked before anything changes."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise GraphError(f"layer {self.name!r} has {len(self.weights)} weights "
                             f"({self._weight_names}); set_weights got {len(weights)} arrays")
        arrays = []
        for p, n, v in zip(self.weights, self._weight_names, weights):
            a = np.asarray(v)
            if a.shape != p.shape:
                raise GraphError(f"layer {self.name!r} weight {n!r} has shape "
                                 f"{fmt_shape(p.shape)}; set_weights got {fmt_shape(a.shape)}")
            arrays.append(a.astype(p.dtype))
        for p, a in zip(self.weights, arrays):
            p.value = a

    def count_params(self) -> int:
        if not self.built:
            raise GraphError(f"layer {self.name!r} is not built yet; call it on an input first")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # -- saving ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-able values; subclasses add theirs."""
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable,
                               "dtype": self.dtype.name}
        if self._input_shape_arg is not None:
            cfg["input_shape"] = list(self._input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name", "config"}``, the form saved in model files."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``serialize``'s output, looking the class up in ``LAYERS``."""
    cls = LAYERS.get(spec.get("class_name", ""))
    if cls is None:
        raise GraphError(f"unknown layer class {spec.get('class_name')!r}; known layers are "
                         f"{sorted(LAYERS)} (import the module that defines custom layers)")
    return cls.from_config(dict(spec.get("config", {})))
