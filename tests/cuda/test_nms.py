"""NMS and pairwise IoU on the GPU against their CPU twins (simulated unless
GRAPHNET_REAL_GPU=1): the kept indices must be identical, and one program on device="cuda"."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check

pytestmark = [pytest.mark.cuda, pytest.mark.lecture3]


def _boxes(n, seed=0, dtype=np.float32):
    r = np.random.default_rng(seed)
    yx = r.uniform(0, 40, (n, 2))
    return (np.concatenate([yx, yx + r.uniform(4, 20, (n, 2))], 1).astype(dtype),
            r.uniform(size=n).astype(dtype))


@pytest.mark.parametrize("max_out,iou_thr,score_thr", [(100, 0.5, -np.inf), (7, 0.3, 0.2),
                                                       (0, 0.5, -np.inf)])
def test_nms_kernel(K, C, max_out, iou_thr, score_thr):
    boxes, scores = _boxes(70)  # 70 boxes: two mask words per row
    scores[5] = scores[6]  # a tie
    keep = check(K, C, "non_max_suppression", boxes, scores, max_out, iou_thr, score_thr,
                 exact=True)
    assert keep.dtype == np.int64 and len(keep) <= max_out


def test_nms_edge_cases(K, C):
    b64, s64 = _boxes(10, 1, np.float64)
    check(K, C, "non_max_suppression", b64, s64, 10, 0.4, exact=True)
    check(K, C, "non_max_suppression", b64[:, [2, 3, 0, 1]], s64, 10, 0.4, exact=True)
    check(K, C, "non_max_suppression", b64[:0], s64[:0], 10, 0.4, exact=True)
    check(K, C, "non_max_suppression", b64, s64, 10, 0.4, 2.0, exact=True)  # none above


def test_box_iou(K, C):
    a, _ = _boxes(5, 2)
    b, _ = _boxes(3, 3)
    b[0] = b[0, [2, 3, 0, 1]]  # corners flipped
    b[1, 2] = b[1, 0]  # zero area
    check(K, C, "box_iou", a, b)


def test_program_on_cuda_matches_cpu():
    boxes, scores = _boxes(20, 4)
    with gn.Graph():
        b = gn.Input((4,), name="boxes")
        s = gn.Input((), name="scores")
        keep = gn.non_max_suppression(b, s, 8, 0.3)
    feeds = {b: boxes, s: scores}
    np.testing.assert_array_equal(gn.compile(keep, device="cuda")(feeds),
                                  gn.compile(keep)(feeds))
