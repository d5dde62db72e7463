"""Non-maximum suppression: the indices of the boxes a detector keeps, as TensorFlow defines it.

The output's length depends on the data, so its shape is ``(None,)``: the executor takes
whatever length the kernel returns (``None`` marks any size that is only known at run
time, not only the batch); the kept boxes are ``boxes[keep]`` on the host. See
``kernels/cpu/nms.py`` for the rule and ``kernels/cuda/nms.py`` for the GPU's.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op

__all__ = ["non_max_suppression"]


class NonMaxSuppression(Op):
    """keep = greedy NMS(boxes, scores): visit boxes by decreasing score, keep one unless a
    kept box overlaps it with IoU > iou_threshold. Backward: none (a selection of indices has
    no gradient; it returns None for boxes and scores)."""

    name = "non_max_suppression"
    family = "detection"

    def infer(self, boxes, scores):
        for what, t in (("boxes", boxes), ("scores", scores)):
            if t.dtype.kind != "f":
                raise GraphError(f"{what} must be floats, got {t.dtype}")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise GraphError(f"boxes must have shape (n, 4) as (y1, x1, y2, x2), got "
                             f"{fmt_shape(boxes.shape)}")
        n, s = boxes.shape[0], scores.shape
        if len(s) != 1 or (n is not None and s[0] is not None and s[0] != n):
            raise GraphError(f"scores {fmt_shape(s)} must hold one score per box of boxes "
                             f"{fmt_shape(boxes.shape)}")
        return (None,), np.dtype(np.int64)

    def forward(self, ctx, boxes, scores):
        return ctx.be.non_max_suppression(boxes, scores, self.max_output_size,
                                          self.iou_threshold, self.score_threshold)

    def backward(self, ctx, g, y, boxes, scores):
        return None, None


def non_max_suppression(boxes, scores, max_output_size: int, iou_threshold: float = 0.5,
                        score_threshold: float = -math.inf) -> Tensor:
    """Indices (int64, shape (None,)) of the boxes greedy NMS keeps, highest score first;
    boxes (n, 4) ``(y1, x1, y2, x2)``, scores (n,). A box is suppressed by a kept one when
    their IoU is above ``iou_threshold``; scores not above ``score_threshold`` are dropped
    first; at most ``max_output_size`` are kept; ties go to the lower index (TensorFlow's
    ``tf.image.non_max_suppression``)."""
    if int(max_output_size) != max_output_size or max_output_size < 0:
        raise GraphError(f"non_max_suppression: max_output_size must be an int >= 0, got "
                         f"{max_output_size!r}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise GraphError(f"non_max_suppression: iou_threshold must be in [0, 1], got "
                         f"{iou_threshold}")
    return apply(NonMaxSuppression(max_output_size=int(max_output_size),
                                   iou_threshold=float(iou_threshold),
                                   score_threshold=float(score_threshold)), [boxes, scores])
