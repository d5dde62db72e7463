"""A build-time shape error drawn on the graph, at the node that could not be made.

``apply`` checks every op's shape rule as the graph is built, so a mismatch raises
:class:`graphnet.GraphError` before anything runs. ``draw_shape_error(err)`` finds the failed
op and its input tensors (from the traceback, else from the message) and draws the graph
built so far with the failed node in red, its input edges labelled with the clashing shapes.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable
from typing import Any

import graphviz

import graphnet as gn
from graphnet.core.graph import Graph
from graphnet.core.tensor import Tensor

from . import view as _view
from .dot import Options, build_digraph, esc
from .render import MAX_NODES, save, shape_text_of

_MSG = re.compile(r"^(?P<op>\S+) node '(?P<node>[^']+)': (?P<why>.*?)(?: \(inputs (?P<ins>.*)\))?$",
                  re.S)
_INPUT = re.compile(r"(?:^|, )([^\s,:]+): \(")


def failed_node(err: BaseException, graph: Graph | None = None) -> dict[str, Any] | None:
    """``{"op", "node", "inputs", "why"}`` of the node a GraphError was raised for, or None."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        loc = tb.tb_frame.f_locals
        if tb.tb_frame.f_code.co_name == "apply" and "op" in loc and "ins" in loc:
            found = loc
        tb = tb.tb_next
    text = str(err)
    m = _MSG.match(text)
    why = m.group("why") if m else text
    if found is not None:
        ins = [t for t in found["ins"] if isinstance(t, Tensor)]
        return {"op": found["op"].name, "node": found.get("node_name") or found["op"].name,
                "inputs": ins, "why": why}
    if m is None:
        return None
    graph = graph or Graph.current()
    ins = []
    for name in _INPUT.findall(m.group("ins") or ""):
        try:
            ins.append(graph.by_name(name))
        except KeyError:
            pass
    return {"op": m.group("op"), "node": m.group("node"), "inputs": ins, "why": why}


def draw_shape_error(err: BaseException, path: str | os.PathLike | None = None,
                     level: str = "op", graph: Graph | None = None, rankdir: str = "TB",
                     max_nodes: int = MAX_NODES, **kw: Any) -> graphviz.Digraph:
    """Draw the graph built before ``err`` with the failed node marked in red."""
    info = failed_node(err, graph)
    if info is None or not info["inputs"]:
        raise ValueError(f"cannot locate the failed node of this error: {err}") from err
    ins: list[Tensor] = info["inputs"]
    nodes = _view.ancestors(ins)
    v = _view.build(nodes, ins, level=level, roll=kw.pop("roll", True), collapse=None)
    bad_keys = {v.key_of.get(id(t)) for t in ins} - {None}

    def node_hook(it: _view.Item) -> tuple[dict, list[str]]:
        if it.key in bad_keys:
            return {"color": "#d50000", "penwidth": "2.5"}, []
        return {}, []

    node_id = f"{info['node']} (failed)"
    path_parts = tuple(info["node"].split("/")[:-1])

    def draw_error(g: graphviz.Digraph) -> None:
        why = "<br/>".join(esc(x) for x in textwrap.wrap(info["why"], 60))
        label = (f'<<font color="#b71c1c"><b>shape error</b></font><br/><b>{esc(info["op"])}'
                 f'</b> <font point-size="9">{esc(info["node"])}</font><br/>'
                 f'<font point-size="9">{why}</font>>')
        attrs = {"shape": "octagon", "style": "filled", "fillcolor": "#ffebee",
                 "color": "#d50000", "penwidth": "2.5", "class": "shape-error"}
        if path_parts and level == "op":
            with g.subgraph(name="cluster_" + "/".join(path_parts)) as c:
                c.node(node_id, label=label, **attrs)
        else:
            g.node(node_id, label=label, **attrs)
        for i, t in enumerate(ins):
            k = v.key_of.get(id(t))
            if k is not None:
                g.edge(k, node_id, label=f" {shape_text_of(t)}  (input {i})", color="#d50000",
                       fontcolor="#b71c1c", penwidth="2")

    o = Options(rankdir=rankdir, node_hook=node_hook, extra=[draw_error], legend=False,
                title=kw.pop("title", None))
    dot = build_digraph(v, o, name="shape_error")
    dot.failed = info
    if path is not None:
        save(dot, path)
    return dot


def render_error(fn: Callable[[], Any], path: str | os.PathLike | None = None, **kw: Any
                 ) -> graphviz.Digraph:
    """Build a graph with ``fn()`` in a fresh Graph; draw the shape error it raises, if any.

    Without an error the result of ``fn`` is drawn as ``render`` would (at op level).
    """
    from .render import render
    with gn.Graph("render_error") as g:
        try:
            out = fn()
        except gn.GraphError as e:
            return draw_shape_error(e, path, graph=g, **kw)
    if out is None:
        out = g
    kw.setdefault("level", "op")
    return render(out, path, **kw)
