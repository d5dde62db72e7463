"""RoI Align: a NumPy reference written out here, an exact linear-map case, torchvision when
installed, float64 gradient checks, the parallel kernels, and errors."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture3


# -- the reference: torchvision's aligned RoIAlign, one sample at a time ---------------------

def np_bilinear(img, y, x):
    """img (H, W, C) at feature point (y, x), zero more than one pixel outside."""
    H, W, _ = img.shape
    if y < -1 or y > H or x < -1 or x > W:
        return np.zeros(img.shape[-1])
    y, x = min(max(y, 0.0), H - 1), min(max(x, 0.0), W - 1)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[y0, x0] + (1 - ly) * lx * img[y0, x1]
            + ly * (1 - lx) * img[y1, x0] + ly * lx * img[y1, x1])


def np_roi_align(feat, boxes, idx, out_hw, sr, scale):
    oh, ow = out_hw
    out = np.zeros((len(boxes), oh, ow, feat.shape[-1]))
    for r, (box, b) in enumerate(zip(boxes, idx)):
        y1, x1, y2, x2 = np.asarray(box, np.float64) * scale - 0.5
        bh, bw = (y2 - y1) / oh, (x2 - x1) / ow
        gh = sr if sr > 0 else math.ceil(bh)
        gw = sr if sr > 0 else math.ceil(bw)
        for i in range(oh):
            for j in range(ow):
                pts = [(y1 + (i + (a + 0.5) / gh) * bh, x1 + (j + (c + 0.5) / gw) * bw)
                       for a in range(gh) for c in range(gw)]
                out[r, i, j] = sum(np_bilinear(feat[b], y, x) for y, x in pts) / max(len(pts), 1)
    return out


FEAT_SHAPE = (2, 6, 7, 3)
# inside, partly outside (top-left), partly outside (bottom-right), wholly outside, tiny
BOXES = np.array([[0.7, 1.2, 4.1, 6.3], [-2.0, -1.5, 3.0, 2.5], [3.0, 4.0, 9.5, 12.0],
                  [20.0, 20.0, 30.0, 31.0], [2.2, 2.4, 2.6, 2.9]])
IDX = np.array([0, 1, 1, 0, 1])


def _roi(out_hw=(2, 3), sr=2, scale=1.0):
    return lambda f, b, i: gn.roi_align(f, b, i, output_size=out_hw, sampling_ratio=sr,
                                        spatial_scale=scale)


@pytest.mark.parametrize("out_hw,sr,scale", [((2, 3), 2, 1.0), ((3, 3), 0, 1.0),
                                              ((2, 2), 1, 0.5), ((1, 4), 3, 1.3)])
def test_forward_matches_numpy(rng, out_hw, sr, scale):
    f = rng.normal(size=FEAT_SHAPE)
    want = np_roi_align(f, BOXES, IDX, out_hw, sr, scale)
    got64 = run_fn(_roi(out_hw, sr, scale), f, BOXES, IDX, dtype="float64")
    np.testing.assert_allclose(got64, want, rtol=1e-12, atol=1e-12)
    got32 = run_fn(_roi(out_hw, sr, scale), f, BOXES, IDX)
    assert got32.dtype == np.float32 and got32.shape == (5, *out_hw, 3)
    np.testing.assert_allclose(got32, want, rtol=1e-5, atol=1e-5)


def test_wholly_outside_box_is_zero(rng):
    got = run_fn(_roi(), rng.normal(size=FEAT_SHAPE), BOXES, IDX, dtype="float64")
    np.testing.assert_array_equal(got[3], 0.0)


def test_linear_map_reads_bin_centres():
    # f[i, j] = i + 10 j is linear, so bilinear samples are exact and each bin's mean is the
    # value at its centre; pixel (i, j) is centred at (i + 0.5, j + 0.5) (aligned=True)
    H, W = 8, 9
    f = (np.arange(H)[:, None] + 10.0 * np.arange(W)[None, :])[None, :, :, None]
    box = np.array([[1.0, 2.0, 6.0, 8.5]])  # well inside: no clamping
    got = run_fn(_roi((5, 3), 2), f, box, np.array([0]), dtype="float64")[0, :, :, 0]
    cy = 1.0 + (np.arange(5) + 0.5) * 1.0 - 0.5
    cx = 2.0 + (np.arange(3) + 0.5) * (6.5 / 3) - 0.5
    np.testing.assert_allclose(got, cy[:, None] + 10 * cx[None, :], rtol=1e-12)


def test_matches_torchvision(rng):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    f = rng.normal(size=FEAT_SHAPE)
    rois = np.concatenate([IDX[:, None], BOXES[:, [1, 0, 3, 2]]], 1)  # (b, x1, y1, x2, y2)
    want = tv.ops.roi_align(torch.tensor(f).permute(0, 3, 1, 2), torch.tensor(rois), (2, 3),
                            spatial_scale=0.5, sampling_ratio=2, aligned=True)
    got = run_fn(_roi((2, 3), 2, 0.5), f, BOXES, IDX, dtype="float64")
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sr", [2, 0])
def test_gradient_of_features(rng, sr):
    # the output is linear in the features (fixed bilinear weights): no kinks to avoid
    f = rng.normal(size=FEAT_SHAPE)
    grads = check_gradients(_roi((2, 2), sr), f, BOXES, IDX, wrt=[0])
    assert np.any(grads[0][1] != 0) and np.any(grads[0][0] != 0)


def test_boxes_and_indices_get_no_gradient(rng):
    with gn.Graph():
        f = gn.Parameter(rng.normal(size=FEAT_SHAPE), dtype="float64")
        b = gn.Parameter(BOXES, dtype="float64")
        loss = gn.sum(gn.roi_align(f, b, IDX, (2, 2)))
    _, (gf, gb) = gn.compile(loss, wrt=[f, b])({})
    assert np.any(gf != 0)
    np.testing.assert_array_equal(gb, 0.0)


def test_parallel_kernels_match_serial(rng, parallel_kernels):
    # 16 RoIs x 4 x 4 x 64 channels x 4 samples = 1 << 16 samples runs the prange twins
    import graphnet.kernels.cpu as C
    from graphnet.kernels.cpu import roi as K
    from graphnet.kernels.jit import pick

    f = rng.normal(size=(2, 10, 10, 64))
    xy = rng.uniform(-2, 8, (16, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 6, (16, 2))], 1)
    idx = rng.integers(0, 2, 16)
    y = C.roi_align(f, boxes, idx, (4, 4), 2, 1.0)
    assert pick(K._roi_fwd, K._work(y.size, 2)) is K._roi_fwd.parallel
    ys = np.empty_like(y)
    K._roi_fwd.serial(f, boxes, idx, 1.0, 2, ys)
    np.testing.assert_allclose(y, ys, rtol=1e-13)
    g = rng.normal(size=y.shape)
    d = C.roi_align_grad(g, f.shape, boxes, idx, 2, 1.0)
    ds = np.empty_like(f)
    K._roi_bwd.serial(g, boxes, idx, 1.0, 2, ds)
    np.testing.assert_allclose(d, ds, rtol=1e-12, atol=1e-14)


def test_inputs_with_unknown_counts(rng):
    # proposals fed at run time: R is unknown when the graph is built
    with gn.Graph():
        f = gn.Input((6, 7, 3), name="features")
        b = gn.Input((4,), name="boxes", batch=True)
        i = gn.Input((), dtype="int64", name="idx")
        y = gn.roi_align(f, b, i, output_size=2)
    assert y.shape == (None, 2, 2, 3)
    feat = rng.normal(size=FEAT_SHAPE).astype(np.float32)
    prog = gn.compile(y)
    got = prog({f: feat, b: BOXES[:2], i: IDX[:2]})
    np.testing.assert_allclose(got, np_roi_align(feat, BOXES[:2], IDX[:2], (2, 2), 2, 1.0),
                               rtol=1e-5, atol=1e-6)


def test_errors(rng):
    with gn.Graph():
        f = gn.Parameter(rng.normal(size=FEAT_SHAPE))
        with pytest.raises(gn.GraphError, match=r"boxes must have shape \(R, 4\).*\(5, 3\)"):
            gn.roi_align(f, np.zeros((5, 3)), IDX)
        with pytest.raises(gn.GraphError, match="one image index per box"):
            gn.roi_align(f, BOXES, IDX[:3])
        with pytest.raises(gn.GraphError, match="box_indices must be integers"):
            gn.roi_align(f, BOXES, IDX.astype(float))
        with pytest.raises(gn.GraphError, match="4-D NHWC"):
            gn.roi_align(gn.Parameter(np.zeros((6, 7, 3))), BOXES, IDX)
        with pytest.raises(gn.GraphError, match="output_size must be a positive int"):
            gn.roi_align(f, BOXES, IDX, output_size=(0, 2))
        y = gn.roi_align(f, BOXES, np.array([0, 1, 2, 0, 1]))
    with pytest.raises(gn.GraphError, match=r"roi_align.*box index 2 is out of range for a "
                                            r"batch of 2 feature maps"):
        gn.compile(y)({})
