"""Jupyter display: models, graphs and tensors show inline as SVG drawings.

``Tensor._repr_mimebundle_`` (and Graph's, Model's) call :func:`mimebundle`; without Graphviz
the notebook shows the plain text repr and a one-line hint instead of a traceback.
"""

from __future__ import annotations

from typing import Any

from .render import GraphvizNotFound, render, to_svg

INLINE_MAX_NODES = 60


def mimebundle(obj: Any, include=None, exclude=None) -> dict[str, str] | None:
    """``{"image/svg+xml": ..., "text/plain": ...}`` for a Tensor, Graph or Model."""
    import warnings
    text = repr(obj)
    is_model = hasattr(obj, "layers")
    level = "layer" if is_model else "op"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dot = render(obj, level=level, max_nodes=0)
            if level == "op" and len(dot.body) > 3 * INLINE_MAX_NODES:
                dot = render(obj, level="layer", max_nodes=0)  # big graphs: one box per layer
            svg = to_svg(dot)
    except GraphvizNotFound:
        return {"text/plain": text + "\n(install Graphviz's `dot` to see the drawing)"}
    except Exception:  # never break a notebook's display of an object
        return {"text/plain": text}
    bundle = {"image/svg+xml": svg, "text/plain": text}
    if include:
        bundle = {k: v for k, v in bundle.items() if k in include}
    if exclude:
        bundle = {k: v for k, v in bundle.items() if k not in exclude}
    return bundle


def svg(obj: Any) -> str | None:
    """The SVG drawing alone (for ``_repr_svg_``)."""
    return (mimebundle(obj) or {}).get("image/svg+xml")
