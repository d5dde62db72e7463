"""Faster R-CNN box helpers: IoU of known boxes, anchors, encode/decode, matching, nms."""

import numpy as np
import pytest

from graphnet import detection as det

pytestmark = pytest.mark.lecture3


def test_box_iou_of_known_boxes():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [5, 5, 5, 9]], np.float64)  # last: zero area
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 0, 0, 2]], np.float64)  # last: flipped a[0]
    want = np.array([[1 / 7, 1.0, 1.0],
                     [0.0, 0.25, 0.25],
                     [0.0, 0.0, 0.0]])
    got = det.box_iou(a, b)
    assert got.shape == (3, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert det.box_iou(a.astype(np.float32), b[:0].astype(np.float32)).shape == (3, 0)
    with pytest.raises(ValueError, match=r"must have shape \(n, 4\)"):
        det.box_iou(a[:, :3], b)


def test_anchor_count_centres_and_sizes():
    A = det.anchors((3, 4), stride=16, sizes=(32, 64), ratios=(0.5, 1.0, 2.0))
    assert A.shape == (3 * 4 * 6, 4) and A.dtype == np.float32
    A = A.reshape(3, 4, 6, 4)
    cy, cx = (A[..., 0] + A[..., 2]) / 2, (A[..., 1] + A[..., 3]) / 2
    np.testing.assert_allclose(cy, np.broadcast_to((np.arange(3) * 16 + 8)[:, None, None],
                                                   (3, 4, 6)), rtol=1e-6)
    np.testing.assert_allclose(cx, np.broadcast_to((np.arange(4) * 16 + 8)[None, :, None],
                                                   (3, 4, 6)), rtol=1e-6)
    h, w = A[0, 0, :, 2] - A[0, 0, :, 0], A[0, 0, :, 3] - A[0, 0, :, 1]
    np.testing.assert_allclose(h * w, [32**2] * 3 + [64**2] * 3, rtol=1e-5)  # area = size^2
    np.testing.assert_allclose(h / w, [0.5, 1, 2] * 2, rtol=1e-5)  # ratio = height / width
    with pytest.raises(ValueError, match="stride > 0"):
        det.anchors((3, 4), stride=0)


def test_encode_decode_round_trip(rng):
    A = det.anchors((4, 4), 8, sizes=(16, 24)).astype(np.float64)
    yx = rng.uniform(0, 30, (len(A), 2))
    gt = np.concatenate([yx, yx + rng.uniform(2, 40, (len(A), 2))], 1)
    for w in [(1, 1, 1, 1), (10, 10, 5, 5)]:
        d = det.encode_boxes(A, gt, weights=w)
        np.testing.assert_allclose(det.decode_boxes(A, d, weights=w), gt, rtol=1e-10,
                                   atol=1e-10)
    # an anchor encodes to zero against itself; known shift and scale
    np.testing.assert_allclose(det.encode_boxes(A, A), 0, atol=1e-12)
    d = det.encode_boxes(np.array([[0, 0, 10, 20.]]), np.array([[5, 0, 25, 20.]]))
    np.testing.assert_allclose(d, [[1.0, 0.0, np.log(2), 0.0]], atol=1e-12)


def test_decode_clamps_huge_scales():
    box = det.decode_boxes(np.array([[0, 0, 16, 16.]]), np.array([[0, 0, 50.0, 50.0]]))
    assert np.all(np.isfinite(box)) and box[0, 2] - box[0, 0] == pytest.approx(1000.0)


def test_match_anchors_labels_and_targets():
    anchors = np.array([[0, 0, 10, 10],      # IoU 1 with gt 0: positive
                        [0, 0, 10, 13],      # IoU 10/13 = 0.77 with gt 0: positive
                        [0, 0, 10, 20],      # IoU 0.5: ignored
                        [50, 50, 60, 60],    # no overlap: background
                        [100, 100, 130, 130],  # best anchor of gt 1 (IoU 0.11): positive
                        [104, 104, 140, 140]], np.float64)  # IoU 0.04 with gt 1: background
    gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float64)
    labels, targets = det.match_anchors(anchors, gt, pos_iou=0.7, neg_iou=0.3)
    np.testing.assert_array_equal(labels, [1, 1, -1, 0, 1, 0])
    assert labels.dtype == np.int64 and targets.shape == (6, 4)
    np.testing.assert_allclose(targets[labels == 1],
                               det.encode_boxes(anchors[[0, 1, 4]], gt[[0, 0, 1]]), rtol=1e-12)
    np.testing.assert_array_equal(targets[labels != 1], 0.0)
    # no ground truth: everything is background
    labels, targets = det.match_anchors(anchors, gt[:0])
    np.testing.assert_array_equal(labels, 0)
    np.testing.assert_array_equal(targets, 0.0)
    with pytest.raises(ValueError, match="neg_iou <= pos_iou"):
        det.match_anchors(anchors, gt, pos_iou=0.3, neg_iou=0.7)


def test_nms_helper():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 9, 10.]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.5), [3, 2])
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.9), [3, 0, 1, 2])
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.9, max_output_size=2), [3, 0])
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.9, score_threshold=0.85), [3, 0])
