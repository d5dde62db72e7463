"""Box utilities for a Faster R-CNN detector (Lecture 3), on the host in NumPy.

Boxes are ``(y1, x1, y2, x2)`` in image pixels, as ``gn.roi_align`` and
``gn.non_max_suppression`` take them. A region proposal network predicts, for each anchor
box on its feature grid, an objectness score and a correction ``(dy, dx, dh, dw)``:
``anchors`` lays the anchors out, ``match_anchors`` labels them against the ground truth
(the RPN's training targets), ``encode_boxes``/``decode_boxes`` convert between boxes and
corrections, and ``nms`` prunes overlapping proposals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["box_iou", "anchors", "encode_boxes", "decode_boxes", "match_anchors", "nms"]

# decode_boxes clamps dh and dw here (torchvision's value): exp(4.1) = 62x the anchor's side
# at most, so a wild early prediction cannot overflow to inf
_MAX_LOG_SCALE = math.log(1000.0 / 16)


def _boxes(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{what} must have shape (n, 4) as (y1, x1, y2, x2), got {a.shape}")
    return a if a.dtype.kind == "f" else a.astype(np.float32)


def box_iou(a, b) -> np.ndarray:
    """``(N, M)`` intersection over union of every box of ``a`` (N, 4) with every box of
    ``b`` (M, 4); 0 where either box is empty."""
    from .kernels.cpu import nms as _nms  # Numba loads on first use, not with graphnet

    return _nms.box_iou(_boxes(a, "a"), _boxes(b, "b"))


def anchors(feature_shape: Sequence[int], stride: float, sizes: Sequence[float] = (32,),
            ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
    """``(H * W * A, 4)`` anchor boxes for a feature map of ``feature_shape`` (H, W, ...):
    one per cell, size and ratio (A = len(sizes) * len(ratios)), ordered as an NHWC head's
    outputs ``(H, W, A)`` flatten. Cell (i, j) is centred at ``((i + 0.5) s, (j + 0.5) s)``
    (s = ``stride``, image pixels per cell); an anchor of size z and ratio r = height / width
    has area z^2: height ``z sqrt(r)``, width ``z / sqrt(r)``."""
    H, W = int(feature_shape[0]), int(feature_shape[1])
    r = np.asarray(ratios, np.float64)
    z = np.asarray(sizes, np.float64)
    if stride <= 0 or z.size == 0 or r.size == 0 or np.any(z <= 0) or np.any(r <= 0):
        raise ValueError(f"anchors need stride > 0 and positive sizes and ratios, got stride="
                         f"{stride}, sizes={list(sizes)}, ratios={list(ratios)}")
    h = (z[:, None] * np.sqrt(r)[None, :]).reshape(-1)  # (A,), sizes outer, ratios inner
    w = (z[:, None] / np.sqrt(r)[None, :]).reshape(-1)
    cy = (np.arange(H) + 0.5) * stride
    cx = (np.arange(W) + 0.5) * stride
    cy, cx = cy[:, None, None], cx[None, :, None]
    out = np.stack(np.broadcast_arrays(cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2), -1)
    return out.reshape(-1, 4).astype(np.float32)


def _centre(b: np.ndarray) -> tuple[np.ndarray, ...]:
    h = b[:, 2] - b[:, 0]
    w = b[:, 3] - b[:, 1]
    return b[:, 0] + 0.5 * h, b[:, 1] + 0.5 * w, h, w


def encode_boxes(anchors, gt, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """``(n, 4)`` corrections ``(dy, dx, dh, dw)`` that turn each anchor into its box:
    ``dy = (y - ya) / ha``, ``dx = (x - xa) / wa``, ``dh = log(h / ha)``, ``dw = log(w / wa)``
    (centres and sizes), each times its ``weights`` entry (Faster R-CNN's parameterization)."""
    a, g = _boxes(anchors, "anchors"), _boxes(gt, "gt")
    if a.shape != g.shape:
        raise ValueError(f"encode_boxes needs one box per anchor: anchors {a.shape}, gt "
                         f"{g.shape}")
    ya, xa, ha, wa = _centre(a)
    y, x, h, w = _centre(g)
    wy, wx, wh, ww = weights
    d = np.stack([wy * (y - ya) / ha, wx * (x - xa) / wa, wh * np.log(h / ha),
                  ww * np.log(w / wa)], 1)
    return d.astype(np.result_type(a.dtype, g.dtype))


def decode_boxes(anchors, deltas, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
                 ) -> np.ndarray:
    """The inverse of ``encode_boxes``: boxes ``(n, 4)`` from anchors and ``(dy, dx, dh, dw)``;
    ``dh`` and ``dw`` are clamped to log(1000 / 16) (torchvision's guard against overflow)."""
    a, d = _boxes(anchors, "anchors"), _boxes(deltas, "deltas")
    if a.shape != d.shape:
        raise ValueError(f"decode_boxes needs one delta per anchor: anchors {a.shape}, deltas "
                         f"{d.shape}")
    ya, xa, ha, wa = _centre(a)
    wy, wx, wh, ww = weights
    y = ya + d[:, 0] / wy * ha
    x = xa + d[:, 1] / wx * wa
    h = ha * np.exp(np.minimum(d[:, 2] / wh, _MAX_LOG_SCALE))
    w = wa * np.exp(np.minimum(d[:, 3] / ww, _MAX_LOG_SCALE))
    out = np.stack([y - 0.5 * h, x - 0.5 * w, y + 0.5 * h, x + 0.5 * w], 1)
    return out.astype(np.result_type(a.dtype, d.dtype))


def match_anchors(anchors, gt, pos_iou: float = 0.7, neg_iou: float = 0.3
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, targets)`` for training an RPN: labels (n,) int64 are 1 (object) where an
    anchor's best IoU with a ground-truth box is >= ``pos_iou``, or where the anchor is the
    best one for some box (so that every box has a positive anchor); 0 (background) below
    ``neg_iou``; -1 (ignored) in between. ``targets`` (n, 4) encode each positive anchor's
    best box (``encode_boxes``) and are 0 elsewhere."""
    a = _boxes(anchors, "anchors")
    g = _boxes(gt, "gt")
    if not 0.0 <= neg_iou <= pos_iou <= 1.0:
        raise ValueError(f"match_anchors needs 0 <= neg_iou <= pos_iou <= 1, got neg_iou="
                         f"{neg_iou}, pos_iou={pos_iou}")
    n = a.shape[0]
    labels = np.zeros(n, np.int64)
    targets = np.zeros((n, 4), a.dtype)
    if g.shape[0] == 0 or n == 0:
        return labels, targets
    iou = box_iou(a, g)
    best = iou.argmax(1)
    best_iou = iou[np.arange(n), best]
    labels[best_iou >= neg_iou] = -1
    labels[best_iou >= pos_iou] = 1
    # every ground-truth box's best anchors (ties included) are positives, matched to
    # their own best box, as in Faster R-CNN and torchvision
    per_gt = iou.max(0)
    low = np.nonzero((iou == per_gt[None, :]) & (per_gt[None, :] > 0))[0]
    labels[low] = 1
    pos = labels == 1
    targets[pos] = encode_boxes(a[pos], g[best[pos]])
    return labels, targets


def nms(boxes, scores, iou_threshold: float = 0.5, max_output_size: int | None = None,
        score_threshold: float = -math.inf) -> np.ndarray:
    """Indices (int64) of the boxes greedy NMS keeps, highest score first: the CPU kernel of
    ``gn.non_max_suppression`` (IoU > ``iou_threshold`` suppresses) called directly."""
    b = _boxes(boxes, "boxes")
    s = np.asarray(scores)
    limit = b.shape[0] if max_output_size is None else int(max_output_size)
    from .kernels.cpu import nms as _nms

    return _nms.non_max_suppression(b, s, limit, iou_threshold, score_threshold)
