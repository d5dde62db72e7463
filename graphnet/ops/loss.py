"""Losses, each reduced to the mean over the batch (a scalar of shape ()).

mse and mae average over every element (Keras' mean over the last axis then over the batch
is the same number when every row has the same length). The cross-entropies are written in
their stable forms and fused with their gradients; labels are data and get no gradient.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, constant, fmt_shape
from .base import Op, same_float_dtype

__all__ = ["mse", "mae", "huber", "sigmoid_cross_entropy", "binary_cross_entropy",
           "softmax_cross_entropy"]


def _same(a: tuple, b: tuple) -> bool:
    """Equal shapes, a None (batch) dimension matching any size."""
    return len(a) == len(b) and all(x == y or x is None or y is None for x, y in zip(a, b))


class _Pointwise(Op):
    """L = mean_i l(p_i, t_i); dp_i = g l'(p_i, t_i) / n.

    Shapes must match, except that a trailing axis of 1 on either side is ignored (Keras
    squeezes it too: a (N, 1) prediction against (N,) targets).
    """

    family = "loss"
    eps = 0.0
    target_grad: ClassVar[bool] = False  # only mse and mae differentiate their target

    def infer(self, p, t):
        dt = same_float_dtype(p)
        if t.dtype.kind == "f":
            same_float_dtype(p, t)
        elif t.dtype.kind not in "iub":
            raise GraphError(f"targets must be numbers, got {t.dtype}")
        sp, st = p.shape, t.shape
        if not (_same(sp, st) or (sp[-1:] == (1,) and _same(sp[:-1], st))
                or (st[-1:] == (1,) and _same(sp, st[:-1]))):
            raise GraphError(f"predictions {fmt_shape(sp)} and targets {fmt_shape(st)} differ "
                             "in shape")
        return (), dt

    def forward(self, ctx, p, t):
        return ctx.be.pointwise_loss(p, t, self.name, self.eps)

    def backward(self, ctx, g, y, p, t):
        dp, dt = ctx.be.pointwise_loss_grad(g, p, t, self.name, self.eps)
        return dp, (dt if self.target_grad and t.dtype.kind == "f" else None)


class MSE(_Pointwise):
    """L = mean (p - t)^2;  dp = 2 g (p - t) / n, dt = -dp."""
    name = "mse"
    target_grad = True


class MAE(_Pointwise):
    """L = mean |p - t|;  dp = g sign(p - t) / n (0 at the kink), dt = -dp."""
    name = "mae"
    target_grad = True


class Huber(_Pointwise):
    """d = p - t: L = mean (d^2 / 2 if |d| <= delta else delta (|d| - delta / 2));
    dp = g clip(d, -delta, delta) / n, dt = -dp. Quadratic near 0, linear beyond delta: box
    regression (smooth L1 at delta = 1) without the pull of outliers."""
    name = "huber"
    target_grad = True

    @property
    def eps(self) -> float:  # the pointwise kernels' parameter slot carries delta
        return self.delta


class SigmoidCrossEntropy(_Pointwise):
    """Logits z, labels y in [0, 1]: L = mean max(z, 0) - z y + log(1 + e^-|z|);
    dz = g (sigmoid(z) - y) / n."""
    name = "sigmoid_cross_entropy"


class BinaryCrossEntropy(_Pointwise):
    """Probabilities p clipped to [eps, 1 - eps]: L = -mean y log p + (1 - y) log(1 - p);
    dp = g (p - y) / (p (1 - p)) / n inside the clip, 0 outside."""
    name = "binary_cross_entropy"


class SoftmaxCrossEntropy(Op):
    """Logits z (..., C); labels: class ids (...) or probability rows (..., C).

    L = mean_i lse(z_i) - z_i[y_i], or mean_i sum_j y_ij (lse(z_i) - z_ij), with
    lse(z) = m + log sum_j e^(z_j - m) (m the row maximum, so logits of 1e4 stay finite);
    dz = g (softmax(z) - onehot(y)) / N. Labels get no gradient.
    """

    name = "softmax_cross_entropy"
    family = "loss"

    def infer(self, z, labels):
        dt = same_float_dtype(z)
        if z.ndim == 0 or z.shape[-1] is None:
            raise GraphError(f"logits need a class axis of known size, got {fmt_shape(z.shape)}")
        lead = z.shape[:-1]
        if labels.dtype.kind in "iu":
            if not (_same(labels.shape, lead) or _same(labels.shape, lead + (1,))):
                raise GraphError(f"integer labels must have shape {fmt_shape(lead)} for logits "
                                 f"{fmt_shape(z.shape)}, got {fmt_shape(labels.shape)}")
        elif labels.dtype.kind == "f":
            same_float_dtype(z, labels)
            if not _same(labels.shape, z.shape):
                raise GraphError(f"probability labels must have the logits' shape "
                                 f"{fmt_shape(z.shape)}, got {fmt_shape(labels.shape)}")
        else:
            raise GraphError(f"labels must be integer class ids or float probabilities, got "
                             f"{labels.dtype}")
        return (), dt

    def forward(self, ctx, z, labels):
        loss, ctx.lse = ctx.be.softmax_cross_entropy(z, labels)
        return loss

    def backward(self, ctx, g, y, z, labels):
        return ctx.be.softmax_cross_entropy_grad(g, z, labels, ctx.lse), None


def _labels(y):
    """Integer arrays given directly stay integer constants (apply would make them floats)."""
    if not isinstance(y, Tensor) and np.asarray(y).dtype.kind in "iub":
        return constant(np.asarray(y), dtype=np.asarray(y).dtype)
    return y


def mse(pred, target) -> Tensor:
    """Mean squared error over all elements."""
    return apply(MSE(), [pred, target])


def mae(pred, target) -> Tensor:
    """Mean absolute error over all elements."""
    return apply(MAE(), [pred, target])


def huber(pred, target, delta: float = 1.0) -> Tensor:
    """Huber loss over all elements (Keras' ``Huber``; smooth L1 for ``delta=1``)."""
    if not delta > 0:
        raise GraphError(f"huber: delta must be > 0, got {delta}")
    return apply(Huber(delta=float(delta)), [pred, target])


def sigmoid_cross_entropy(logits, labels) -> Tensor:
    """Binary cross-entropy on logits (stable for any logit), mean over all elements."""
    return apply(SigmoidCrossEntropy(), [logits, _labels(labels)])


def binary_cross_entropy(probs, labels, eps: float = 1e-7) -> Tensor:
    """Binary cross-entropy on probabilities clipped to [eps, 1 - eps] (Keras' epsilon)."""
    if not 0.0 <= eps < 0.5:
        raise GraphError(f"binary_cross_entropy: eps must be in [0, 0.5), got {eps}")
    return apply(BinaryCrossEntropy(eps=float(eps)), [probs, _labels(labels)])


def softmax_cross_entropy(logits, labels) -> Tensor:
    """Cross-entropy of softmax(logits) against class ids or probability rows, batch mean."""
    return apply(SoftmaxCrossEntropy(), [logits, _labels(labels)])
