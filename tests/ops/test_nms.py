"""Non-maximum suppression against a plain Python greedy reference (TensorFlow's rule):
thresholds, max size, ties, corner order, empty inputs, a data-dependent output length."""

import numpy as np
import pytest

import graphnet as gn

pytestmark = pytest.mark.lecture3


def py_iou(a, b):
    ay0, ay1 = sorted((a[0], a[2]))
    ax0, ax1 = sorted((a[1], a[3]))
    by0, by1 = sorted((b[0], b[2]))
    bx0, bx1 = sorted((b[1], b[3]))
    area_a, area_b = (ay1 - ay0) * (ax1 - ax0), (by1 - by0) * (bx1 - bx0)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter = max(0.0, min(ay1, by1) - max(ay0, by0)) * max(0.0, min(ax1, bx1) - max(ax0, bx0))
    return inter / (area_a + area_b - inter)


def py_nms(boxes, scores, max_out, iou_thr=0.5, score_thr=-np.inf):
    """Greedy: by decreasing score (ties: lower index), keep unless IoU > thr with a kept box."""
    order = sorted((i for i in range(len(boxes)) if scores[i] > score_thr),
                   key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if len(keep) == max_out:
            break
        if all(py_iou(boxes[i], boxes[k]) <= iou_thr for k in keep):
            keep.append(i)
    return np.array(keep, np.int64)


def random_boxes(rng, n, dtype=np.float64):
    yx = rng.uniform(0, 60, (n, 2))
    hw = rng.uniform(4, 25, (n, 2))
    return np.concatenate([yx, yx + hw], 1).astype(dtype), rng.uniform(size=n).astype(dtype)


def nms_value(boxes, scores, *args, **kw):
    with gn.Graph():
        b = gn.Input((4,), dtype=boxes.dtype, name="boxes")
        s = gn.Input((), dtype=scores.dtype, name="scores")
        keep = gn.non_max_suppression(b, s, *args, **kw)
    assert keep.shape == (None,) and keep.dtype == np.int64
    return gn.compile(keep)({b: boxes, s: scores})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_out,iou_thr,score_thr", [(100, 0.5, -np.inf), (100, 0.2, 0.3),
                                                       (5, 0.7, -np.inf), (0, 0.5, -np.inf),
                                                       (100, 0.0, -np.inf)])
def test_matches_python_greedy(rng, dtype, max_out, iou_thr, score_thr):
    boxes, scores = random_boxes(rng, 80, dtype)
    got = nms_value(boxes, scores, max_out, iou_thr, score_thr)
    want = py_nms(boxes.astype(float), scores.astype(float), max_out, iou_thr, score_thr)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64
    assert np.all(np.diff(scores[got]) <= 0)  # sorted by score


def test_ties_and_duplicates():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30.]])
    scores = np.array([0.5, 0.9, 0.9, 0.5])
    # boxes 1 and 2 tie at 0.9: the lower index comes first; each duplicate is suppressed
    np.testing.assert_array_equal(nms_value(boxes, scores, 10), [1, 2])
    np.testing.assert_array_equal(nms_value(boxes, np.full(4, 0.3), 10), [0, 2])


def test_iou_at_the_threshold_is_kept():
    # IoU of these two is exactly 2 / 4 = 0.5: suppression needs IoU > threshold
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 1.]])
    scores = np.array([0.9, 0.8])
    np.testing.assert_array_equal(nms_value(boxes, scores, 10, 0.5), [0, 1])
    np.testing.assert_array_equal(nms_value(boxes, scores, 10, 0.49), [0])


def test_score_threshold_is_strict_and_corners_may_be_flipped(rng):
    boxes, scores = random_boxes(rng, 30)
    scores[3] = 0.5
    flipped = boxes[:, [2, 3, 0, 1]]  # (y2, x2, y1, x1): the same boxes
    for b in (boxes, flipped):
        got = nms_value(b, scores, 30, 0.4, 0.5)
        np.testing.assert_array_equal(got, py_nms(boxes, scores, 30, 0.4, 0.5))
        assert 3 not in got


def test_empty_boxes_never_suppress():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 0.], [5, 5, 5, 5.]])  # two of zero area
    np.testing.assert_array_equal(nms_value(boxes, np.array([0.1, 0.9, 0.8]), 10, 0.0),
                                  [1, 2, 0])


def test_no_boxes_and_varying_lengths(rng):
    with gn.Graph():
        b = gn.Input((4,), name="boxes")
        s = gn.Input((), name="scores")
        keep = gn.non_max_suppression(b, s, 10, 0.5)
    prog = gn.compile(keep)
    out = prog({b: np.zeros((0, 4)), s: np.zeros(0)})
    assert out.shape == (0,) and out.dtype == np.int64
    for n in (1, 7, 40):
        boxes, scores = random_boxes(rng, n)
        np.testing.assert_array_equal(prog({b: boxes, s: scores}),
                                      py_nms(boxes.astype(np.float32),
                                             scores.astype(np.float32), 10))


def test_matches_torchvision(rng):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    boxes, scores = random_boxes(rng, 200)
    want = tv.ops.nms(torch.tensor(boxes[:, [1, 0, 3, 2]]), torch.tensor(scores), 0.5)
    np.testing.assert_array_equal(nms_value(boxes, scores, 200, 0.5), want.numpy())


def test_no_gradient():
    from graphnet.ops.nms import NonMaxSuppression

    assert NonMaxSuppression(max_output_size=1, iou_threshold=0.5,
                             score_threshold=0.0).backward(None, None, None, None, None) == \
        (None, None)


def test_errors(rng):
    with gn.Graph():
        b = gn.Input((4,), name="boxes")
        s = gn.Input((), name="scores")
        with pytest.raises(gn.GraphError, match=r"boxes must have shape \(n, 4\).*\(None, 3\)"):
            gn.non_max_suppression(gn.Input((3,)), s, 5)
        with pytest.raises(gn.GraphError, match="one score per box"):
            gn.non_max_suppression(gn.Parameter(np.zeros((3, 4))), np.zeros(4), 5)
        with pytest.raises(gn.GraphError, match="scores must be floats"):
            gn.non_max_suppression(b, gn.Input((), dtype="int64"), 5)
        with pytest.raises(gn.GraphError, match="max_output_size must be an int >= 0"):
            gn.non_max_suppression(b, s, -1)
        with pytest.raises(gn.GraphError, match=r"iou_threshold must be in \[0, 1\]"):
            gn.non_max_suppression(b, s, 5, iou_threshold=1.5)
        keep = gn.non_max_suppression(b, gn.Input((3,), name="fixed", batch=False), 5)
    boxes, scores = random_boxes(rng, 4)
    # the box count is None at build time: a mismatch is found when the program runs
    with pytest.raises(gn.GraphError, match=r"non_max_suppression.*scores must have shape "
                                            r"\(4,\)"):
        gn.compile(keep)({b: boxes, "fixed": scores[:3]})
