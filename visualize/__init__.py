"""Graphviz drawings of graphs and gradients, and matplotlib plots.

``render`` draws a Model, Graph, Program or Tensor at layer or op level; ``render_gradients``
and ``render_values`` colour the same drawing by gradient norms or activation statistics;
``render_error`` draws a build-time shape error at the node that raised it. ``plots`` holds
the matplotlib figures (training curves, gradient norms, image grids, attention maps...).
"""

from .errors import draw_shape_error, render_error
from .gradients import (
    GradientReport,
    classify,
    grad_color,
    gradient_norms,
    render_gradients,
    render_values,
)
from .jupyter import mimebundle
from .render import (
    FallbackKernelWarning,
    GraphvizNotFound,
    LargeGraphWarning,
    kernel_badge,
    render,
    render_modes,
    save,
    to_svg,
)

__all__ = ["render", "render_modes", "render_gradients", "render_values", "render_error",
           "draw_shape_error", "save", "to_svg", "mimebundle", "kernel_badge", "classify",
           "grad_color", "gradient_norms", "GradientReport", "GraphvizNotFound",
           "LargeGraphWarning", "FallbackKernelWarning", "plots"]


def __getattr__(name: str):
    # matplotlib is optional: import the plots module only when asked for
    if name == "plots":
        import importlib
        return importlib.import_module(__name__ + ".plots")
    raise AttributeError(f"module 'graphnet.visualize' has no attribute {name!r}")
