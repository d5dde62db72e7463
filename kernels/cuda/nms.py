"""Non-maximum suppression and pairwise IoU on the GPU, as torchvision's CUDA NMS does it.

The O(n^2) part runs in parallel: after the candidates are sorted by score, a kernel
computes each box's suppression bitmask, word by word (thread ``t`` computes word ``w`` of
box ``i``'s row: bit ``k`` says whether box ``64 w + k``, later in score order, overlaps
box ``i`` by more than the threshold). The greedy pass over the mask is serial by nature:
whether box ``i`` is kept depends on whether the boxes that could suppress it were kept
themselves, a chain through every earlier box. It runs on the host over the downloaded
mask, O(n^2 / 64) word ORs, which is small next to the n^2 IoUs. The candidate sort and
filter (n scores) runs on the host too, with the CPU kernel's own function, so both
backends order ties the same way. The IoU formula is the CPU kernel's (``_base.twin``).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..cpu import nms as _cpu
from ..jit import kernel
from . import _base

__all__ = ["non_max_suppression", "box_iou"]

iou = _base.twin(_cpu.iou)
iou_rows = _base.twin(_cpu.iou_rows, iou=iou)
WORD = 64  # boxes per mask word (uint64 bits)


@cuda.jit
def _iou_mask(c, iou_threshold, mask):
    # mask[i, w] bit k: box j = 64 w + k comes after box i and overlaps it above the threshold
    n, words = mask.shape
    for t in range(cuda.grid(1), mask.size, cuda.gridsize(1)):
        i = t // words
        w = t % words
        bits = np.uint64(0)
        for k in range(WORD):
            j = w * WORD + k
            if j > i and j < n and iou(c[i, 0], c[i, 1], c[i, 2], c[i, 3],
                                       c[j, 0], c[j, 1], c[j, 2], c[j, 3]) > iou_threshold:
                bits |= np.uint64(1) << np.uint64(k)
        mask[i, w] = bits


@cuda.jit
def _pairwise(a, b, out):
    m = out.shape[1]
    for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[t // m, t % m] = iou_rows(a, t // m, b, t % m)


@kernel
def _greedy(mask, max_out):
    # host pass: keep box i unless a kept box's mask row has marked it
    n, words = mask.shape
    removed = np.zeros(words, np.uint64)
    keep = np.empty(min(n, max_out), np.int64)
    k = 0
    for i in range(n):
        if k >= max_out:
            break
        if (removed[i // WORD] >> np.uint64(i % WORD)) & np.uint64(1):
            continue
        keep[k] = i
        k += 1
        for w in range(i // WORD, words):
            removed[w] |= mask[i, w]
    return keep[:k]


def non_max_suppression(boxes, scores, max_output_size: int, iou_threshold: float = 0.5,
                        score_threshold: float = -np.inf):
    """Indices (int64, on the device) of the boxes greedy NMS keeps, by decreasing score
    (TensorFlow's rule: suppress IoU > iou_threshold, keep scores > score_threshold)."""
    from . import asarray, to_host

    _cpu.check_boxes(boxes, scores, max_output_size)
    b, s = to_host(boxes), to_host(scores)
    dt = np.result_type(b.dtype, s.dtype, np.float32).type
    order, c = _cpu.candidates(np.ascontiguousarray(b, dtype=dt),
                               np.ascontiguousarray(s, dtype=dt), dt(score_threshold))
    n = order.shape[0]
    if n == 0 or max_output_size == 0:
        return asarray(np.zeros(0, np.int64))
    mask = _base.empty((n, (n + WORD - 1) // WORD), np.uint64)
    _iou_mask[_base.blocks(mask.size), _base.TPB](asarray(c), dt(iou_threshold), mask)
    keep = _greedy(mask.copy_to_host(), int(max_output_size))
    return asarray(order[keep])


def box_iou(a, b):
    """``(N, M)`` pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), ``(y1, x1, y2, x2)``."""
    from . import asarray

    _cpu.check_pair(a, b)
    dt = np.result_type(a.dtype, b.dtype, np.float32)
    out = _base.empty((a.shape[0], b.shape[0]), dt)
    if out.size:
        _pairwise[_base.blocks(out.size), _base.TPB](asarray(a, dt), asarray(b, dt), out)
    return out
