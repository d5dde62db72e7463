"""matplotlib figures: training curves, gradient norms, image grids, attention, segmentation,
boxes. Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing
global is touched) and saves it when given ``path``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle


def _finish(fig: Figure, path: str | os.PathLike | None, dpi: int = 100) -> Figure:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def _history_dict(history: Any) -> dict[str, list[float]]:
    h = getattr(history, "history", history)
    if not isinstance(h, Mapping):
        raise TypeError("plot_history takes a History (model.fit's return) or a dict of lists")
    return {k: list(v) for k, v in h.items()}


def _stop_points(history: Any, callbacks: Sequence[Any], monitor: str,
                 values: dict[str, list[float]]) -> tuple[int | None, int | None]:
    """(best epoch, stopped epoch) from an EarlyStopping callback, else from the data."""
    for cb in list(callbacks or []) + list(getattr(getattr(history, "model", None),
                                                   "callbacks", []) or []):
        if hasattr(cb, "best_epoch") and hasattr(cb, "stopped_epoch"):
            return int(cb.best_epoch), (int(cb.stopped_epoch) or None)
    series = values.get(monitor)
    if not series:
        return None, None
    mode_max = "acc" in monitor
    best = int(np.nanargmax(series) if mode_max else np.nanargmin(series))
    return best, None


def plot_history(history: Any, metrics: Sequence[str] | None = None,
                 early_stopping: Any = None, monitor: str = "val_loss",
                 path: str | os.PathLike | None = None, figsize=(7, 3.2)) -> Figure:
    """Training and validation curves, one panel per metric, with the early-stopping point.

    ``early_stopping`` is the EarlyStopping callback (its ``best_epoch``/``stopped_epoch``),
    or None to mark the best epoch of ``monitor`` found in the history.
    """
    values = _history_dict(history)
    names = list(metrics) if metrics else [k for k in values if not k.startswith("val_")]
    fig = Figure(figsize=(figsize[0] * max(1, len(names)) / 1.6, figsize[1]))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    best, stopped = _stop_points(history, [early_stopping] if early_stopping else [],
                                 monitor, values)
    epochs = getattr(history, "epoch", None)
    for ax, name in zip(axes, names):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in values:
                ys = values[key]
                xs = list(epochs) if epochs and len(epochs) == len(ys) else range(len(ys))
                ax.plot(xs, ys, style, marker="o", ms=3, label=key)
        if best is not None:
            ax.axvline(best, color="#2e7d32", lw=1.2, ls=":", label=f"best (epoch {best})")
        if stopped:
            ax.axvline(stopped, color="#c62828", lw=1.2, ls="-.",
                       label=f"stopped (epoch {stopped})")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_gradient_norms(norms: Any, path: str | os.PathLike | None = None,
                        xlabel: str | None = None, title: str = "gradient norm",
                        vanish: float = 1e-7, explode: float = 1e3, figsize=(6.5, 3.5)
                        ) -> Figure:
    """Gradient norms on a log scale.

    * a dict ``{layer: [norm per training step]}`` draws one line per layer over training;
    * a 1-D array draws the norm per time step (one backward pass through time);
    * a 2-D array ``(training steps, time steps)`` draws a heat map of both.
    Dotted lines mark the vanishing and exploding thresholds.
    """
    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    if isinstance(norms, Mapping):
        for name, ys in norms.items():
            ax.plot(np.arange(len(ys)), np.asarray(ys, float), label=str(name))
        ax.set_xlabel(xlabel or "training step")
        ax.legend(fontsize=8)
    else:
        a = np.asarray(norms, float)
        if a.ndim == 1:
            ax.plot(np.arange(len(a)), a, marker="o")
            ax.set_xlabel(xlabel or "time step t")
        elif a.ndim == 2:
            pos = a[np.isfinite(a) & (a > 0)]
            lo, hi = (pos.min(), pos.max()) if pos.size else (1e-8, 1.0)
            im = ax.imshow(np.where(a > 0, a, np.nan).T, aspect="auto", origin="lower",
                           norm=LogNorm(lo, max(hi, lo * 10)), cmap="viridis")
            fig.colorbar(im, ax=ax, label="‖∂L/∂h_t‖")
            ax.set_xlabel(xlabel or "training step")
            ax.set_ylabel("time step t")
            ax.set_title(title)
            return _finish(fig, path)
        else:
            raise ValueError("norms must be a dict of sequences, or a 1-D or 2-D array")
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    for thr, name, color in ((vanish, "vanishing", "#9e9e9e"), (explode, "exploding", "#d50000")):
        if lo <= thr <= hi:
            ax.axhline(thr, color=color, ls=":", lw=1)
            ax.text(ax.get_xlim()[0], thr, f" {name}", color=color, va="bottom", fontsize=8)
    ax.set_ylabel("‖gradient‖ (log)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return _finish(fig, path)


def _as_images(images: Any) -> list[np.ndarray]:
    a = np.asarray(images) if not isinstance(images, (list, tuple)) else None
    if a is None:
        return [np.asarray(i) for i in images]
    if a.ndim == 2:
        return [a]
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        return list(a)  # (N, H, W)
    if a.ndim == 3:
        return [a]
    return list(a)      # (N, H, W, C)


def image_grid(images: Any, titles: Sequence[str] | None = None, ncols: int | None = None,
               cmap: str = "gray", path: str | os.PathLike | None = None,
               suptitle: str | None = None, size: float = 1.6) -> Figure:
    """Images in a grid (N,H,W / N,H,W,1 / N,H,W,3); channels of 1 are drawn with ``cmap``."""
    ims = _as_images(images)
    n = len(ims)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        im = ims[i]
        if im.ndim == 3 and im.shape[-1] == 1:
            im = im[..., 0]
        ax.imshow(im, cmap=cmap if im.ndim == 2 else None, interpolation="nearest")
        if titles is not None and i < len(titles):
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return _finish(fig, path)


def conv_filters(kernel: Any, path: str | os.PathLike | None = None, **kw: Any) -> Figure:
    """The filters of a Conv2D kernel ``(kh, kw, in, out)``: one image per output channel
    (the first input channel, or RGB when there are three)."""
    k = np.asarray(kernel, float)
    if k.ndim != 4:
        raise ValueError(f"a conv kernel has shape (kh, kw, in, out), got {k.shape}")
    ims = []
    for o in range(k.shape[3]):
        f = k[:, :, :3, o] if k.shape[2] == 3 else k[:, :, 0, o]
        f = (f - f.min()) / (np.ptp(f) or 1.0)
        ims.append(f)
    kw.setdefault("titles", [f"filter {o}" for o in range(k.shape[3])])
    kw.setdefault("cmap", "viridis")
    return image_grid(ims, path=path, **kw)


def feature_maps(fmap: Any, path: str | os.PathLike | None = None, **kw: Any) -> Figure:
    """The channels of one feature map ``(H, W, C)`` (or the first of a batch) as a grid."""
    a = np.asarray(fmap, float)
    if a.ndim == 4:
        a = a[0]
    kw.setdefault("titles", [f"channel {c}" for c in range(a.shape[-1])])
    kw.setdefault("cmap", "viridis")
    return image_grid([a[..., c] for c in range(a.shape[-1])], path=path, **kw)


def attention_map(weights: Any, queries: Sequence[str] | None = None,
                  keys: Sequence[str] | None = None, path: str | os.PathLike | None = None,
                  title: str = "attention softmax(QKᵀ/√d)", annotate: bool | None = None,
                  figsize=None) -> Figure:
    """A heat map of attention weights (queries down, keys across), rows summing to one."""
    w = np.asarray(weights, float)
    if w.ndim == 3:
        w = w[0]
    nq, nk = w.shape
    fig = Figure(figsize=figsize or (max(3.5, 0.45 * nk + 1.5), max(3.0, 0.45 * nq + 1)))
    ax = fig.subplots()
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=max(1e-12, w.max()))
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(nk), list(keys) if keys is not None else range(nk),
                  rotation=90 if keys is not None else 0)
    ax.set_yticks(range(nq), list(queries) if queries is not None else range(nq))
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if annotate if annotate is not None else (nq * nk <= 64):
        for i in range(nq):
            for j in range(nk):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if w[i, j] < 0.6 * w.max() else "black")
    ax.set_title(title)
    return _finish(fig, path)


def segmentation_overlay(image: Any, mask: Any, class_names: Sequence[str] | None = None,
                         alpha: float = 0.45, path: str | os.PathLike | None = None,
                         num_classes: int | None = None) -> Figure:
    """An image with its class mask (H, W ints, or H, W, C scores) painted over it."""
    img = np.asarray(image, float)
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.argmax(-1)
    k = int(num_classes or (len(class_names) if class_names else m.max() + 1))
    from matplotlib import colormaps
    colors = colormaps["tab10" if k <= 10 else "tab20"](np.arange(k) % 20)
    fig = Figure(figsize=(8, 3.2))
    a0, a1, a2 = fig.subplots(1, 3)
    show = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    for ax in (a0, a2):
        ax.imshow(show, cmap="gray" if show.ndim == 2 else None)
    a1.imshow(colors[m][..., :3])
    over = np.zeros(m.shape + (4,))
    over[..., :3] = colors[m][..., :3]
    over[..., 3] = alpha
    a2.imshow(over)
    for ax, t in zip((a0, a1, a2), ("image", "mask", "overlay")):
        ax.set_title(t)
        ax.axis("off")
    names = list(class_names) if class_names else [f"class {i}" for i in range(k)]
    present = sorted(set(np.unique(m).tolist()))
    fig.legend(handles=[Patch(color=colors[i], label=names[i]) for i in present if i < k],
               loc="lower center", ncol=min(len(present), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if path is not None:
        fig.savefig(path)
    return fig


def boxes_on_image(image: Any, boxes: Any, labels: Sequence[Any] | None = None,
                   scores: Sequence[float] | None = None, fmt: str = "xyxy",
                   class_names: Sequence[str] | None = None,
                   path: str | os.PathLike | None = None, figsize=(4, 4)) -> Figure:
    """Detection boxes drawn on an image: ``fmt`` "xyxy" (x0, y0, x1, y1) or "xywh"."""
    img = np.asarray(image, float)
    b = np.asarray(boxes, float).reshape(-1, 4)
    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    show = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    ax.imshow(show, cmap="gray" if show.ndim == 2 else None)
    from matplotlib import colormaps
    cmap = colormaps["tab10"]
    for i, (x0, y0, x1, y1) in enumerate(b):
        w, h = (x1, y1) if fmt == "xywh" else (x1 - x0, y1 - y0)
        lab = labels[i] if labels is not None else None
        color = cmap(int(lab) % 10 if isinstance(lab, (int, np.integer)) else i % 10)
        ax.add_patch(Rectangle((x0, y0), w, h, fill=False, edgecolor=color, lw=2))
        text = []
        if lab is not None:
            text.append(class_names[int(lab)] if class_names is not None else str(lab))
        if scores is not None:
            text.append(f"{scores[i]:.2f}")
        if text:
            ax.text(x0, y0, " ".join(text), color="white", fontsize=8, va="bottom",
                    bbox={"facecolor": color, "pad": 1, "lw": 0})
    ax.axis("off")
    return _finish(fig, path)


__all__ = ["plot_history", "plot_gradient_norms", "image_grid", "conv_filters", "feature_maps",
           "attention_map", "segmentation_overlay", "boxes_on_image"]
