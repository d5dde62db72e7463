"""DOT building: styles per kind and op family, HTML labels, clusters per scope, legends.

Everything here is a pure function of the view, so the DOT text is deterministic: node ids are
tensor names or scope paths, never ids or addresses, and a drawing can be compared with a
stored one in a test.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import graphviz

from graphnet.core.tensor import Tensor, fmt_shape

from .view import TIME, Edge, Item, View, boundary, params_of, sublayer_of

FONT = "Helvetica"

# Fill colours (pastel, dark text stays readable) for leaves and op families.
KIND_COLORS = {
    "input": "#c8e6c9",      # green
    "parameter": "#fff3c4",  # pale amber
    "constant": "#eeeeee",   # grey
    "loss": "#ffcdd2",       # red
}
FAMILY_COLORS = {
    "math": "#bbdefb",          # blue
    "nn": "#d1c4e9",            # purple: dense, matmul
    "linalg": "#d1c4e9",
    "linear": "#d1c4e9",
    "dense": "#d1c4e9",
    "activation": "#ffe0b2",    # orange
    "loss": "#ffcdd2",          # red
    "shape": "#e0e0e0",         # grey: reshape, transpose, getitem, concat
    "reduce": "#b2dfdb",        # teal
    "regularization": "#f8bbd0",  # pink: dropout
    "dropout": "#f8bbd0",
    "normalization": "#f0f4c3",
    "recurrent": "#c5cae9",     # indigo
    "attention": "#dcedc8",     # light green
    "conv": "#d7ccc8",          # brown
    "pool": "#cfd8dc",          # blue grey
    "upsampling": "#b3e5fc",    # light blue: up-sampling, the way back up in segmentation
    "detection": "#fff9c4",     # yellow: RoI align, NMS
    "embedding": "#e1bee7",
    "metric": "#f5f5f5",
}
OTHER_COLOR = "#f5f5f5"
# Which family names a layer box, when a box holds several (most telling first).
FAMILY_RANK = ["loss", "recurrent", "attention", "conv", "pool", "upsampling", "detection",
               "embedding", "nn", "dense",
               "linear", "linalg", "normalization", "regularization", "dropout", "activation",
               "reduce", "shape", "math"]
LAYER_FAMILIES = {"Dense": "dense", "Dropout": "regularization", "LSTM": "recurrent",
                  "Bidirectional": "recurrent",
                  "SimpleRNN": "recurrent", "GRU": "recurrent", "Conv2D": "conv",
                  "MaxPooling2D": "pool", "MaxPool2D": "pool", "AveragePooling2D": "pool",
                  "AvgPool2D": "pool", "UpSampling2D": "upsampling",
                  "Conv2DTranspose": "conv", "MultiHeadAttention": "attention",
                  "Embedding": "embedding", "Activation": "activation",
                  "Flatten": "shape", "Reshape": "shape", "BatchNormalization": "normalization"}
LAYER_FAMILIES.update({"Conv1D": "conv", "MaxPooling1D": "pool", "MaxPool1D": "pool",
                       "AveragePooling1D": "pool", "AvgPool1D": "pool"})  # sequences
# Ops whose behaviour differs between training and inference (the mode difference drawn).
MODE_OPS = ("dropout", "batch_norm", "batchnorm", "noise")
GOOD_BADGES = ("njit", "cuda.jit")


def repeated(key: str) -> bool:
    """Is this a run of repeated blocks (``collapse="repeats"``) rather than time steps?"""
    return " ×" in key.split("/")[0]


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def family_of(t: Tensor, loss: Tensor | None = None) -> str:
    """A node's colour class: its kind for leaves, else its op family ('loss' for the loss)."""
    if t.op is None:
        return t.kind
    if loss is not None and t is loss:
        return "loss"
    return getattr(t.op, "family", "math") or "math"


def color_of(family: str) -> str:
    return KIND_COLORS.get(family) or FAMILY_COLORS.get(family, OTHER_COLOR)


def mode_dependent(t: Tensor) -> bool:
    """Does this node compute something else in training than in inference (dropout)?"""
    op = t.op
    if op is None:
        return False
    flag = getattr(op, "differs_in_training", None)
    if flag is not None:
        return bool(flag)
    return any(m in op.name for m in MODE_OPS)


def shape_text(t: Tensor, show_dtype: bool) -> str:
    s = fmt_shape(t.shape)
    return f"{s} {t.dtype}" if show_dtype else s


def _index_text(v: Any, others: list[Any] = ()) -> str | None:
    """An index as NumPy writes it: ``[:, 0]``; positions that differ in ``others`` (the
    other time steps of a rolled cell) read ``t``."""
    parts = v if isinstance(v, tuple) else (v,)
    if others:
        o_parts = [o if isinstance(o, tuple) else (o,) for o in others]
        parts = tuple("t" if any(len(o) != len(parts) or o[i] != p for o in o_parts) else p
                      for i, p in enumerate(parts))
    out = []
    for p in parts:
        if isinstance(p, slice):
            s = "" if p.start is None else str(p.start)
            s += ":" + ("" if p.stop is None else str(p.stop))
            if p.step is not None:
                s += f":{p.step}"
            out.append(s)
        elif p is None:
            out.append("None")
        elif p is Ellipsis:
            out.append("...")
        elif p == "t":
            out.append("t")
        elif isinstance(p, int):
            out.append(str(p))
        else:
            return None
    return "[" + ", ".join(out) + "]"


def _attrs_text(t: Tensor, rolled: list[Tensor] | None = None) -> str:
    """Short scalar attributes of an op (rate=0.5, axis=1) for its label; for a rolled cell
    the attributes that differ between time steps are shown as ``t``."""
    attrs = getattr(t.op, "attrs", {}) or {}
    parts = []
    for k, v in attrs.items():
        if isinstance(v, bool) or v is None:
            continue
        differs = rolled and any(getattr(r.op, "attrs", {}).get(k) != v for r in rolled)
        if isinstance(v, (slice, tuple)) and any(isinstance(p, slice) for p in
                                                 (v if isinstance(v, tuple) else (v,))):
            txt = _index_text(v, [getattr(r.op, "attrs", {}).get(k) for r in rolled or []])
            if txt is not None:
                parts.append(txt)
                continue
        if differs:
            parts.append(f"{k}=t")
        elif isinstance(v, (int, float, str)) or (isinstance(v, tuple) and len(v) <= 4):
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts[:3])


@dataclass
class Options:
    show_shapes: bool = True
    show_dtype: bool = False
    show_params: bool = True
    rankdir: str = "TB"
    dpi: float | None = None
    mode: str | None = None            # None, "train", "infer" or "both"
    badge: Callable[[Tensor], str | None] | None = None
    legend: bool = True
    title: str | None = None
    loss: Tensor | None = None
    # hooks for gradient and value pictures
    node_hook: Callable[[Item], tuple[dict, list[str]]] | None = None
    edge_hook: Callable[[Edge], dict] | None = None
    legend_hook: Callable[[], str | None] | None = None
    cluster_hook: Callable[[Item], str] | None = None  # a note for a layer's shared weights
    extra: list[Callable[[graphviz.Digraph], None]] = field(default_factory=list)


# -- labels ---------------------------------------------------------------------------------

def _badge_line(t: Tensor, o: Options) -> str | None:
    if o.badge is None or t.op is None:
        return None
    b = o.badge(t)
    if not b:
        return None
    if b in GOOD_BADGES:  # blue; in heat maps the node's own text colour stays readable
        if o.node_hook is not None:
            return f'<font point-size="8">{esc(b)}</font>'
        return f'<font point-size="8" color="#1565c0">{esc(b)}</font>'
    return f'<font point-size="9" color="#e65100"><b>{esc(b)} fallback</b></font>'


def op_label(item: Item, o: Options, extra: list[str]) -> str:
    """HTML label of a single node: op (bold), its own name, attributes, shape, badge."""
    t = item.tensors[0]
    base = item.key.rsplit("/", 1)[-1]
    lines = []
    if t.op is None:
        lines.append(f"<b>{esc(base)}</b>")
        if o.show_shapes:
            lines.append(f'<font point-size="9">{esc(shape_text(t, o.show_dtype))}</font>')
        elif o.show_dtype:
            lines.append(f'<font point-size="9">{esc(t.dtype)}</font>')
    else:
        lines.append(f"<b>{esc(t.op.name)}</b>")
        if base.split("_")[0] != t.op.name and base != t.op.name:
            lines.append(f'<font point-size="9" color="#424242">{esc(base)}</font>')
        at = _attrs_text(t, item.tensors if item.steps else None)
        if at:
            lines.append(f'<font point-size="9">{esc(at)}</font>')
    if item.steps:
        unit = "blocks" if repeated(item.key) else "steps"
        lines.append(f'<font point-size="9" color="#283593">× {len(item.steps)} {unit}</font>')
    if mode_dependent(t) and o.mode != "train":
        lines.append('<font point-size="9" color="#ad1457">training only; identity in '
                     'inference</font>')
    b = _badge_line(t, o)
    if b:
        lines.append(b)
    lines.extend(extra)
    return "<" + "<br/>".join(lines) + ">"


def _fmt_count(n: int) -> str:
    return f"{n:,}"


def _layer_title(item: Item) -> tuple[str, str]:
    name = item.key.rsplit("/", 1)[-1] if item.step is None else item.key.split("/")[-2]
    cls = type(item.layer).__name__ if item.layer is not None else ""
    if item.step is not None:
        name = f"{name} · t{item.step}"
    return name, cls


def group_family(item: Item, loss: Tensor | None) -> str:
    cls = type(item.layer).__name__ if item.layer is not None else ""
    if cls in LAYER_FAMILIES:
        return LAYER_FAMILIES[cls]
    if (item.steps or item.step is not None) and not repeated(item.key):
        return "recurrent"
    fams = {family_of(t, loss) for t in item.tensors if t.op is not None}
    for f in FAMILY_RANK:
        if f in fams:
            return f
    return sorted(fams)[0] if fams else "math"


def group_label(view: View, item: Item, o: Options, extra: list[str], fill: str,
                fontcolor: str | None = None) -> str:
    """A layer box: name and class, input and output shapes, parameter count, op chain."""
    name, cls = _layer_title(item)
    ins, outs = boundary(view, item)
    rows = [f'<tr><td colspan="2"><b>{esc(name)}</b>'
            + (f' : <font color="#424242">{esc(cls)}</font>' if cls else "") + "</td></tr>"]
    if o.show_shapes:
        if ins:
            rows.append('<tr><td align="left"><font point-size="10">in</font></td><td>'
                        + "<br/>".join(esc(shape_text(t, o.show_dtype)) for t in ins)
                        + "</td></tr>")
        rows.append('<tr><td align="left"><font point-size="10">out</font></td><td>'
                    + "<br/>".join(esc(shape_text(t, o.show_dtype)) for t in outs[:3])
                    + "</td></tr>")
    if o.show_params:
        n = None
        if item.layer is not None and item.step is None and hasattr(item.layer, "count_params"):
            try:
                n = int(item.layer.count_params())
            except Exception:  # a layer that cannot count yet: count its graph parameters
                n = None
        if n is None:
            n = sum(_size(p) for p in params_of(item.tensors))
        if n or item.layer is not None:
            rows.append(f'<tr><td colspan="2"><font point-size="10">{_fmt_count(n)} params'
                        "</font></td></tr>")
    ops = []
    for t in item.tensors:
        if t.op is not None and t.op.name not in ops:
            ops.append(t.op.name)
    op_nodes = [t for t in item.tensors if t.op is not None]
    if len(op_nodes) == 1 and _attrs_text(op_nodes[0]):  # e.g. dense · activation=relu
        rows.append(f'<tr><td colspan="2"><font point-size="9" color="#424242">{esc(ops[0])} · '
                    f"{esc(_attrs_text(op_nodes[0]))}</font></td></tr>")
    elif len(ops) > 1 or (ops and not cls):
        chain = " → ".join(ops[:4]) + (" …" if len(ops) > 4 else "")
        rows.append(f'<tr><td colspan="2"><font point-size="9" color="#424242">{esc(chain)}'
                    "</font></td></tr>")
    if item.steps:
        what = "repeated blocks" if repeated(item.key) else "time steps"
        rows.append(f'<tr><td colspan="2"><font point-size="9" color="#283593">rolled: '
                    f'{len(item.steps)} {what}</font></td></tr>')
    if any(mode_dependent(t) for t in item.tensors) and o.mode != "train":
        rows.append('<tr><td colspan="2"><font point-size="9" color="#ad1457">training only; '
                    'identity in inference</font></td></tr>')
    badges = sorted({b for t in item.tensors if t.op is not None and o.badge
                     for b in [o.badge(t)] if b})
    if badges:
        txt = ", ".join(b if b in GOOD_BADGES else f"{b} fallback" for b in badges)
        color = "#1565c0" if all(b in GOOD_BADGES for b in badges) else "#e65100"
        rows.append(f'<tr><td colspan="2"><font point-size="8" color="{color}">{esc(txt)}'
                    "</font></td></tr>")
    for x in extra:
        rows.append(f'<tr><td colspan="2">{x}</td></tr>')
    table = (f'<table border="0" cellborder="1" cellspacing="0" cellpadding="4" '
             f'bgcolor="{fill}" color="#616161">' + "".join(rows) + "</table>")
    if fontcolor:  # a heat-map fill: one text colour that reads on it
        plain = table.replace(' color="#424242"', "").replace(' color="#1565c0"', "")
        table = f'<font color="{fontcolor}">{plain}</font>'
    return f"<{table}>"


def _size(t: Tensor) -> int:
    n = 1
    for d in t.shape:
        n *= d or 1
    return n


# -- the digraph ----------------------------------------------------------------------------

def node_attrs(item: Item, o: Options) -> dict[str, str]:
    t = item.tensors[0]
    fam = family_of(t, o.loss)
    attrs = {"style": "filled", "fillcolor": color_of(fam), "color": "#616161"}
    if t.kind == "input":
        attrs["shape"] = "invhouse"
    elif t.kind == "parameter":
        attrs["shape"] = "cylinder"
    elif t.kind == "constant":
        attrs.update(shape="box", style="filled,dashed")
    else:
        attrs.update(shape="box", style="rounded,filled")
        if fam == "loss":
            attrs["peripheries"] = "2"
    if mode_dependent(t):
        if o.mode == "infer":
            attrs.update(style="rounded,dashed", fillcolor="#ffffff", fontcolor="#9e9e9e")
        elif o.mode != "train":
            attrs["style"] = "rounded,filled,dashed"
    return attrs


def _legend_html(families: list[str]) -> str:
    cells = "".join(f'<td bgcolor="{color_of(f)}"><font point-size="9">{esc(f)}</font></td>'
                    for f in families)
    return (f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">'
            f"<tr>{cells}</tr></table>>")


def build_digraph(view: View, o: Options, name: str = "graphnet") -> graphviz.Digraph:
    """The graphviz.Digraph of a view: nodes, clusters per scope, shape-labelled edges."""
    if o.rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', not {o.rankdir!r}")
    g = graphviz.Digraph(name=name)
    gattrs = {"rankdir": o.rankdir, "fontname": FONT, "nodesep": "0.3", "ranksep": "0.35",
              "newrank": "true"}
    if o.dpi:
        gattrs["dpi"] = str(o.dpi)
    if o.title:
        gattrs.update(label=o.title, labelloc="t", fontsize="16")
    g.attr("graph", **gattrs)
    g.attr("node", fontname=FONT, fontsize="11", margin="0.08,0.04", height="0.3")
    g.attr("edge", fontname=FONT, fontsize="9", color="#616161", arrowsize="0.7")

    # a tree of clusters from the items' scope paths
    tree: dict[tuple[str, ...], list[Item]] = {}
    for it in view.items.values():
        tree.setdefault(it.cluster, []).append(it)
    paths = set()
    for p in tree:
        for i in range(1, len(p) + 1):
            paths.add(p[:i])
    families: list[str] = []

    def emit_node(sub: graphviz.Digraph, it: Item) -> None:
        extra, over = [], {}
        if o.node_hook is not None:
            over, extra = o.node_hook(it)
        if it.group:
            fam = group_family(it, o.loss)
            fill = over.pop("fillcolor", None) or color_of(fam)
            attrs = {"shape": "plain"}
            if any(mode_dependent(t) for t in it.tensors) and o.mode == "infer":
                fill = "#ffffff"
            label = group_label(view, it, o, extra, fill, over.pop("fontcolor", None))
            over.pop("style", None)
        else:
            t = it.tensors[0]
            fam = family_of(t, o.loss)
            attrs = node_attrs(it, o)
            label = op_label(it, o, extra)
        if fam not in families:
            families.append(fam)
        attrs.update(over)
        sub.node(it.key, label=label, **attrs)
        if it.steps and it.group:  # a rolled recurrent layer: one box with a loop edge
            if not any(e.recurrent and e.src == it.key == e.dst for e in view.edges):
                sub.edge(it.key, it.key, label=_prev(it.key), style="dashed", color="#283593")

    def emit(sub: graphviz.Digraph, prefix: tuple[str, ...]) -> None:
        for it in tree.get(prefix, []):
            emit_node(sub, it)
        children = sorted({p for p in paths if len(p) == len(prefix) + 1
                           and p[:len(prefix)] == prefix})
        for child in children:
            with sub.subgraph(name="cluster_" + "/".join(child)) as c:
                label = _cluster_label(view, child)
                sh = view.shared.get("/".join(child))
                if sh is not None and o.cluster_hook is not None:
                    label += "   " + o.cluster_hook(sh)
                c.attr(label=label, style="rounded,filled", fillcolor="#fafafa",
                       color="#9e9e9e", fontsize="11", fontcolor="#424242", labeljust="l")
                if child[-1].startswith("t") and child[-1][1:].isdigit():
                    c.attr(fillcolor="#f3f5ff")
                emit(c, child)

    emit(g, ())

    for e in view.edges:
        attrs = {}
        if o.show_shapes and (e.tensor.kind not in ("parameter", "constant")
                              or view.items[e.src].group):
            # (a weight's node already shows its shape)
            attrs["label"] = " " + shape_text(e.tensor, o.show_dtype)
        if e.recurrent:
            attrs.update(style="dashed", color="#283593", constraint="false",
                         label=f" {_prev(e.src)} " + (shape_text(e.tensor, o.show_dtype)
                                          if o.show_shapes else ""))
        if o.edge_hook is not None:
            attrs.update(o.edge_hook(e))
        g.edge(e.src, e.dst, **attrs)

    if o.mode in ("both", "infer"):
        _draw_bypasses(g, view, o)
    for f in o.extra:
        f(g)
    legend = o.legend_hook() if o.legend_hook is not None else (
        _legend_html(families) if o.legend and len(families) > 1 else None)
    if legend:
        g.node("legend", label=legend, shape="plain")
        # keep the legend below (or right of) the picture: invisible edges from the sinks
        sinks = set(view.items) - {e.src for e in view.edges}
        for k in sorted(sinks)[:4]:
            g.edge(k, "legend", style="invis")
    return g


def _prev(key: str) -> str:
    return "previous block" if repeated(key) else "t−1"


def _cluster_label(view: View, path: tuple[str, ...]) -> str:
    leaf = path[-1]
    m = TIME.match(leaf)
    if m:
        return f"t = {m.group(1)}"
    if leaf == "t*":
        if repeated(path[0]):
            return "one block"
        n = max((len(it.steps) for it in view.items.values() if it.cluster[:len(path)] == path),
                default=0)
        return f"time step t  (rolled × {n})"
    layer = None
    for it in view.items.values():
        if it.cluster[:len(path)] == path:
            for t in it.tensors:
                if t.layer is not None and t.name.startswith("/".join(path) + "/"):
                    layer = t.layer
                    break
        if layer is not None:
            break
    layer = sublayer_of(layer, path) if layer is not None else None
    cls = type(layer).__name__ if layer is not None else ""
    label = f"{leaf} : {cls}" if cls and cls != leaf else leaf
    sh = view.shared.get("/".join(path))
    if sh is not None:
        n = sum(_size(p) for p in params_of(sh.tensors))
        label += f"   ({_fmt_count(n)} params shared by every step)"
    return label


def _draw_bypasses(g: graphviz.Digraph, view: View, o: Options) -> None:
    """Inference skips training-only nodes: a dashed 'inference' edge around each one."""
    for it in view.items.values():
        if it.group or not mode_dependent(it.tensors[0]):
            continue
        t = it.tensors[0]
        srcs = [view.key_of.get(id(s)) for s in t.inputs if s.kind not in ("parameter",
                                                                               "constant")]
        dsts = [e.dst for e in view.edges if e.src == it.key]
        for s in srcs[:1]:
            for d in dsts:
                if s is not None:
                    g.edge(s, d, label=" inference", style="dashed", color="#ad1457",
                           fontcolor="#ad1457", constraint="false")
