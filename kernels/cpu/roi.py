"""RoI Align kernels (Mask R-CNN): bilinear samples of a feature map, averaged per output bin.

Convention (torchvision's ``roi_align(..., aligned=True)``): a box ``(y1, x1, y2, x2)`` in
image pixels is scaled by ``spatial_scale`` and shifted by half a pixel, so that feature
element ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``. The box is cut into
``oh x ow`` bins; each bin averages ``gh x gw`` bilinear samples at the centres of a regular
sub-grid (``gh = gw = sampling_ratio``, or ``ceil(bin size)`` when ``sampling_ratio <= 0``).
A sample more than one pixel outside the map counts as zero; one within a pixel of the edge
is clamped to it. Features are NHWC, so the innermost loop runs over contiguous channels.

Forward runs the RoIs in parallel (past ``PARALLEL_MIN`` samples; a serial twin below).
Backward scatters ``g * weight / (gh gw)`` into the four neighbours of every sample: RoIs of
one image may overlap, so its parallel loop runs over images (each thread owns one image's
gradient slice) and is race-free.
"""

import math

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["roi_align", "roi_align_grad"]


@kernel
def roi_bin(boxes, r, scale, oh, ow, sampling_ratio):
    """RoI ``r``'s corner in feature coordinates, bin size and sample grid:
    ``(y0, x0, bin_h, bin_w, gh, gw)`` (half-pixel shift of the aligned convention)."""
    half = type(scale)(0.5)
    y0 = boxes[r, 0] * scale - half
    x0 = boxes[r, 1] * scale - half
    bin_h = (boxes[r, 2] * scale - half - y0) / type(scale)(oh)
    bin_w = (boxes[r, 3] * scale - half - x0) / type(scale)(ow)
    gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(bin_h))
    gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(bin_w))
    return y0, x0, bin_h, bin_w, gh, gw


@kernel
def sample_at(y0, size, p, i, g):
    """Coordinate of sample ``i`` of ``g`` in bin ``p``: the centre of its sub-cell."""
    return y0 + type(y0)(p) * size + (type(y0)(i) + type(y0)(0.5)) * size / type(y0)(g)


@kernel
def bilinear(y, x, H, W):
    """``(ok, ya, xa, yb, xb, waa, wab, wba, wbb)``: the four neighbours of point (y, x) of an
    H x W map and their bilinear weights; ``ok`` is False more than a pixel off the map."""
    zero = type(y)(0)
    one = type(y)(1)
    if y < -one or y > type(y)(H) or x < -one or x > type(x)(W):
        return False, 0, 0, 0, 0, zero, zero, zero, zero
    y = max(y, zero)
    x = max(x, zero)
    ya = int(y)
    xa = int(x)
    if ya >= H - 1:  # on or past the last row: both neighbours are the last row
        ya = H - 1
        yb = H - 1
        y = type(y)(ya)
    else:
        yb = ya + 1
    if xa >= W - 1:
        xa = W - 1
        xb = W - 1
        x = type(x)(xa)
    else:
        xb = xa + 1
    ly = y - type(y)(ya)
    lx = x - type(x)(xa)
    hy = one - ly
    hx = one - lx
    return True, ya, xa, yb, xb, hy * hx, hy * lx, ly * hx, ly * lx


@kernel(parallel=True)
def _roi_fwd(feat, boxes, idx, scale, sr, out):
    # out[r, ph, pw, :] = mean over the bin's samples of the bilinear feature vector
    R, oh, ow, C = out.shape
    H, W = feat.shape[1], feat.shape[2]
    for r in prange(R):
        b = idx[r]
        y0, x0, bh, bw, gh, gw = roi_bin(boxes, r, scale, oh, ow, sr)
        inv = type(scale)(1) / type(scale)(max(gh * gw, 1))
        for ph in range(oh):
            for pw in range(ow):
                acc = out[r, ph, pw]
                acc[:] = 0
                for iy in range(gh):
                    y = sample_at(y0, bh, ph, iy, gh)
                    for ix in range(gw):
                        x = sample_at(x0, bw, pw, ix, gw)
                        ok, ya, xa, yb, xb, waa, wab, wba, wbb = bilinear(y, x, H, W)
                        if not ok:
                            continue
                        for c in range(C):
                            acc[c] += (waa * feat[b, ya, xa, c] + wab * feat[b, ya, xb, c]
                                       + wba * feat[b, yb, xa, c] + wbb * feat[b, yb, xb, c])
                for c in range(C):
                    acc[c] *= inv


@kernel(parallel=True)
def _roi_bwd(g, boxes, idx, scale, sr, dfeat):
    # dfeat[b, neighbour] += g[r, ph, pw, :] * weight / (gh gw), per image in parallel
    R, oh, ow, C = g.shape
    B, H, W = dfeat.shape[0], dfeat.shape[1], dfeat.shape[2]
    for b in prange(B):
        dfeat[b] = 0
        for r in range(R):
            if idx[r] != b:
                continue
            y0, x0, bh, bw, gh, gw = roi_bin(boxes, r, scale, oh, ow, sr)
            inv = type(scale)(1) / type(scale)(max(gh * gw, 1))
            for ph in range(oh):
                for pw in range(ow):
                    gr = g[r, ph, pw]
                    for iy in range(gh):
                        y = sample_at(y0, bh, ph, iy, gh)
                        for ix in range(gw):
                            x = sample_at(x0, bw, pw, ix, gw)
                            ok, ya, xa, yb, xb, waa, wab, wba, wbb = bilinear(y, x, H, W)
                            if not ok:
                                continue
                            waa *= inv
                            wab *= inv
                            wba *= inv
                            wbb *= inv
                            for c in range(C):
                                v = gr[c]
                                dfeat[b, ya, xa, c] += waa * v
                                dfeat[b, ya, xb, c] += wab * v
                                dfeat[b, yb, xa, c] += wba * v
                                dfeat[b, yb, xb, c] += wbb * v


def check_rois(features_shape: tuple, boxes: np.ndarray, idx: np.ndarray,
               output_size: tuple) -> None:
    """Raise ValueError unless boxes are (R, 4), indices (R,) and within the batch."""
    if len(features_shape) != 4:
        raise ValueError(f"roi_align needs NHWC features (batch, height, width, channels), "
                         f"got shape {tuple(features_shape)}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (R, 4) as (y1, x1, y2, x2), got "
                         f"{tuple(boxes.shape)}")
    if tuple(idx.shape) != (boxes.shape[0],):
        raise ValueError(f"box_indices must have shape ({boxes.shape[0]},), one image index "
                         f"per box, got {tuple(idx.shape)}")
    if len(output_size) != 2 or min(output_size) < 1:
        raise ValueError(f"output_size must be two positive ints, got {output_size}")


def _index_error(bad: int, batch: int) -> ValueError:
    return ValueError(f"box index {bad} is out of range for a batch of {batch} feature maps "
                      f"(0..{batch - 1})")


def _work(n_out: int, sr: int) -> int:
    # samples: sr^2 per output element (2 x 2 when adaptive). Measured on the 2-core machine,
    # the benchmark's 128 RoIs x 7 x 7 x 64 (1.6M samples, about 1 ms) ran no faster on two
    # threads, so the parallel twins start above PARALLEL_MIN samples.
    s = sr if sr > 0 else 2
    return n_out * s * s


def roi_align(features: np.ndarray, boxes: np.ndarray, box_indices: np.ndarray,
              output_size: tuple = (7, 7), sampling_ratio: int = 2,
              spatial_scale: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """``(R, oh, ow, C)``: RoI Align of NHWC ``features`` over ``boxes`` (R, 4)
    ``(y1, x1, y2, x2)`` of images ``box_indices`` (R,); ``out`` is a buffer to fill."""
    check_rois(features.shape, boxes, box_indices, output_size)
    idx = np.ascontiguousarray(box_indices, dtype=np.int64)
    B = features.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= B):
        raise _index_error(int(idx[(idx < 0) | (idx >= B)][0]), B)
    feat = np.ascontiguousarray(features)
    dt = feat.dtype.type
    oh, ow = output_size
    shape = (boxes.shape[0], oh, ow, feat.shape[3])
    if out is None:
        out = np.empty(shape, feat.dtype)
    bx = np.ascontiguousarray(boxes, dtype=feat.dtype)
    pick(_roi_fwd, _work(out.size, sampling_ratio))(feat, bx, idx, dt(spatial_scale),
                                                    int(sampling_ratio), out)
    return out


def roi_align_grad(g: np.ndarray, features_shape: tuple, boxes: np.ndarray,
                   box_indices: np.ndarray, sampling_ratio: int = 2, spatial_scale: float = 1.0,
                   out: np.ndarray | None = None) -> np.ndarray:
    """d loss / d features (``features_shape``) for the upstream gradient ``g``
    (R, oh, ow, C): each sample's bilinear weights times g, summed; ``out`` is a buffer."""
    g = np.ascontiguousarray(g)
    if out is None:
        out = np.empty(tuple(features_shape), g.dtype)
    idx = np.ascontiguousarray(box_indices, dtype=np.int64)
    bx = np.ascontiguousarray(boxes, dtype=g.dtype)
    pick(_roi_bwd, _work(g.size, sampling_ratio))(g, bx, idx, g.dtype.type(spatial_scale),
                                                  int(sampling_ratio), out)
    return out
