"""What a drawing shows: the nodes of a Model, Graph, Program or Tensor, grouped into boxes.

One mechanism serves every level. A node's *path* is its scoped name minus the last part
(``dense_1/matmul`` -> ``("dense_1",)``). At op level every node is an item and each path is
a cluster; at layer level (or for scopes named in ``collapse``) a whole scope becomes one
box. Time steps are path parts named ``t<k>`` (``rnn/t3/matmul``): rolled, the steps merge
into one cell with a recurrent ("t-1") edge; unrolled, each step is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphnet.core.graph import Graph
from graphnet.core.tensor import Tensor

TIME = re.compile(r"^t(\d+)$")
ROLLED = "t*"


@dataclass
class Item:
    """One drawn node: a single tensor, or a box standing for a group of tensors."""

    key: str                      # the DOT node id: a tensor name or a scope path
    tensors: list[Tensor]         # members, in build order
    cluster: tuple[str, ...]      # the clusters (scope parts) it is drawn inside
    group: bool = False           # a box for a scope (layer) rather than one node
    steps: set[int] = field(default_factory=set)  # time steps merged into it (rolled)
    step: int | None = None       # the time step of an unrolled step box
    layer: Any = None             # the Layer behind a group, when known


@dataclass
class Edge:
    src: str
    dst: str
    tensor: Tensor                # the value that flows (its shape labels the edge)
    recurrent: bool = False       # from step t-1 into step t of a rolled recurrence


@dataclass
class View:
    items: dict[str, Item]
    edges: list[Edge]
    nodes: list[Tensor]
    outputs: list[Tensor]
    key_of: dict[int, str]        # id(tensor) -> item key (hidden tensors are absent)
    has_steps: bool = False
    shared: dict[str, Item] = field(default_factory=dict)  # weight-only groups, not drawn


# -- what to draw -----------------------------------------------------------------------------

def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def ancestors(outputs: Sequence[Tensor]) -> list[Tensor]:
    """The outputs and everything they read, in build order (deterministic)."""
    return outputs[0].graph.ancestors(outputs)


def collect(obj: Any) -> tuple[list[Tensor], list[Tensor], Any, Any]:
    """``(nodes, outputs, model, backend)`` for a Model, Program, Graph, Tensor or list."""
    if isinstance(obj, Tensor):
        return ancestors([obj]), [obj], None, None
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(t, Tensor) for t in obj):
        return ancestors(list(obj)), list(obj), None, None
    if isinstance(obj, Graph):
        G = obj.to_networkx()
        sinks = [G.nodes[n]["tensor"] for n in G.nodes if G.out_degree(n) == 0]
        return list(obj.nodes), sinks, None, None
    if hasattr(obj, "order") and hasattr(obj, "outputs") and hasattr(obj, "be"):  # Program
        return list(obj.order), list(obj.outputs), None, obj.be
    if hasattr(obj, "layers") and hasattr(obj, "outputs"):  # Model
        outs = _as_list(obj.outputs)
        if not outs:
            raise TypeError("this model has no outputs yet; build it (call it on an Input or "
                            "give input_shape) before drawing it")
        return ancestors(outs), outs, obj, None
    raise TypeError(f"cannot draw {type(obj).__name__}: give a Model, Graph, Program, Tensor "
                    "or list of Tensors")


def path_of(t: Tensor) -> tuple[str, ...]:
    """The scope parts of a node's name (its clusters)."""
    parts = t.name.split("/")
    return tuple(parts[:-1])


_path_of = path_of


def split_time(path: tuple[str, ...]) -> tuple[tuple[str, ...], int | None, tuple[str, ...]]:
    """``("rnn", "t3", "gate")`` -> ``(("rnn",), 3, ("gate",))``; no step: ``(path, None, ())``."""
    for i, part in enumerate(path):
        m = TIME.match(part)
        if m:
            return path[:i], int(m.group(1)), path[i + 1:]
    return path, None, ()


def _collapsed(path: tuple[str, ...], collapse) -> tuple[str, ...] | None:
    """The scope a node collapses into under ``collapse`` (a depth or a list of scopes)."""
    if collapse is None or collapse is False or not path:
        return None
    if isinstance(collapse, bool):
        return path[:1]
    if isinstance(collapse, int):
        return path[:collapse] if len(path) >= collapse else None
    for s in _as_list(collapse):
        sp = tuple(s.strip("/").split("/"))
        if path[:len(sp)] == sp:
            return sp
    return None


def sublayer_of(layer: Any, path: Sequence[str]) -> Any:
    """The Layer drawn for scope ``path`` of ``layer``'s nodes: the layer at its own scope; in
    a composite layer (one with ``sublayers()``: scope below its own -> Layer, e.g. a
    TransformerEncoder) the sub-layer of that scope, or None for its other sub-scopes."""
    subs, name = getattr(layer, "sublayers", None), getattr(layer, "name", None)
    if not callable(subs) or name not in path:
        return layer
    rel = "/".join(path[list(path).index(name) + 1:])
    return subs().get(rel) if rel else layer


_SUFFIX = re.compile(r"_\d+$")


def repeated_blocks(nodes: list[Tensor]) -> dict[str, tuple[str, int]]:
    """Runs of top-level scopes that repeat one block (``block``, ``block_1``, ``block_2``:
    the same ops, each reading the previous): scope -> (``"block ×3"``, index in the run)."""
    scopes: dict[str, list[Tensor]] = {}
    for t in nodes:
        p = path_of(t)
        if p:
            scopes.setdefault(p[0], []).append(t)

    def sig(ts: list[Tensor]) -> tuple:
        return tuple((t.kind, t.op_name, t.shape) for t in ts)

    names = list(scopes)
    out: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(names):
        run = [names[i]]
        base = _SUFFIX.sub("", names[i])
        while i + len(run) < len(names):
            nxt = names[i + len(run)]
            prev = {id(t) for t in scopes[run[-1]]}
            if _SUFFIX.sub("", nxt) != base or sig(scopes[nxt]) != sig(scopes[run[0]]) or \
                    not any(id(s) in prev for t in scopes[nxt] for s in t.inputs):
                break
            run.append(nxt)
        if len(run) > 1:
            for k, name in enumerate(run):
                out[name] = (f"{base} ×{len(run)}", k)
        i += len(run)
    return out


def build(nodes: list[Tensor], outputs: list[Tensor], level: str = "layer", roll: bool = True,
          expand_nested: bool = False, collapse=None, model: Any = None) -> View:
    """Group ``nodes`` into drawn items and edges (see the module docstring).

    ``collapse="repeats"`` draws a run of identical blocks as one, rolled like time steps.
    """
    if level not in ("layer", "op"):
        raise ValueError(f"level must be 'layer' or 'op', not {level!r}")
    repeats = repeated_blocks(nodes) if collapse == "repeats" else {}
    if repeats:
        collapse, roll = None, True

    def path_of(t: Tensor) -> tuple[str, ...]:  # noqa: F811 - repeated blocks become steps
        p = _path_of(t)
        if p and p[0] in repeats:
            base, k = repeats[p[0]]
            return (base, f"t{k}") + p[1:]
        return p
    layers = {}
    if model is not None:
        for layer in getattr(model, "layers", []) or []:
            layers[getattr(layer, "name", None)] = layer
    items: dict[str, Item] = {}
    key_of: dict[int, str] = {}
    step_of: dict[int, int | None] = {}
    has_steps = False
    timed_bases: set[tuple[str, ...]] = set()
    for t in nodes:
        base, k, _ = split_time(path_of(t))
        if k is not None:
            timed_bases.add(base)

    for t in nodes:
        path = path_of(t)
        base, k, rest = split_time(path)
        has_steps |= k is not None
        step_of[id(t)] = k
        if level == "layer" and path:
            gpath = base if expand_nested else base[:1]
        else:
            gpath = _collapsed(base, collapse)
        if gpath is not None:
            stepped = k is not None and len(gpath) == len(base)  # the steps are this box's
            if stepped and not roll:
                key = "/".join(gpath + (f"t{k}",))
                cluster = gpath
            else:
                key = "/".join(gpath) or "steps"
                cluster = gpath if (gpath in timed_bases and not roll) else gpath[:-1]
            it = items.get(key)
            if it is None:
                if t.kind == "constant" and level == "layer":
                    continue  # constants alone never make a box (an initial state)
                it = items[key] = Item(key, [], cluster, group=True,
                                       step=k if stepped and not roll else None)
            it.tensors.append(t)
            if stepped and roll:
                it.steps.add(k)
            if it.layer is None:
                it.layer = t.layer if t.layer is not None else layers.get(
                    gpath[0] if gpath else None)
            key_of[id(t)] = key
            continue
        if level == "layer" and t.kind == "constant":
            continue  # hidden at layer level
        if k is not None and roll:
            key = "/".join(base + (ROLLED,) + rest + (t.name.split("/")[-1],))
            cluster = base + (ROLLED,) + rest
        else:
            key, cluster = t.name, path
        it = items.get(key)
        if it is None:
            it = items[key] = Item(key, [], cluster)
        it.tensors.append(t)
        if k is not None and roll:
            it.steps.add(k)
        key_of[id(t)] = key

    for it in items.values():  # a composite layer's sub-boxes show their own layers
        if it.group and it.layer is not None and it.step is None:
            it.layer = sublayer_of(it.layer, it.key.split("/"))
    edges: list[Edge] = []
    shared: dict[str, Item] = {}
    seen = set()
    for t in nodes:
        kd = key_of.get(id(t))
        if kd is None:
            continue
        for s in t.inputs:
            ks = key_of.get(id(s))
            if ks is None:
                continue
            if level == "layer" and s.kind in ("parameter", "constant") and \
                    view_items_group(items, ks):
                continue  # weights live inside their layer's box
            ss, st = step_of.get(id(s)), step_of.get(id(t))
            recurrent = roll and ss is not None and st is not None and ss != st
            if ks == kd and not recurrent:
                continue
            sig = (ks, kd, recurrent, s.shape, str(s.dtype))
            if sig in seen:
                continue
            seen.add(sig)
            edges.append(Edge(ks, kd, s, recurrent))
    if level == "layer":
        # a box holding only weights (the shared parameters of an unrolled RNN) is not drawn;
        # its parameters are counted in the cluster's label instead
        used = {e.src for e in edges} | {e.dst for e in edges}
        for key in [k for k, it in items.items() if it.group and key_unused(it, used)]:
            it = items.pop(key)
            for t in it.tensors:
                key_of.pop(id(t), None)
            shared[key] = it
    return View(items, edges, nodes, outputs, key_of, has_steps, shared)


def view_items_group(items: dict[str, Item], key: str) -> bool:
    it = items.get(key)
    return it is not None and it.group


def key_unused(it: Item, used: set[str]) -> bool:
    return it.key not in used and all(t.kind in ("parameter", "constant") for t in it.tensors)


def boundary(view: View, item: Item) -> tuple[list[Tensor], list[Tensor]]:
    """The tensors flowing into a group from outside, and those leaving it (or outputs)."""
    members = {id(t) for t in item.tensors}
    ins: list[Tensor] = []
    for t in item.tensors:
        for s in t.inputs:
            if id(s) not in members and s.kind not in ("parameter", "constant") \
                    and all(s is not x for x in ins):
                ins.append(s)
    consumers: dict[int, int] = {}
    for t in view.nodes:
        if id(t) in members:
            continue
        for s in t.inputs:
            if id(s) in members:
                consumers[id(s)] = 1
    outs = [t for t in item.tensors if id(t) in consumers or any(t is o for o in view.outputs)]
    if not outs:
        ops = [t for t in item.tensors if t.kind == "op"]
        outs = ops[-1:] if ops else item.tensors[-1:]
    return ins, outs


def to_digraph(view: View) -> nx.DiGraph:
    """The drawn view as a networkx graph (items and edges), handy for tests and layouts."""
    G = nx.DiGraph()
    for k, it in view.items.items():
        G.add_node(k, group=it.group, n=len(it.tensors))
    for e in view.edges:
        G.add_edge(e.src, e.dst, recurrent=e.recurrent)
    return G


def params_of(tensors: Iterable[Tensor]) -> list[Tensor]:
    return [t for t in tensors if t.kind == "parameter"]
