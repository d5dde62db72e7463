"""Shared demo helpers: headless matplotlib figures, tqdm progress, timing, decision maps.

Demos import matplotlib through here, so every picture is drawn by the Agg backend (no
display needed) and saved as a PNG of a modest size.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: demos run in CI and over ssh

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

__all__ = ["plt", "savefig", "progress", "Stopwatch", "decision_map", "scatter_classes",
           "rounded", "draw_layers"]

# One look for every lecture's pictures: readable at the size docs/ shows them.
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10,
                     "axes.titlesize": 11, "legend.fontsize": 9, "axes.grid": True,
                     "grid.alpha": 0.3})

CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def savefig(fig, out: Path, name: str) -> Path:
    """Save ``fig`` as ``out/name.png`` (tight, compact) and close it; returns the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    # A 256-colour palette looks the same for line plots and keeps the PNG 2-3x smaller.
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)
    return path


def draw_layers(model: Any, out: Path, name: str, **kw: Any) -> str:
    """``model`` drawn at layer level with shapes as ``out/name.png``: the path, or a line
    starting "no drawing" that says how to get Graphviz (its DOT source is written anyway)."""
    import graphnet.visualize as viz

    path = Path(out) / f"{name}.png"
    try:
        viz.render(model, path, level="layer", show_shapes=True, **kw)
    except viz.GraphvizNotFound as e:
        return f"no drawing: {e}"
    return str(path)


def progress(iterable: Iterable, desc: str, total: int | None = None, quick: bool = False,
             **kw: Any) -> Iterable:
    """A tqdm bar on stderr; silent in quick runs and when stderr is not a terminal."""
    disable = quick or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, **kw)


class Stopwatch:
    """Wall-clock time that can be paused, so evaluation does not count as training time."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._t0: float | None = None

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.elapsed += time.perf_counter() - self._t0
        self._t0 = None


def decision_map(ax, predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray,
                 y: np.ndarray, steps: int = 200, margin: float = 0.5) -> None:
    """Shade ``predict``'s probability of class 1 over the plane, draw its 0.5 line and the data.

    ``predict`` maps float32 points of shape (n, 2) to probabilities of shape (n,) or (n, 1).
    """
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1).astype(np.float32)
    p = np.asarray(predict(grid)).reshape(g0.shape)
    cs = ax.contourf(g0, g1, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
    ax.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=1.5)
    ax.figure.colorbar(cs, ax=ax, label="predicted P(y = 1)", fraction=0.046, pad=0.04)
    scatter_classes(ax, X, y)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="$x_1$", ylabel="$x_2$")
    ax.set_aspect("equal", adjustable="box")


def scatter_classes(ax, X: np.ndarray, y: np.ndarray) -> None:
    """The data points, one colour per class, with a legend."""
    for c in np.unique(y):
        m = y == c
        ax.scatter(X[m, 0], X[m, 1], s=12, color=CLASS_COLORS[int(c) % len(CLASS_COLORS)],
                   edgecolors="white", linewidths=0.4, label=f"class {int(c)}")
    ax.legend(loc="upper left", framealpha=0.9)


def rounded(x: Any, digits: int = 4) -> Any:
    """Plain Python numbers (rounded) for a printed summary; arrays become lists."""
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    if isinstance(x, np.ndarray):
        return rounded(x.tolist(), digits)
    if isinstance(x, (float, np.floating)):
        return float(round(float(x), digits))
    if isinstance(x, np.integer):
        return int(x)
    return x
