"""Tensor: one node of a graph, its op, its inputs, and its static shape and dtype.

Leaves are Inputs (fed at run time), Parameters (trainable values) and constants. Every other
Tensor is made by :func:`apply`, which runs the op's shape rule at build time, so a shape
mistake is a :class:`GraphError` before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from .dtypes import DEFAULT_FLOAT, as_dtype
from .errors import GraphError
from .graph import Graph

Shape = tuple  # of int | None; None marks the batch dimension


def fmt_shape(shape: Shape) -> str:
    """``(None, 784)`` style, as Keras prints shapes."""
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


class Tensor:
    """A node of a static graph (the user-facing name of a node).

    Attributes: ``op`` (None for leaves), ``inputs``, ``shape`` (``None`` for the batch
    dimension), ``dtype``, ``name`` (unique, scoped like ``dense_1/matmul``), ``scope`` (the
    layer that made it) and ``kind`` ("input", "parameter", "constant" or "op").
    """

    __array_priority__ = 1000  # so that ndarray + Tensor defers to Tensor.__radd__
    # the op functions the operators call; graphnet.ops, the floor above, sets it on import
    _ops: ClassVar[ModuleType | None] = None

    def __init__(self, graph: Graph, kind: str, op: Any, inputs: Sequence[Tensor],
                 shape: Shape, dtype, name: str) -> None:
        self.graph = graph
        self.kind = kind
        self.op = op
        self.inputs = tuple(inputs)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.scope = graph.scope
        self.layer = None  # the Layer that made this node, when one did
        graph.add(self)

    @property
    def op_name(self) -> str:
        return self.op.name if self.op is not None else self.kind

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<Tensor {self.name!r} {self.op_name} shape={fmt_shape(self.shape)} {self.dtype}>"

    @classmethod
    def use_ops(cls, ops: ModuleType) -> None:
        """Bind the operators to the op functions (called once, by ``graphnet.ops``)."""
        cls._ops = ops

    __hash__ = object.__hash__  # identity; == is left to Python so tensors work as dict keys

    # -- operators build nodes ------------------------------------------------------------
    def __add__(self, o): return self._ops.add(self, o)
    def __radd__(self, o): return self._ops.add(o, self)
    def __sub__(self, o): return self._ops.subtract(self, o)
    def __rsub__(self, o): return self._ops.subtract(o, self)
    def __mul__(self, o): return self._ops.multiply(self, o)
    def __rmul__(self, o): return self._ops.multiply(o, self)
    def __truediv__(self, o): return self._ops.divide(self, o)
    def __rtruediv__(self, o): return self._ops.divide(o, self)
    def __pow__(self, o): return self._ops.power(self, o)
    def __rpow__(self, o): return self._ops.power(o, self)
    def __matmul__(self, o): return self._ops.matmul(self, o)
    def __rmatmul__(self, o): return self._ops.matmul(o, self)
    def __neg__(self): return self._ops.negative(self)
    def __getitem__(self, idx): return self._ops.getitem(self, idx)

    def __iter__(self):
        raise TypeError(f"tensor {self.name!r} is a graph node, not a sequence; index it with "
                        "x[i] or split it with gn.getitem")

    def __bool__(self) -> bool:
        raise TypeError(f"tensor {self.name!r} has no truth value at build time; its value "
                        "exists only when a compiled program runs")

    @property
    def T(self) -> Tensor:
        return self._ops.transpose(self)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._ops.reshape(self, shape)

    def sum(self, axis=None, keepdims=False) -> Tensor:
        return self._ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False) -> Tensor:
        return self._ops.mean(self, axis=axis, keepdims=keepdims)

    # Jupyter shows tensors as drawings (graphnet.visualize, when installed)
    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from graphnet.visualize import mimebundle
        except ImportError:
            return None
        return mimebundle(self)


def _graph_of(tensors: Sequence[Tensor]) -> Graph:
    """The graph new nodes go to; tensors from another graph are refused."""
    g = Graph.current()
    for t in tensors:
        if t.graph is not g:
            raise GraphError(
                f"tensor {t.name!r} belongs to graph {t.graph.name!r}, not the current graph "
                f"{g.name!r}; build each model inside one `with gn.Graph():` block")
    return g


def apply(op: Any, inputs: Sequence[Any], name: str | None = None) -> Tensor:
    """Make the node ``op(*inputs)``, checking shapes and dtypes at build time."""
    ins = [as_tensor(x, like=inputs) for x in inputs]
    g = _graph_of(ins)
    node_name = g.unique_name(name or op.name)
    try:
        shape, dtype = op.infer(*ins)
    except GraphError as e:
        shapes = ", ".join(f"{t.name}: {fmt_shape(t.shape)} {t.dtype}" for t in ins)
        raise GraphError(f"{op.name} node {node_name!r}: {e} (inputs {shapes})") from None
    return Tensor(g, "op", op, ins, shape, dtype, node_name)


def as_tensor(x: Any, like: Sequence[Any] = ()) -> Tensor:
    """Tensors pass through; numbers and arrays become constants of a neighbour's float dtype."""
    if isinstance(x, Tensor):
        return x
    dtype = None
    for t in like:
        if isinstance(t, Tensor):
            dtype = t.dtype if t.dtype.kind == "f" else DEFAULT_FLOAT
            break
    arr = np.asarray(x)
    if dtype is None:
        dtype = arr.dtype if arr.dtype.kind == "f" else DEFAULT_FLOAT
    return constant(arr, dtype=dtype)


# -- leaves -------------------------------------------------------------------------------

def Input(shape: Sequence[int] = (), dtype="float32", name: str | None = None,
          batch: bool = True) -> Tensor:
    """A value fed at run time; ``shape`` excludes the batch dimension (shown as None)."""
    g = _graph_of(())
    full = ((None,) if batch else ()) + tuple(int(d) for d in shape)
    return Tensor(g, "input", None, (), full, as_dtype(dtype), g.unique_name(name or "input"))


class Parameter(Tensor):
    """A trainable value: given directly, or a shape and an initializer (seeded).

    ``value`` is the host NumPy array; ``data`` is the array on the device the last program
    ran on (the same object on the CPU).
    """

    def __init__(self, value=None, shape: Sequence[int] | None = None,
                 init: str = "glorot_uniform", dtype="float32", name: str | None = None,
                 trainable: bool = True, seed: int | None = None) -> None:
        from .initializers import initialize
        if value is None:
            if shape is None:
                raise GraphError("Parameter needs a value or a shape")
            value = initialize(init, tuple(int(d) for d in shape), seed=seed)
        # C order always: an orthogonal initializer's Q comes back column-major, and the
        # kernels and the optimizer's fused pass read a C array in place (a Fortran one was
        # copied at every LSTM call and every optimizer step)
        arr = np.array(value, dtype=as_dtype(dtype) if dtype else None, copy=True, order="C")
        g = _graph_of(())
        super().__init__(g, "parameter", None, (), arr.shape, arr.dtype,
                         g.unique_name(name or "param"))
        self.trainable = trainable
        self.data = arr

    @property
    def value(self) -> np.ndarray:
        d = self.data
        return d if isinstance(d, np.ndarray) else d.copy_to_host()

    @value.setter
    def value(self, v) -> None:
        v = np.asarray(v)
        if v.shape != self.shape:
            raise GraphError(f"parameter {self.name!r} has shape {fmt_shape(self.shape)}; "
                             f"cannot assign a value of shape {fmt_shape(v.shape)}")
        if isinstance(self.data, np.ndarray):
            if v is not self.data:
                self.data[...] = v
        else:
            self.data.copy_to_device(np.ascontiguousarray(v, dtype=self.dtype))


def constant(value, dtype=None, name: str | None = None) -> Tensor:
    """A fixed value baked into the graph."""
    arr = np.array(value, dtype=dtype)
    if dtype is None and arr.dtype == np.float64 and not isinstance(value, np.ndarray):
        arr = arr.astype(DEFAULT_FLOAT)  # Python floats and lists default to float32
    g = _graph_of(())
    t = Tensor(g, "constant", None, (), arr.shape, as_dtype(arr.dtype),
               g.unique_name(name or "const"))
    t.data = arr
    t.value = arr
    return t
