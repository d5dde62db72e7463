"""Detection nodes' speed on the CPU, in one process, alternating: RoI Align and NMS.

(a) RoI Align forward + backward: features (2, 50, 50, 64) (a stride-16 map of an 800 x 800
    image), 128 proposals, 7 x 7 bins, sampling_ratio 2, spatial_scale 1/16;
(b) NMS on 2000 random boxes (IoU 0.7, at most 300 kept, an RPN's proposal step).
The reference is torchvision's ``roi_align`` / ``nms`` when torchvision is installed;
without it (PyTorch has neither op) it is a vectorized NumPy implementation written here,
and the table says which.

Run: ``python benchmarks/bench_detection.py`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import alternate, table  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet import detection  # noqa: E402

try:
    import torch
    import torchvision
except ImportError:  # the NumPy references stand in
    torch = torchvision = None


def workload(rng):
    feat = rng.normal(size=(2, 50, 50, 64)).astype(np.float32)
    yx = rng.uniform(0, 700, (128, 2))
    boxes = np.concatenate([yx, yx + rng.uniform(32, 256, (128, 2))], 1).astype(np.float32)
    idx = rng.integers(0, 2, 128)
    yx = rng.uniform(0, 750, (2000, 2))
    nboxes = np.concatenate([yx, yx + rng.uniform(16, 200, (2000, 2))], 1).astype(np.float32)
    return feat, boxes, idx, nboxes, rng.uniform(size=2000).astype(np.float32)


# -- NumPy references ------------------------------------------------------------------------

def _axis(lo, hi, n, s, size):
    """Sample coordinates (R, n * s) along one axis, their floor/ceil neighbours and weights."""
    step = (hi - lo)[:, None] / n
    k = np.arange(n * s)
    p = lo[:, None] + (k // s + (k % s + 0.5) / s) * step
    valid = (p >= -1) & (p <= size)
    p = np.clip(p, 0, size - 1)
    a = np.floor(p).astype(np.int64)
    b = np.minimum(a + 1, size - 1)
    w = p - a
    return a, b, (1 - w) * valid, w * valid


def np_roi_align(feat, boxes, idx, out=7, s=2, scale=1 / 16):
    """Vectorized aligned RoI Align: separable bilinear weights, four gathers, bin means;
    returns the output and a backward function (a weighted bincount scatter)."""
    b = boxes * scale - 0.5
    ya, yb, wya, wyb = _axis(b[:, 0], b[:, 2], out, s, feat.shape[1])
    xa, xb, wxa, wxb = _axis(b[:, 1], b[:, 3], out, s, feat.shape[2])
    R, C = len(boxes), feat.shape[3]
    im = idx[:, None, None]
    taps = [(ya, xa, wya, wxa), (ya, xb, wya, wxb), (yb, xa, wyb, wxa), (yb, xb, wyb, wxb)]
    y = sum(feat[im, yy[:, :, None], xx[:, None, :]]
            * (wy[:, :, None] * wx[:, None, :])[..., None] for yy, xx, wy, wx in taps)
    y = y.reshape(R, out, s, out, s, C).mean((2, 4))

    def backward(g):
        gs = np.repeat(np.repeat(g, s, 1), s, 2) / (s * s)
        H, W = feat.shape[1:3]
        d = np.zeros(feat.size)
        for yy, xx, wy, wx in taps:  # scatter-add as a weighted bincount over flat indices
            rows = (im * H + yy[:, :, None]) * W + xx[:, None, :]
            flat = rows[..., None] * C + np.arange(C)
            d += np.bincount(flat.reshape(-1), minlength=feat.size,
                             weights=(gs * (wy[:, :, None] * wx[:, None, :])[..., None])
                             .reshape(-1))
        return d.reshape(feat.shape).astype(feat.dtype)

    return y, backward


def np_nms(boxes, scores, thr=0.7, max_out=300):
    """The classic vectorized greedy loop: keep the best, drop what overlaps it, repeat."""
    y1, x1, y2, x2 = boxes.T
    area = (y2 - y1) * (x2 - x1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < max_out:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        inter = ih * iw
        order = rest[inter / (area[i] + area[rest] - inter) <= thr]
    return np.array(keep, np.int64)


# -- the cases -------------------------------------------------------------------------------

def graphnet_roi(feat, boxes, idx):
    with gn.Graph("bench"):
        f = gn.Parameter(feat, name="features")
        y = gn.roi_align(f, boxes, idx, output_size=7, sampling_ratio=2, spatial_scale=1 / 16)
        loss = gn.sum(y)  # backward seeded with ones: the gradient of sum(y)
    prog = gn.compile(loss, wrt=[f])
    return lambda: prog.run({}, to_host=False)


def numpy_roi(feat, boxes, idx):
    def step():
        y, backward = np_roi_align(feat, boxes, idx)
        return backward(np.ones_like(y))
    return step


def torchvision_roi(feat, boxes, idx):
    x = torch.from_numpy(feat).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    rois = torch.from_numpy(np.concatenate([idx[:, None], boxes[:, [1, 0, 3, 2]]], 1)
                            .astype(np.float32))

    def step():
        x.grad = None
        y = torchvision.ops.roi_align(x, rois, 7, 1 / 16, 2, aligned=True)
        y.sum().backward()
        return y
    return step


def graphnet_nms(boxes, scores):
    with gn.Graph("bench"):
        b = gn.Input((4,), name="boxes")
        s = gn.Input((), name="scores")
        keep = gn.non_max_suppression(b, s, 300, 0.7)
    prog = gn.compile(keep)
    return lambda: prog({b: boxes, s: scores})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    number, rounds = (3, 3) if args.quick else (10, 7)
    feat, boxes, idx, nboxes, scores = workload(np.random.default_rng(0))

    # the references compute the same numbers
    y_ref, bwd = np_roi_align(feat.astype(np.float64), boxes.astype(np.float64), idx)
    with gn.Graph("check"):
        f = gn.Parameter(feat, name="features")
        y = gn.roi_align(f, boxes, idx, 7, 2, 1 / 16)
        loss = gn.sum(y)
    (_, got), (d,) = gn.compile([loss, y], wrt=[f])({})
    assert np.allclose(got, y_ref, atol=1e-4), np.abs(got - y_ref).max()
    assert np.allclose(d, bwd(np.ones_like(y_ref)), atol=1e-4)
    assert np.array_equal(detection.nms(nboxes, scores, 0.7, 300), np_nms(nboxes, scores))

    ref = "torchvision" if torchvision is not None else "NumPy"
    roi_ref = (torchvision_roi if torchvision is not None else numpy_roi)(feat, boxes, idx)
    nms_ref = ((lambda: torchvision.ops.nms(torch.from_numpy(nboxes[:, [1, 0, 3, 2]]),
                                            torch.from_numpy(scores), 0.7)[:300])
               if torchvision is not None else (lambda: np_nms(nboxes, scores)))
    rows = []
    for name, ours, theirs, n in [
        ("roi_align fwd+bwd (2,50,50,64), 128 RoIs 7x7", graphnet_roi(feat, boxes, idx),
         roi_ref, number),
        ("nms 2000 boxes, IoU 0.7, max 300", graphnet_nms(nboxes, scores), nms_ref, number),
        ("nms helper (detection.nms, no graph)",
         lambda: detection.nms(nboxes, scores, 0.7, 300), nms_ref, number),
    ]:
        t = alternate({"graphnet": ours, ref: theirs}, n, rounds)
        rows.append((name, f"{t['graphnet'] * 1e3:.2f}", f"{t[ref] * 1e3:.2f}",
                     f"{t[ref] / t['graphnet']:.1f}x"))
    print(table(rows, ("workload", "graphnet ms", f"{ref} ms", f"speedup vs {ref}")))


if __name__ == "__main__":
    main()
