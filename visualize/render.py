"""``render``: draw a Model, Graph, Program or Tensor with Graphviz, and save the picture.

The format follows the file suffix (svg, png, pdf; gv or dot write the DOT source). Without
Graphviz's ``dot`` program the DOT source is still written next to the requested file and
:class:`GraphvizNotFound` says how to install Graphviz.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import graphviz

from graphnet.core.tensor import Tensor

from . import view as _view
from .dot import GOOD_BADGES, Options, build_digraph

MAX_NODES = 150
FORMATS = ("svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps")
SOURCE_SUFFIXES = ("gv", "dot")
BACKEND_BADGES = {"cpu": "njit", "cuda": "cuda.jit"}

INSTALL_HINT = ("install Graphviz (the `dot` program), then rerun or convert the source with "
                "`dot -T{fmt} {src} -o {out}`:\n"
                "  Debian/Ubuntu: sudo apt-get install graphviz\n"
                "  macOS:         brew install graphviz\n"
                "  conda:         conda install -c conda-forge graphviz\n"
                "  Windows/other: https://graphviz.org/download/ (and put dot on PATH)")


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` program is missing; the DOT source was written to ``source_path``."""

    def __init__(self, message: str, source_path: Path | None = None) -> None:
        super().__init__(message)
        self.source_path = source_path


class LargeGraphWarning(UserWarning):
    """A drawing past ``max_nodes`` nodes: collapse scopes or draw layers to keep it readable."""


class FallbackKernelWarning(UserWarning):
    """Some nodes ran a NumPy/Python fallback instead of a compiled kernel."""


# -- kernel badges ----------------------------------------------------------------------------

def kernel_badge(t: Tensor, be: Any = None, device: str | None = None) -> str | None:
    """Which kernel runs node ``t``: 'njit', 'cuda.jit', or a fallback name ('numpy'...).

    An op that runs NumPy code instead of a kernel says so with a class attribute
    ``badge = "numpy"``; a backend lists such op names in ``fallbacks``; with
    ``NUMBA_DISABLE_JIT=1`` the CPU kernels run as plain Python.
    """
    if t.op is None:
        return None
    own = getattr(t.op, "badge", None)
    if own:
        return str(own)
    if be is not None and t.op.name in (getattr(be, "fallbacks", ()) or ()):
        return "numpy"
    name = getattr(be, "name", None) or device or "cpu"
    badge = getattr(be, "badge", None) or BACKEND_BADGES.get(name, name)
    if badge == "njit":
        from graphnet.kernels.jit import JIT_DISABLED
        if JIT_DISABLED:
            return "python"
    return badge


def _badge_fn(be: Any, device: str | None, nodes: list[Tensor]) -> Callable:
    fn = lambda t: kernel_badge(t, be, device)  # noqa: E731
    bad = sorted({t.name for t in nodes if t.op is not None and fn(t) not in GOOD_BADGES})
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{len(bad)} node(s) run a fallback instead of a compiled kernel: "
                      f"{shown}", FallbackKernelWarning, stacklevel=3)
    return fn


# -- saving -----------------------------------------------------------------------------------

def save(dot: graphviz.Digraph, path: str | os.PathLike) -> Path:
    """Write ``dot`` to ``path`` in the format its suffix names; returns the path written."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in SOURCE_SUFFIXES:
        path.write_text(dot.source)
        return path
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the format of {str(path)!r}: use a suffix among "
                         f"{', '.join(FORMATS + SOURCE_SUFFIXES)}")
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        src = path.with_suffix(".gv")
        src.write_text(dot.source)
        raise GraphvizNotFound(
            f"cannot render {path.name}: Graphviz's `dot` program was not found on PATH. "
            f"The DOT source was written to {src}. To get the picture, "
            + INSTALL_HINT.format(fmt=fmt, src=src, out=path), src) from None
    path.write_bytes(data)
    return path


def to_svg(dot: graphviz.Digraph) -> str:
    """The SVG text of a drawing (raises GraphvizNotFound without dot)."""
    try:
        return dot.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound("Graphviz's `dot` program was not found on PATH; "
                               + INSTALL_HINT.format(fmt="svg", src="graph.gv",
                                                     out="graph.svg")) from None


# -- render -----------------------------------------------------------------------------------

def make_view(obj: Any, level: str, roll: bool, expand_nested: bool, collapse, max_nodes: int,
              nodes: list[Tensor] | None = None):
    """Collect and group the nodes of ``obj``; warn when the drawing gets too large."""
    all_nodes, outputs, model, be = _view.collect(obj)
    if nodes is not None:
        all_nodes = nodes
    v = _view.build(all_nodes, outputs, level=level, roll=roll, expand_nested=expand_nested,
                    collapse=collapse, model=model)
    if max_nodes and len(v.items) > max_nodes:
        hint = ("level='layer'" if level == "op" else "expand_nested=False")
        if v.has_steps and not roll:
            hint += " or roll=True"
        warnings.warn(f"this drawing has {len(v.items)} nodes (more than max_nodes="
                      f"{max_nodes}) and will be hard to read; try {hint}, or collapse=[scope, "
                      "...] / collapse=<depth> to draw whole scopes as boxes",
                      LargeGraphWarning, stacklevel=3)
    return v, model, be


def render(obj: Any, path: str | os.PathLike | None = None, level: str = "layer",
           show_shapes: bool = True, show_dtype: bool = False, show_params: bool = True,
           rankdir: str = "TB", expand_nested: bool = False, roll: bool = True,
           dpi: float | None = None, *, collapse: Any = None, max_nodes: int = MAX_NODES,
           mode: str | None = None, badges: bool | None = None, device: str | None = None,
           legend: bool = True, title: str | None = None) -> graphviz.Digraph:
    """Draw ``obj`` (Model, Graph, Program, Tensor or list of Tensors); save it if ``path``.

    ``level="op"`` draws every node coloured by kind and op family, each scope a cluster and
    each edge labelled with its shape; ``level="layer"`` draws one box per layer with its
    input and output shapes and parameter count. ``roll`` draws time steps (``<scope>/t<k>/``)
    as one recurrent cell; ``collapse`` (a depth or scope names) boxes whole scopes.
    ``mode`` shows training-only nodes (dropout): "train", "infer", or "both" (a dashed
    inference bypass). ``badges`` labels each node with the kernel that runs it (shown by
    default for a Program, or when ``device`` is given).
    """
    if mode not in (None, "train", "infer", "both"):
        raise ValueError(f"mode must be None, 'train', 'infer' or 'both', not {mode!r}")
    v, model, be = make_view(obj, level, roll, expand_nested, collapse, max_nodes)
    show_badges = badges if badges is not None else (be is not None or device is not None)
    loss = model_loss(model)
    o = Options(show_shapes=show_shapes, show_dtype=show_dtype, show_params=show_params,
                rankdir=rankdir, dpi=dpi, mode=mode, legend=legend, title=title, loss=loss,
                badge=_badge_fn(be, device, v.nodes) if show_badges else None)
    dot = build_digraph(v, o, name=_name_of(obj))
    if path is not None:
        save(dot, path)
    return dot


def render_modes(obj: Any, path: str | os.PathLike | None = None, **kw: Any) -> graphviz.Digraph:
    """The training and the inference graph in one picture: training-only nodes (dropout)
    are dashed, with a dashed 'inference' edge around them."""
    kw.setdefault("level", "op")
    return render(obj, path, mode="both", **kw)


def model_loss(model: Any) -> Tensor | None:
    """A compiled model's loss node, or None (an uncompiled model has none)."""
    if model is None:
        return None
    try:
        return getattr(model, "loss_tensor", None)
    except Exception:  # not compiled yet
        return None


def _name_of(obj: Any) -> str:
    if isinstance(obj, Tensor):
        obj = obj.graph
    name = getattr(obj, "name", None)
    return str(name) if isinstance(name, str) and name else "graphnet"


def shape_text_of(t: Tensor) -> str:
    from graphnet.core.tensor import fmt_shape
    return f"{fmt_shape(t.shape)} {t.dtype}"
