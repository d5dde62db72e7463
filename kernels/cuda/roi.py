"""RoI Align kernels on the GPU: one thread per output element, atomic scatter for backward.

Forward: a grid-stride loop over every ``(r, i, j, c)`` of the output; consecutive threads
take consecutive channels, so the four neighbour reads of a sample are coalesced (NHWC).
Backward: the same loop adds ``g * weight / (gh gw)`` into the four neighbours with
``cuda.atomic.add`` (overlapping RoIs and neighbouring samples hit the same element). The
box geometry and bilinear weights are the CPU kernels' own functions (``_base.twin``).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..cpu import roi as _cpu
from . import _base

__all__ = ["roi_align", "roi_align_grad"]

roi_bin = _base.twin(_cpu.roi_bin)
sample_at = _base.twin(_cpu.sample_at)
bilinear = _base.twin(_cpu.bilinear)


@cuda.jit
def _roi_fwd(feat, boxes, idx, scale, sr, out, bad):
    R, oh, ow, C = out.shape
    H, W = feat.shape[1], feat.shape[2]
    for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r, ph, pw, c = _base.nhwc(t, oh, ow, C)
        b = idx[r]
        if b < 0 or b >= feat.shape[0]:  # reported by the host; the output is not used
            bad[0] = 1
            bad[1] = b
            continue
        y0, x0, bh, bw, gh, gw = roi_bin(boxes, r, scale, oh, ow, sr)
        acc = scale - scale
        for iy in range(gh):
            y = sample_at(y0, bh, ph, iy, gh)
            for ix in range(gw):
                x = sample_at(x0, bw, pw, ix, gw)
                ok, ya, xa, yb, xb, waa, wab, wba, wbb = bilinear(y, x, H, W)
                if ok:
                    acc += (waa * feat[b, ya, xa, c] + wab * feat[b, ya, xb, c]
                            + wba * feat[b, yb, xa, c] + wbb * feat[b, yb, xb, c])
        out[r, ph, pw, c] = acc / type(scale)(max(gh * gw, 1))


@cuda.jit
def _roi_bwd(g, boxes, idx, scale, sr, dfeat):
    R, oh, ow, C = g.shape
    H, W = dfeat.shape[1], dfeat.shape[2]
    for t in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        r, ph, pw, c = _base.nhwc(t, oh, ow, C)
        b = idx[r]
        y0, x0, bh, bw, gh, gw = roi_bin(boxes, r, scale, oh, ow, sr)
        v = g[r, ph, pw, c] / type(scale)(max(gh * gw, 1))
        for iy in range(gh):
            y = sample_at(y0, bh, ph, iy, gh)
            for ix in range(gw):
                x = sample_at(x0, bw, pw, ix, gw)
                ok, ya, xa, yb, xb, waa, wab, wba, wbb = bilinear(y, x, H, W)
                if ok:
                    cuda.atomic.add(dfeat, (b, ya, xa, c), waa * v)
                    cuda.atomic.add(dfeat, (b, ya, xb, c), wab * v)
                    cuda.atomic.add(dfeat, (b, yb, xa, c), wba * v)
                    cuda.atomic.add(dfeat, (b, yb, xb, c), wbb * v)


def roi_align(features, boxes, box_indices, output_size=(7, 7), sampling_ratio: int = 2,
              spatial_scale: float = 1.0, out=None):
    """``(R, oh, ow, C)``: RoI Align of NHWC ``features`` over ``boxes`` (R, 4)
    ``(y1, x1, y2, x2)`` of images ``box_indices`` (R,); ``out`` is ignored (allocates)."""
    from . import asarray

    _cpu.check_rois(tuple(features.shape), boxes, box_indices, output_size)
    feat = asarray(features)
    oh, ow = output_size
    y = _base.empty((boxes.shape[0], oh, ow, feat.shape[3]), feat.dtype)
    if y.size:
        bad = cuda.to_device(np.zeros(2, np.int64))
        _roi_fwd[_base.blocks(y.size), _base.TPB](
            feat, asarray(boxes, feat.dtype), asarray(box_indices, np.int64),
            feat.dtype.type(spatial_scale), int(sampling_ratio), y, bad)
        flag, b = bad.copy_to_host()
        if flag:
            raise _cpu._index_error(int(b), feat.shape[0])
    return y


def roi_align_grad(g, features_shape, boxes, box_indices, sampling_ratio: int = 2,
                   spatial_scale: float = 1.0, out=None):
    """d loss / d features (``features_shape``) for the upstream gradient ``g``
    (R, oh, ow, C), by atomic adds; ``out`` is ignored (allocates)."""
    from . import asarray, zeros

    g = asarray(g)
    d = zeros(tuple(features_shape), g.dtype)
    if g.size:
        _roi_bwd[_base.blocks(g.size), _base.TPB](
            g, asarray(boxes, g.dtype), asarray(box_indices, np.int64),
            g.dtype.type(spatial_scale), int(sampling_ratio), d)
    return d
