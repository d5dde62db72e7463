"""``gn.onnx.export``: a graphnet graph as an ONNX model (the file Netron and every
deployment runtime read).

The inference graph only: the outputs and what they read, dropout removed; Parameters and
constants become initializers; the batch axis (None) is the dynamic dimension "batch"; node
names are graphnet's scoped names. The op converters live in ``converters.py``, one per op
(the table ``CONVERTERS``). The whole model is built in memory first, so an op without a
converter raises a GraphError before any file exists, and the file is written to a
temporary name and renamed into place. ``onnx`` is imported only when exporting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..core.errors import GraphError
from ..core.files import atomic_write
from ..core.tensor import Tensor
from . import converters as _converters  # fills CONVERTERS
from .emitter import CONVERTERS, Emitter

__all__ = ["export", "to_model", "OPSET", "CONVERTERS"]

OPSET = 18  # reductions take their axes as an input from opset 18 on
# ops whose output's first None is a data-dependent length, not the batch
_DATA_LENGTH = ("non_max_suppression",)


def _as_list(ts: Tensor | Sequence[Tensor], what: str) -> list[Tensor]:
    out = [ts] if isinstance(ts, Tensor) else list(ts)
    for t in out:
        if not isinstance(t, Tensor):
            raise GraphError(f"gn.onnx.export: {what} must be gn Tensors, got {t!r}")
    return out


def _value_info(helper: Any, name: str, t: Tensor, batch: bool) -> Any:
    dims = [("batch" if i == 0 and batch else None) if d is None else d
            for i, d in enumerate(t.shape)]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)


def to_model(outputs: Tensor | Sequence[Tensor], inputs: Sequence[Tensor] | None = None,
             name: str = "graphnet") -> Any:
    """The ``onnx.ModelProto`` of the graph from ``inputs`` to ``outputs`` (not written)."""
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ImportError("the ONNX export needs the onnx package: pip install "
                          "'graphnet[onnx]' (or pip install onnx onnxruntime)") from None

    outs = _as_list(outputs, "outputs")
    if not outs:
        raise GraphError("gn.onnx.export needs at least one output")
    g = outs[0].graph
    nodes = g.ancestors(outs, stop=inputs or ())
    ins = _as_list(inputs, "inputs") if inputs is not None else \
        [t for t in nodes if t.kind == "input"]
    ids = {id(t) for t in ins}
    for t in ins:
        if t.kind != "input":
            raise GraphError(f"gn.onnx.export: input {t.name!r} is a {t.kind} node; inputs "
                             "must be made by gn.Input")
    stray = [t.name for t in nodes if t.kind == "input" and id(t) not in ids]
    if stray:
        raise GraphError(f"gn.onnx.export: the outputs read inputs {stray} that are not "
                         f"among the inputs {[t.name for t in ins]}")
    missing = [t for t in nodes if t.kind == "op" and t.op.name not in CONVERTERS]
    if missing:
        t = missing[0]
        more = f" (and {len(missing) - 1} more nodes)" if len(missing) > 1 else ""
        hint = "; a loss belongs to training: export the model's predictions" \
            if t.op.name in _converters.TRAINING_ONLY else ""
        raise GraphError(f"cannot export to ONNX: {t.op.name} node {t.name!r} has no ONNX "
                         f"converter{more}; ops without one: "
                         f"{sorted({m.op.name for m in missing})}{hint}")

    e = Emitter()
    e.set_nodes(nodes, outs)
    names: dict[int, str] = {id(t): t.name for t in ins}
    for t in nodes:
        if id(t) in names:
            continue
        if t.kind in ("parameter", "constant"):
            names[id(t)] = e.const(t.value, name=t.name)
        elif t.kind == "op":
            names[id(t)] = e.convert(t, [names[id(x)] for x in t.inputs])
    graph_outputs, seen = [], set()
    for t in outs:
        v = names[id(t)]
        if v != t.name or v in seen:
            # an output that is another node's value (dropout's, an input) or listed twice:
            # an Identity gives it its own name
            out = t.name if v != t.name and t.name not in seen else e.unique(t.name)
            e.nodes.append(helper.make_node("Identity", [v], [out], name=out))
            v = out
        seen.add(v)
        graph_outputs.append(_value_info(helper, v, t, t.op_name not in _DATA_LENGTH))
    e.prune([o.name for o in graph_outputs])
    graph = helper.make_graph(
        e.nodes, name, [_value_info(helper, t.name, t, True) for t in ins], graph_outputs,
        initializer=e.initializers)
    model = helper.make_model(graph, producer_name="graphnet",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 9)  # readable by runtimes of 2023 on
    onnx.checker.check_model(model)
    return model


def export(outputs: Tensor | Sequence[Tensor], path: str | os.PathLike,
           inputs: Sequence[Tensor] | None = None, name: str = "graphnet") -> str:
    """Write the graph from ``inputs`` (default: every Input the outputs read) to ``outputs``
    as an ONNX file at ``path`` (atomically); returns the path. Open it in Netron
    (``netron model.onnx`` or https://netron.app) or run it in onnxruntime."""
    model = to_model(outputs, inputs, name)
    data = model.SerializeToString()
    path = os.fspath(path)
    atomic_write(path, lambda f: f.write(data), mode=0o644)
    return path
