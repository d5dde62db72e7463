"""Non-maximum suppression and pairwise IoU of boxes ``(y1, x1, y2, x2)``.

Greedy NMS as TensorFlow's ``tf.image.non_max_suppression`` defines it: drop boxes whose
score is not above ``score_threshold``, visit the rest by decreasing score (ties: lower index
first), keep a box unless its IoU with an already kept box is above ``iou_threshold``, and
stop after ``max_output_size`` boxes. Corners may come in either order (they are sorted per
box first); a box of zero area overlaps nothing. The CPU runs the O(n^2) loop directly, and
it ends early: a suppressed box is never compared again.
"""

import numpy as np

from ..jit import kernel

__all__ = ["non_max_suppression", "box_iou"]


@kernel
def iou(ay0, ax0, ay1, ax1, by0, bx0, by1, bx1):
    """IoU of two boxes with ordered corners (y0 <= y1, x0 <= x1); 0 when either is empty."""
    zero = type(ay0)(0)
    area_a = (ay1 - ay0) * (ax1 - ax0)
    area_b = (by1 - by0) * (bx1 - bx0)
    if area_a <= zero or area_b <= zero:
        return zero
    ih = max(min(ay1, by1) - max(ay0, by0), zero)
    iw = max(min(ax1, bx1) - max(ax0, bx0), zero)
    inter = ih * iw
    return inter / (area_a + area_b - inter)


@kernel
def iou_rows(a, i, b, j):
    """IoU of boxes ``a[i]`` and ``b[j]``, corners in either order."""
    return iou(min(a[i, 0], a[i, 2]), min(a[i, 1], a[i, 3]), max(a[i, 0], a[i, 2]),
               max(a[i, 1], a[i, 3]), min(b[j, 0], b[j, 2]), min(b[j, 1], b[j, 3]),
               max(b[j, 0], b[j, 2]), max(b[j, 1], b[j, 3]))


@kernel
def corners(boxes, order):
    """The boxes ``order`` picks, corners sorted: rows (ymin, xmin, ymax, xmax)."""
    c = np.empty((order.shape[0], 4), boxes.dtype)
    for k in range(order.shape[0]):
        i = order[k]
        c[k, 0] = min(boxes[i, 0], boxes[i, 2])
        c[k, 1] = min(boxes[i, 1], boxes[i, 3])
        c[k, 2] = max(boxes[i, 0], boxes[i, 2])
        c[k, 3] = max(boxes[i, 1], boxes[i, 3])
    return c


@kernel
def candidates(boxes, scores, score_threshold):
    """``(order, c)``: indices of scores above the threshold by decreasing score (a stable
    sort, so ties keep the lower index first) and their boxes' ordered corners."""
    cand = np.nonzero(scores > score_threshold)[0]
    order = cand[np.argsort(-scores[cand], kind="mergesort")]
    return order, corners(boxes, order)


@kernel
def _nms(boxes, scores, max_out, iou_threshold, score_threshold):
    order, c = candidates(boxes, scores, score_threshold)
    n = order.shape[0]
    keep = np.empty(min(n, max_out), np.int64)
    dead = np.zeros(n, np.bool_)
    k = 0
    for i in range(n):
        if k >= max_out:
            break
        if dead[i]:
            continue
        keep[k] = order[i]
        k += 1
        for j in range(i + 1, n):
            if not dead[j] and iou(c[i, 0], c[i, 1], c[i, 2], c[i, 3],
                                   c[j, 0], c[j, 1], c[j, 2], c[j, 3]) > iou_threshold:
                dead[j] = True
    return keep[:k]


@kernel
def _box_iou(a, b, out):
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = iou_rows(a, i, b, j)
    return out


def check_boxes(boxes, scores, max_output_size: int) -> None:
    """Raise ValueError unless boxes are (n, 4), scores (n,) and max_output_size >= 0."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4) as (y1, x1, y2, x2), got "
                         f"{tuple(boxes.shape)}")
    if tuple(scores.shape) != (boxes.shape[0],):
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), one per box, got "
                         f"{tuple(scores.shape)}")
    if max_output_size < 0:
        raise ValueError(f"max_output_size must be >= 0, got {max_output_size}")


def check_pair(a, b) -> None:
    """Raise ValueError unless both box sets are (n, 4)."""
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2 or x.shape[1] != 4:
            raise ValueError(f"box_iou: {name} must have shape (n, 4), got {tuple(x.shape)}")


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, max_output_size: int,
                        iou_threshold: float = 0.5,
                        score_threshold: float = -np.inf) -> np.ndarray:
    """Indices (int64) of the boxes greedy NMS keeps, by decreasing score (TensorFlow's rule:
    suppress IoU > iou_threshold, keep scores > score_threshold, at most max_output_size)."""
    check_boxes(boxes, scores, max_output_size)
    dt = np.result_type(boxes.dtype, scores.dtype, np.float32).type
    s = np.ascontiguousarray(scores, dtype=dt)
    b = np.ascontiguousarray(boxes, dtype=dt)
    return _nms(b, s, int(max_output_size), dt(iou_threshold), dt(score_threshold))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), ``(y1, x1, y2, x2)``."""
    check_pair(a, b)
    dt = np.result_type(a.dtype, b.dtype, np.float32)
    out = np.empty((a.shape[0], b.shape[0]), dt)
    return _box_iou(np.ascontiguousarray(a, dtype=dt), np.ascontiguousarray(b, dtype=dt), out)
