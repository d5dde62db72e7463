"""The ONNX converter table and the ``Emitter`` every converter writes through.

A converter turns one graphnet node into ONNX nodes and initializers: a small function
``fn(e, t, xs) -> str`` registered by op name with ``@converts("dense")``, where ``e`` is the
Emitter, ``t`` the graphnet Tensor and ``xs`` the ONNX value names of its inputs; it returns
the ONNX value name that holds ``t``'s result. A new op adds one converter; an op without
one makes the export raise a GraphError before anything is written.

The Emitter names what a converter adds after the node it converts: helper nodes and values
``<node name>/<OpType>`` (``conv1/conv2d/Transpose``), the node that produces the result gets
the graphnet name itself (``conv1/conv2d``), so Netron shows graphnet's scopes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor

Converter = Callable[["Emitter", Tensor, list[str]], str]

# op name -> converter; filled by graphnet.export.converters on import
CONVERTERS: dict[str, Converter] = {}


def converts(*op_names: str) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the ONNX converter of the graphnet ops ``op_names``."""
    def register(fn: Converter) -> Converter:
        for n in op_names:
            CONVERTERS[n] = fn
        return fn
    return register


class Emitter:
    """Collects the ONNX nodes and initializers of one export (onnx is imported lazily, so
    graphnet imports without it)."""

    def __init__(self) -> None:
        import onnx.helper
        import onnx.numpy_helper
        self._helper = onnx.helper
        self._numpy_helper = onnx.numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self.tensor: Tensor | None = None  # the graphnet node being converted
        self._readers: dict[int, list[Tensor]] = {}
        # NHWC value -> the NCHW value it was transposed from (see converters._nchw)
        self.layouts: dict[str, str] = {}

    def set_nodes(self, nodes: Sequence[Tensor], outputs: Sequence[Tensor]) -> None:
        """The exported graphnet nodes and outputs: their names are kept for them, and
        ``readers`` tells a converter which of them read a node (None: an output)."""
        self._used.update(t.name for t in nodes)
        for t in outputs:
            self._readers.setdefault(id(t), []).append(None)
        for t in nodes:
            for x in t.inputs:
                self._readers.setdefault(id(x), []).append(t)

    def readers(self, t: Tensor) -> list[Tensor | None]:
        return list(self._readers.get(id(t), []))

    # -- names ------------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    # -- building ---------------------------------------------------------------------------
    def node(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any
             ) -> str | list[str]:
        """Add one ONNX node reading ``inputs`` ("" for an absent optional input); returns
        its output name (or names, when ``n_out > 1``). ``None`` attributes are left out."""
        base = f"{self.tensor.name}/{op_type}" if self.tensor is not None else op_type
        name = self.unique(base)
        outs = [name] + [self.unique(f"{name}:{i}") for i in range(1, n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self._helper.make_node(op_type, list(inputs), outs, name=name,
                                                 **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value: Any, dtype: Any = None, name: str | None = None,
              base: str | None = None) -> str:
        """An initializer holding ``value``: named ``name`` exactly (a graphnet Parameter's
        or constant's own name), or ``base`` made unique (a re-laid-out weight), or after
        the node being converted (small helper constants are shared)."""
        arr = np.asarray(value, dtype=dtype)
        key = None
        if name is None and base is None and arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        n = name or self.unique(base or (f"{self.tensor.name}/const" if self.tensor is not None
                                         else "const"))
        self.initializers.append(self._numpy_helper.from_array(arr.copy(order="C"), n))
        if key is not None:
            self._consts[key] = n
        return n

    def ints(self, values: Sequence[int]) -> str:
        """An int64 1-D initializer (axes, shapes, pads given as inputs)."""
        return self.const(np.asarray(list(values), dtype=np.int64))

    def convert(self, t: Tensor, xs: list[str]) -> str:
        """Run ``t``'s converter; the node producing its result is renamed to ``t.name``."""
        fn = CONVERTERS.get(t.op.name)
        if fn is None:
            raise GraphError(f"{t.op.name} node {t.name!r} has no ONNX converter")
        self.tensor, first = t, len(self.nodes)
        try:
            out = fn(self, t, xs)
        finally:
            self.tensor = None
        mine = self.nodes[first:]
        if mine and out == mine[-1].output[0]:
            last = mine[-1]
            for n in mine:
                for i, v in enumerate(n.input):
                    if v == out:
                        n.input[i] = t.name
            last.output[0] = t.name
            last.name = t.name
            if out in self.layouts:
                self.layouts[t.name] = self.layouts.pop(out)
            out = t.name
        return out

    def prune(self, outputs: Sequence[str]) -> None:
        """Drop the nodes nothing reads (the NHWC Transposes the next conv skipped)."""
        live = set(outputs)
        keep = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.output):
                keep.append(n)
                live.update(n.input)
        self.nodes = keep[::-1]
        self.initializers = [i for i in self.initializers if i.name in live]
