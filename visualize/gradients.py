"""Gradient and activation heat maps: the drawing of ``render``, coloured by a number per node.

``render_gradients`` runs forward and backward and colours each node (and each edge, by the
gradient of the value it carries) by ``||dL/dx||`` on a log scale. Vanishing (< 1e-7),
exploding (> 1e3) and non-finite gradients get their own named styles; where the optimizer
clips, parameter labels show the norm before and after clipping. ``render_values`` does the
same for activation statistics (dead units, exploding or non-finite activations).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import graphviz
import numpy as np

import graphnet as gn
from graphnet.core.tensor import Tensor

from . import view as _view
from .dot import Options, build_digraph, esc
from .render import MAX_NODES, _badge_fn, _name_of, make_view, model_loss, save

VANISH = 1e-7
EXPLODE = 1e3
# viridis at 9 stops: perceptually uniform and its lightness rises monotonically, so a
# brighter node always means a larger norm (and it reads in grey and for colour-blind eyes)
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
           "#addc30", "#fde725"]
# The named styles of out-of-range nodes (also written as the SVG class of each node).
STYLES: dict[str, dict[str, str]] = {
    "vanishing": {"fillcolor": "#f5f5f5", "color": "#9e9e9e", "fontcolor": "#757575",
                  "style": "filled,dashed"},
    "exploding": {"fillcolor": "#d50000", "color": "#b71c1c", "fontcolor": "#ffffff",
                  "penwidth": "2.5"},
    "nonfinite": {"fillcolor": "#000000", "color": "#d50000", "fontcolor": "#ffffff",
                  "penwidth": "3", "shape": "octagon"},
    "none": {"fillcolor": "#ffffff", "color": "#bdbdbd", "fontcolor": "#9e9e9e",
             "style": "filled,dotted"},
    "dead": {"fillcolor": "#f5f5f5", "color": "#9e9e9e", "fontcolor": "#757575",
             "style": "filled,dashed"},
}
STYLE_NOTES = {"vanishing": "vanishing", "exploding": "exploding", "nonfinite": "NaN/Inf",
               "none": "no gradient", "dead": "dead (all zero)"}


# -- the colour scale -----------------------------------------------------------------------

def _hex(c: str) -> tuple[float, float, float]:
    return tuple(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def luminance(color: str) -> float:
    """Relative luminance (sRGB, Rec. 709 weights): picks black or white text."""
    r, g, b = _hex(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def colormap(x: float) -> str:
    """The colour at position ``x`` in [0, 1] of the viridis scale (linear between stops)."""
    x = min(max(float(x), 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(x), len(VIRIDIS) - 2)
    f = x - i
    a, b = _hex(VIRIDIS[i]), _hex(VIRIDIS[i + 1])
    return "#" + "".join(f"{round(255 * (u + f * (v - u))):02x}" for u, v in zip(a, b))


def position(norm: float, vmin: float, vmax: float) -> float:
    """Where ``norm`` sits between vmin and vmax on a log scale, clipped to [0, 1]."""
    if not norm > 0:
        return 0.0
    lo, hi = math.log10(vmin), math.log10(vmax)
    if hi <= lo:
        return 1.0
    return min(max((math.log10(norm) - lo) / (hi - lo), 0.0), 1.0)


def grad_color(norm: float, vmin: float = VANISH, vmax: float = EXPLODE) -> str:
    """The fill colour of a norm: monotonic in the norm, on a log scale from vmin to vmax."""
    return colormap(position(norm, vmin, vmax))


def classify(norm: float | None, vanish: float = VANISH, explode: float = EXPLODE) -> str:
    """'none', 'nonfinite', 'vanishing', 'exploding' or 'normal' for a gradient norm."""
    if norm is None:
        return "none"
    if not math.isfinite(norm):
        return "nonfinite"
    if norm < vanish:
        return "vanishing"
    if norm > explode:
        return "exploding"
    return "normal"


def fmt(x: float) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
    return f"{x:.1e}" if x != 0 else "0"


def norm_of(a: np.ndarray) -> float:
    """The L2 norm in float64; NaN when any entry is NaN, Inf when any is infinite."""
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        return 0.0
    if not np.isfinite(a).all():
        return float("nan") if np.isnan(a).any() else float("inf")
    return float(np.sqrt(np.dot(a, a)))


def _combine(norms: list[float]) -> float | None:
    if not norms:
        return None
    return float(math.sqrt(sum(n * n for n in norms))) if all(map(math.isfinite, norms)) \
        else (float("nan") if any(math.isnan(n) for n in norms) else float("inf"))


# -- running the program ----------------------------------------------------------------------

@dataclass
class GradientReport:
    """The numbers behind a gradient picture: norms by node name, before and after clipping."""

    norms: dict[str, float]
    loss: float
    clipped: dict[str, float] = field(default_factory=dict)
    global_norm: float | None = None
    global_clipped: float | None = None
    clip: dict[str, float] = field(default_factory=dict)
    badge: str | None = None

    def flagged(self, vanish: float = VANISH, explode: float = EXPLODE) -> dict[str, list[str]]:
        """Node names by class: {'vanishing': [...], 'exploding': [...], 'nonfinite': [...]}."""
        out: dict[str, list[str]] = {"vanishing": [], "exploding": [], "nonfinite": []}
        for k, n in self.norms.items():
            c = classify(n, vanish, explode)
            if c in out:
                out[c].append(k)
        return out


def _feeds_for(obj: Any, feeds: Any, inputs: list[Tensor]) -> dict:
    if isinstance(feeds, Mapping):
        return dict(feeds)
    if hasattr(obj, "feeds") and hasattr(obj, "layers"):  # a Model: (x, y) or x
        if isinstance(feeds, tuple) and len(feeds) == 2:
            return obj.feeds(*feeds)
        return obj.feeds(feeds, None) if _takes_none(obj) else {inputs[0]: feeds}
    arrays = list(feeds) if isinstance(feeds, (tuple, list)) else [feeds]
    if len(arrays) != len(inputs):
        raise gn.FeedError(f"got {len(arrays)} arrays for the inputs "
                           f"{[t.name for t in inputs]}; pass a dict {{input: array}}")
    return dict(zip(inputs, arrays))


def _takes_none(model: Any) -> bool:
    try:
        model.feeds(None, None)
    except Exception:
        return False
    return True


def _model_loss(model: Any) -> Tensor:
    loss = model_loss(model)
    if loss is None:
        raise gn.GraphError("render_gradients needs a compiled model (model.compile(...)) so "
                            "that it has a loss; or pass the loss Tensor itself")
    return loss


def _clip_settings(obj: Any, kw: dict) -> dict[str, float]:
    opt = getattr(obj, "optimizer", None)
    out = {}
    for k in ("clipvalue", "clipnorm", "global_clipnorm"):
        v = kw.get(k)
        if v is None and opt is not None:
            v = getattr(opt, k, None)
        if v is not None:
            out[k] = float(v)
    return out


def _clipped(grads: dict[str, np.ndarray], clip: dict[str, float]
             ) -> tuple[dict[str, float], float, float]:
    """Parameter gradient norms after Keras' clipping: clipvalue, clipnorm, global_clipnorm."""
    gs = {k: np.asarray(g, np.float64) for k, g in grads.items()}
    before = _combine([norm_of(g) for g in gs.values()]) or 0.0
    if "clipvalue" in clip:
        c = clip["clipvalue"]
        gs = {k: np.clip(g, -c, c) for k, g in gs.items()}
    if "clipnorm" in clip:
        c = clip["clipnorm"]
        gs = {k: g * min(1.0, c / n) if (n := norm_of(g)) > 0 else g for k, g in gs.items()}
    if "global_clipnorm" in clip:
        c = clip["global_clipnorm"]
        total = _combine([norm_of(g) for g in gs.values()]) or 0.0
        if total > 0 and math.isfinite(total):
            gs = {k: g * min(1.0, c / total) for k, g in gs.items()}
    after = {k: norm_of(g) for k, g in gs.items()}
    return after, before, _combine(list(after.values())) or 0.0


def _device_of(obj: Any, device: str | None) -> str:
    if device is not None:
        return device
    cfg = getattr(obj, "_compiled", None)  # a compiled Model runs where it was compiled for
    return (cfg.get("device") or "cpu") if isinstance(cfg, dict) else "cpu"


def _prepare(obj: Any, feeds: Any, training: bool, level: str, roll: bool, expand_nested: bool,
             collapse: Any, max_nodes: int, wrt: list[Tensor] | None = None,
             device: str | None = None):
    """Compile and run ``obj``'s loss forward and backward; returns (prog, view, model, loss)."""
    model = None
    if isinstance(obj, Tensor):
        loss = obj
    elif hasattr(obj, "order") and hasattr(obj, "be"):  # a Program that already has wrt
        loss = obj.outputs[0]
    elif hasattr(obj, "layers"):
        model, loss = obj, _model_loss(obj)
    else:
        raise TypeError(f"render_gradients takes a Model, a loss Tensor or a Program, not "
                        f"{type(obj).__name__}")
    nodes = _view.ancestors([loss])
    if hasattr(obj, "order") and hasattr(obj, "be"):
        prog = obj
    else:
        if wrt is None:
            wrt = list(getattr(model, "trainable_weights", []) or []) if model is not None \
                else [t for t in nodes if t.kind == "parameter" and getattr(t, "trainable", True)]
        if not wrt:  # no parameters: the gradient with respect to the inputs (saliency)
            wrt = [t for t in nodes if t.kind == "input" and t.dtype.kind == "f"]
        prog = gn.compile(loss, wrt=wrt, training=training, device=_device_of(obj, device))
    inputs = [t for t in nodes if t.kind == "input"]
    if feeds is not None or not prog.gradients():
        prog(_feeds_for(obj, feeds, inputs) if feeds is not None else {})
    v, _, _ = make_view(model if model is not None else loss, level, roll, expand_nested,
                        collapse, max_nodes, nodes=nodes)
    return prog, v, model, loss


def gradient_norms(obj: Any, feeds: Any = None, training: bool = True,
                   device: str | None = None, **clip: float) -> GradientReport:
    """Run forward and backward and return the gradient norm of every node (no drawing)."""
    prog, _, model, loss = _prepare(obj, feeds, training, "op", False, False, None, 0,
                                    device=device)
    return _report(prog, obj, loss, clip)


def _report(prog: Any, obj: Any, loss: Tensor, kw: dict) -> GradientReport:
    grads = prog.gradients()
    norms = {t.name: norm_of(g) for t, g in grads.items()}
    value = float(np.asarray(prog.values()[loss]).sum())
    rep = GradientReport(norms, value, badge=getattr(prog.be, "badge", None))
    clip = _clip_settings(obj, kw)
    if clip:
        pgrads = {t.name: g for t, g in grads.items() if t.kind == "parameter"}
        rep.clipped, rep.global_norm, rep.global_clipped = _clipped(pgrads, clip)
        rep.clip = clip
    return rep


# -- drawing ----------------------------------------------------------------------------------

def _colorbar(title: str, vmin: float, vmax: float, styles: list[tuple[str, str]],
              notes: list[str]) -> str:
    """An HTML-table legend: a log-scale colour bar with decade ticks, and the named styles."""
    lo, hi = math.log10(vmin), math.log10(vmax)
    n = 9
    cells, ticks = [], []
    for i in range(n):
        x = i / (n - 1)
        c = colormap(x)
        cells.append(f'<td bgcolor="{c}" width="34" height="14"></td>')
        v = 10 ** (lo + x * (hi - lo))
        ticks.append(f'<td><font point-size="8">{esc(fmt(v))}</font></td>')
    rows = [f'<tr><td colspan="{n}"><b>{esc(title)}</b> (log scale)</td></tr>',
            "<tr>" + "".join(cells) + "</tr>", "<tr>" + "".join(ticks) + "</tr>"]
    sw = []
    for name, note in styles:
        st = STYLES[name]
        sw.append(f'<td bgcolor="{st["fillcolor"]}" border="1" color="{st["color"]}">'
                  f'<font point-size="8" color="{st["fontcolor"]}">{esc(name)}</font></td>'
                  f'<td align="left"><font point-size="8">{esc(note)}</font></td>')
    for i in range(0, len(sw), 2):  # two named styles per row
        rows.append(f'<tr><td colspan="{n}"><table border="0" cellspacing="2" cellpadding="2">'
                    "<tr>" + "".join(sw[i:i + 2]) + "</tr></table></td></tr>")
    for note in notes:
        rows.append(f'<tr><td colspan="{n}" align="left"><font point-size="9">{esc(note)}'
                    "</font></td></tr>")
    return ('<<table border="1" cellborder="0" cellspacing="1" cellpadding="2" color="#9e9e9e" '
            'bgcolor="#ffffff">' + "".join(rows) + "</table>>")


def _scale(values: list[float], vmin: float | None, vmax: float | None, floor: float,
           ceil: float) -> tuple[float, float]:
    """The colour range: given, else the finite positive data range within [floor, ceil]."""
    ok = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    lo = vmin if vmin is not None else max(min(ok, default=floor), floor)
    hi = vmax if vmax is not None else min(max(ok, default=ceil), ceil)
    if hi <= lo:
        lo, hi = lo / 10, lo * 10
    return lo, hi


def _styled(value: float | None, klass: str, lo: float, hi: float, group: bool
            ) -> dict[str, str]:
    if klass == "normal":
        fill = grad_color(value, lo, hi)
        st = {"fillcolor": fill, "fontcolor": "#ffffff" if luminance(fill) < 0.45 else "#000000"}
    else:
        st = dict(STYLES[klass])
    if group:
        st = {k: v for k, v in st.items() if k in ("fillcolor", "fontcolor")}
    st["class"] = klass
    return st


def render_gradients(obj: Any, feeds: Any = None, path: str | os.PathLike | None = None,
                     level: str = "op", *, vanish: float = VANISH, explode: float = EXPLODE,
                     vmin: float | None = None, vmax: float | None = None,
                     training: bool = True, roll: bool = False, show_shapes: bool = True,
                     show_dtype: bool = False, rankdir: str = "TB", expand_nested: bool = False,
                     collapse: Any = None, max_nodes: int = MAX_NODES, dpi: float | None = None,
                     wrt: list[Tensor] | None = None, title: str | None = None,
                     clipnorm: float | None = None, global_clipnorm: float | None = None,
                     clipvalue: float | None = None, device: str | None = None
                     ) -> graphviz.Digraph:
    """Run forward and backward and draw ``||dL/dx||`` at every node on a log colour scale.

    ``obj`` is a compiled Model (``feeds`` = ``(x, y)``), a loss Tensor (``feeds`` = a dict,
    or arrays for its Inputs in build order) or a Program with ``wrt``. Edges are coloured by
    the gradient of the value they carry. Returns the Digraph; its ``report`` attribute holds
    the numbers (a :class:`GradientReport`).
    """
    prog, v, model, loss = _prepare(obj, feeds, training, level, roll, expand_nested, collapse,
                                    max_nodes, wrt, device)
    rep = _report(prog, obj, loss, {"clipnorm": clipnorm, "global_clipnorm": global_clipnorm,
                                    "clipvalue": clipvalue})
    grads_by_id = {id(t): rep.norms[t.name] for t in v.nodes if t.name in rep.norms}

    def item_value(it: _view.Item) -> tuple[float | None, str]:
        if it.group:
            ps = [grads_by_id[id(t)] for t in it.tensors
                  if t.kind == "parameter" and id(t) in grads_by_id]
            if ps:
                return _combine(ps), "‖∇θ‖"
            ins, outs = _view.boundary(v, it)
            return _combine([grads_by_id[id(t)] for t in outs if id(t) in grads_by_id]), "‖∇y‖"
        return _combine([grads_by_id[id(t)] for t in it.tensors if id(t) in grads_by_id]), "‖∇‖"

    values = [item_value(it)[0] for it in v.items.values()]
    lo, hi = _scale(values, vmin, vmax, vanish, explode)

    def node_hook(it: _view.Item) -> tuple[dict, list[str]]:
        val, sym = item_value(it)
        klass = classify(val, vanish, explode)
        lines = [f'<font point-size="10">{esc(sym)} {esc(fmt(val))}</font>'] \
            if val is not None else []
        if klass in ("vanishing", "exploding", "nonfinite"):
            lines.append(f"<b>{esc(klass)}</b>")
        clipped = [rep.clipped[t.name] for t in it.tensors if t.name in rep.clipped]
        if clipped:
            after = _combine(clipped)
            lines.append(f'<font point-size="9">clipped → {esc(fmt(after))}</font>')
        return _styled(val, klass, lo, hi, it.group), lines

    def edge_hook(e: _view.Edge) -> dict:
        val = grads_by_id.get(id(e.tensor))
        klass = classify(val, vanish, explode)
        if klass == "normal":
            x = position(val, lo, hi)
            return {"color": grad_color(val, lo, hi), "penwidth": f"{1 + 2 * x:.2f}",
                    "class": klass}
        color = {"none": "#d0d0d0", "vanishing": "#bdbdbd", "exploding": "#d50000",
                 "nonfinite": "#d50000"}[klass]
        st = {"color": color, "class": klass}
        if klass in ("none", "vanishing"):
            st["style"] = "dashed"
        else:
            st["penwidth"] = "3"
        return st

    def legend() -> str:
        notes = [f"loss = {fmt(rep.loss)}   ‖∇‖ = L2 norm of dL/dx; edges: dL/d(value carried)"]
        if rep.clip:
            how = ", ".join(f"{k}={g:g}" for k, g in rep.clip.items())
            notes.append(f"clipping ({how}): global norm {fmt(rep.global_norm)} → "
                         f"{fmt(rep.global_clipped)}")
        last = getattr(getattr(model, "optimizer", None), "last_grad_norms", None)
        if last is not None and len(last) == 2:
            notes.append(f"optimizer's last step: global norm {fmt(float(last[0]))} → "
                         f"{fmt(float(last[1]))}")
        if rep.badge:
            notes.append(f"kernels: {rep.badge}" + (" (training mode)" if training else ""))
        return _colorbar("gradient norm ‖∂L/∂x‖", lo, hi,
                         [("vanishing", f"< {vanish:g}"), ("exploding", f"> {explode:g}"),
                          ("nonfinite", "NaN or Inf"), ("none", "no gradient")], notes)

    def cluster_hook(shared: _view.Item) -> str:
        val = _combine([grads_by_id_all[id(t)] for t in shared.tensors
                        if id(t) in grads_by_id_all])
        return f"‖∇θ‖ {fmt(val)}" if val is not None else ""

    grads_by_id_all = {id(t): rep.norms[t.name] for t in nodes_of(v) if t.name in rep.norms}
    o = Options(show_shapes=show_shapes, show_dtype=show_dtype, show_params=True,
                rankdir=rankdir, dpi=dpi, title=title, loss=loss,
                badge=_badge_fn(prog.be, None, v.nodes), node_hook=node_hook,
                edge_hook=edge_hook, legend_hook=legend, cluster_hook=cluster_hook)
    dot = build_digraph(v, o, name=_name_of(model if model is not None else loss))
    dot.report = rep
    if path is not None:
        save(dot, path)
    return dot


def nodes_of(v: _view.View) -> list[Tensor]:
    return list(v.nodes)


@dataclass
class ValueStats:
    mean: float
    std: float
    min: float
    max: float
    zeros: float   # fraction of exact zeros (dead ReLUs)
    finite: bool

    @property
    def rms(self) -> float:
        return math.sqrt(self.mean ** 2 + self.std ** 2)


def value_stats(a: np.ndarray) -> ValueStats:
    a = np.asarray(a, np.float64).ravel()
    if a.size == 0:
        return ValueStats(0.0, 0.0, 0.0, 0.0, 1.0, True)
    fin = bool(np.isfinite(a).all())
    b = a[np.isfinite(a)] if not fin else a
    if b.size == 0:
        return ValueStats(float("nan"), float("nan"), float("nan"), float("nan"), 0.0, False)
    return ValueStats(float(b.mean()), float(b.std()), float(b.min()), float(b.max()),
                      float((b == 0).mean()), fin)


def render_values(obj: Any, feeds: Any = None, path: str | os.PathLike | None = None,
                  level: str = "op", *, training: bool = False, explode: float = 1e3,
                  dead: float = 0.99, roll: bool = False, show_shapes: bool = True,
                  rankdir: str = "TB", expand_nested: bool = False, collapse: Any = None,
                  max_nodes: int = MAX_NODES, dpi: float | None = None,
                  title: str | None = None, device: str | None = None) -> graphviz.Digraph:
    """Run forward and draw each node's activation statistics (mean, std, range, zeros),
    coloured by its RMS on a log scale; dead (>= ``dead`` zeros), exploding and non-finite
    activations get the named styles. ``feeds`` as for :func:`render_gradients`."""
    if isinstance(obj, Tensor):
        outputs, model = [obj], None
    elif hasattr(obj, "layers"):
        model = obj
        sup = isinstance(feeds, tuple) and len(feeds) == 2 and model_loss(obj) is not None
        outputs = [obj.loss_tensor] if sup else _view._as_list(obj.outputs)
    else:
        raise TypeError(f"render_values takes a Model or a Tensor, not {type(obj).__name__}")
    nodes = _view.ancestors(outputs)
    prog = gn.compile(outputs if len(outputs) > 1 else outputs[0], training=training,
                      device=_device_of(obj, device))
    inputs = [t for t in nodes if t.kind == "input"]
    f = feeds if isinstance(feeds, Mapping) else (
        obj.feeds(*feeds) if model is not None and isinstance(feeds, tuple) and len(feeds) == 2
        else _feeds_for(obj if model is None else None, feeds, inputs))
    prog(f)
    stats = {id(t): value_stats(a) for t, a in prog.values().items()}
    v, _, _ = make_view(model if model is not None else obj, level, roll, expand_nested,
                        collapse, max_nodes, nodes=nodes)

    def item_stats(it: _view.Item) -> ValueStats | None:
        ts = it.tensors
        if it.group:
            ts = _view.boundary(v, it)[1]
        ss = [stats[id(t)] for t in ts if id(t) in stats]
        return ss[-1] if ss else None

    def klass_of(s: ValueStats | None, t: Tensor) -> str:
        if s is None:
            return "none"
        if not s.finite:
            return "nonfinite"
        if s.rms > explode:
            return "exploding"
        if t.kind == "op" and s.zeros >= dead:
            return "dead"
        return "normal"

    rms = [s.rms for it in v.items.values() if (s := item_stats(it)) is not None]
    lo, hi = _scale(rms, None, None, 1e-6, explode)

    def node_hook(it: _view.Item) -> tuple[dict, list[str]]:
        s = item_stats(it)
        klass = klass_of(s, it.tensors[-1])
        if s is None:
            return _styled(None, "none", lo, hi, it.group), []
        lines = [f'<font point-size="9">μ {esc(fmt(s.mean))}  σ {esc(fmt(s.std))}</font>',
                 f'<font point-size="9">[{esc(fmt(s.min))}, {esc(fmt(s.max))}]</font>']
        if s.zeros > 0:
            lines.append(f'<font point-size="9">zeros {100 * s.zeros:.0f}%</font>')
        if klass in ("dead", "exploding", "nonfinite"):
            lines.append(f"<b>{esc(klass)}</b>")
        return _styled(s.rms, klass, lo, hi, it.group), lines

    def legend() -> str:
        return _colorbar("activation RMS", lo, hi,
                         [("dead", f">= {100 * dead:.0f}% zeros"), ("exploding", f"> {explode:g}"),
                          ("nonfinite", "NaN or Inf")],
                         [f"mode: {'training' if training else 'inference'}; "
                          f"kernels: {getattr(prog.be, 'badge', '?')}"])

    o = Options(show_shapes=show_shapes, rankdir=rankdir, dpi=dpi, title=title,
                loss=model_loss(model),
                badge=_badge_fn(prog.be, None, v.nodes), node_hook=node_hook, legend_hook=legend)
    dot = build_digraph(v, o, name=_name_of(model if model is not None else obj))
    dot.stats = {t.name: stats[id(t)] for t in nodes if id(t) in stats}
    if path is not None:
        save(dot, path)
    return dot
