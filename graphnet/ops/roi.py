"""RoI Align (Mask R-CNN): a fixed-size feature crop per region of interest, for detection heads.

Faster R-CNN's second stage reads every proposal box off the shared feature map as an
``oh x ow`` grid; RoI Align samples it bilinearly (no rounding of box corners, unlike RoI
Pool), so the crop moves smoothly with the box. The math is in ``kernels/cpu/roi.py``.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, constant, fmt_shape
from .base import Op, pair, same_float_dtype

__all__ = ["roi_align"]


class RoIAlign(Op):
    """y[r, i, j, :] = mean over the bin's s x s sample points p of bilinear(features[b_r], p).

    Backward: d features[b_r, q] += g[r, i, j] * w_q(p) / s^2 for each sample p and each of
    its four neighbours q (w the bilinear weights). Boxes and box indices are data and get
    no gradient (None): the proposals come from the RPN, whose own loss trains it.
    """

    name = "roi_align"
    family = "pool"

    def infer(self, features, boxes, box_indices):
        dt = same_float_dtype(features)
        if features.ndim != 4:
            raise GraphError(f"features must be a 4-D NHWC feature map (batch, height, width, "
                             f"channels), got {fmt_shape(features.shape)}")
        if boxes.dtype.kind != "f":
            raise GraphError(f"boxes must be floats (y1, x1, y2, x2), got {boxes.dtype}")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise GraphError(f"boxes must have shape (R, 4) as (y1, x1, y2, x2), got "
                             f"{fmt_shape(boxes.shape)}")
        if box_indices.dtype.kind not in "iu":
            raise GraphError(f"box_indices must be integer image indices, got "
                             f"{box_indices.dtype}")
        r, ri = boxes.shape[0], box_indices.shape
        if len(ri) != 1 or (r is not None and ri[0] is not None and ri[0] != r):
            raise GraphError(f"box_indices {fmt_shape(ri)} must hold one image index per box "
                             f"of boxes {fmt_shape(boxes.shape)}")
        oh, ow = self.output_size
        return (r if r is not None else ri[0], oh, ow, features.shape[3]), dt

    def forward(self, ctx, features, boxes, box_indices):
        shape = (boxes.shape[0], *self.output_size, features.shape[3])
        return ctx.be.roi_align(features, boxes, box_indices, self.output_size,
                                self.sampling_ratio, self.spatial_scale,
                                out=ctx.buffer("y", shape, features.dtype))

    def backward(self, ctx, g, y, features, boxes, box_indices):
        d = ctx.be.roi_align_grad(g, tuple(features.shape), boxes, box_indices,
                                  self.sampling_ratio, self.spatial_scale,
                                  out=ctx.buffer("dx", tuple(features.shape), features.dtype))
        return d, None, None


def roi_align(features, boxes, box_indices, output_size=(7, 7), sampling_ratio: int = 2,
              spatial_scale: float = 1.0) -> Tensor:
    """RoI Align: features NHWC (B, H, W, C), boxes (R, 4) ``(y1, x1, y2, x2)`` in image
    pixels (times ``spatial_scale`` gives feature-map units, e.g. 1/16 after four 2x poolings),
    box_indices (R,) int -> (R, oh, ow, C). Each bin averages ``sampling_ratio`` squared
    bilinear samples (``<= 0``: ceil(bin size), adaptive), with torchvision's ``aligned=True``
    half-pixel convention: feature element (i, j) is centred at (i + 0.5, j + 0.5)."""
    oh, ow = pair(output_size, "output_size")
    if isinstance(box_indices, Tensor):
        idx = box_indices
    else:  # arrays stay integer constants (apply would make them floats)
        arr = np.asarray(box_indices)
        if arr.dtype.kind not in "iu":
            raise GraphError(f"roi_align: box_indices must be integers, got {arr.dtype}")
        idx = constant(arr, dtype=arr.dtype)
    return apply(RoIAlign(output_size=(oh, ow), sampling_ratio=int(sampling_ratio),
                          spatial_scale=float(spatial_scale)), [features, boxes, idx])
