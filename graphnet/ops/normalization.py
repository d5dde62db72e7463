"""Layer normalization and batch normalization, each one fused node (Keras 3's math).

Both normalize ``xhat = (x - mean) rstd`` with ``rstd = 1 / sqrt(var + epsilon)`` and the
biased variance ``var = mean((x - mean)^2)``, then ``y = gamma xhat + beta``. Layer norm takes
the statistics of each sample over the normalized (trailing) axes; batch norm those of each
channel (the last axis) over the batch and every other axis.

Backward over a group of n values sharing one mean and rstd, with ``dxhat = g gamma``::

    dx     = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
    dgamma = sum g xhat        dbeta = sum g

(summed over the rows for layer norm, over everything but the channel for batch norm). Batch
norm at inference uses fixed statistics, so there ``dx = g gamma rstd``.

**Moving statistics.** The executor knows no op, so batch norm keeps its moving mean and
variance as two non-trainable Parameters fed to the node as inputs 3 and 4, and its forward
in training mode writes ``moving = moving momentum + batch (1 - momentum)`` into their arrays
in place (``Parameter.data``: the NumPy array on the CPU, the device array on the GPU, which
the program hands the op as the input's value). They get no gradient; backward uses the
batch statistics that forward saved in ``ctx``, never the updated moving ones, so a
gradient check or a second run of the same feeds gives the same loss and gradients (the
moving averages, as in Keras, move once per training call). Inference (a program compiled
without ``training=True``, or ``frozen=True``, which is how a Keras layer with
``trainable=False`` behaves even during fit) normalizes with the moving statistics and
changes nothing.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, norm_axes, same_float_dtype
from .shape import transpose

__all__ = ["layer_norm", "batch_norm"]


def _params(op: str, want: tuple, dt, named: dict) -> None:
    for n, p in named.items():
        if tuple(p.shape) != want:
            raise GraphError(f"{op}: {n} must have shape {fmt_shape(want)}, got "
                             f"{fmt_shape(p.shape)}")
        if p.dtype != dt:
            raise GraphError(f"{op}: {n} has dtype {p.dtype}, the input {dt}")


class LayerNorm(Op):
    """y = gamma (x - mean) rstd + beta per sample over the last ``naxes`` axes (see the
    module docstring for dx, dgamma, dbeta)."""

    name = "layer_norm"
    family = "normalization"

    def infer(self, x, gamma, beta):
        dt = same_float_dtype(x)
        if not 1 <= self.naxes <= x.ndim:
            raise GraphError(f"layer_norm normalizes {self.naxes} trailing axes of an input "
                             f"of shape {fmt_shape(x.shape)}")
        want = tuple(x.shape[x.ndim - self.naxes:])
        if any(d is None for d in want):
            raise GraphError(f"layer_norm needs known sizes on the normalized axes, got "
                             f"{fmt_shape(x.shape)}")
        _params("layer_norm", want, dt, {"gamma": gamma, "beta": beta})
        return x.shape, dt

    def forward(self, ctx, x, gamma, beta):
        y, ctx.mean, ctx.rstd = ctx.be.layer_norm(x, gamma, beta, self.epsilon)
        return y

    def backward(self, ctx, g, y, x, gamma, beta):
        return ctx.be.layer_norm_grad(g, x, gamma, ctx.mean, ctx.rstd)


class BatchNorm(Op):
    """y = gamma (x - mean) rstd + beta per channel (last axis); in training the batch's
    statistics, which also update the moving ones in place; otherwise the moving ones (the
    module docstring has the backward formulas and the update rule)."""

    name = "batch_norm"
    family = "normalization"

    def infer(self, x, gamma, beta, moving_mean, moving_variance):
        dt = same_float_dtype(x)
        if x.ndim < 2 or x.shape[-1] is None:
            raise GraphError(f"batch_norm needs channels-last input (batch, ..., channels) "
                             f"with a known channel count, got {fmt_shape(x.shape)}")
        if not 0.0 <= self.momentum <= 1.0 or self.epsilon <= 0:
            raise GraphError(f"batch_norm needs 0 <= momentum <= 1 and epsilon > 0, got "
                             f"momentum={self.momentum}, epsilon={self.epsilon}")
        _params("batch_norm", (x.shape[-1],), dt,
                {"gamma": gamma, "beta": beta, "moving_mean": moving_mean,
                 "moving_variance": moving_variance})
        for n, p in (("moving_mean", moving_mean), ("moving_variance", moving_variance)):
            if p.kind != "parameter":
                raise GraphError(f"batch_norm: {n} must be a Parameter (training updates it "
                                 f"in place), got a {p.kind}")
        return x.shape, dt

    def forward(self, ctx, x, gamma, beta, moving_mean, moving_variance):
        ctx.batch_stats = ctx.training and not self.frozen
        y, ctx.mean, ctx.rstd = ctx.be.batch_norm(x, gamma, beta, moving_mean,
                                                  moving_variance, self.epsilon,
                                                  self.momentum, ctx.batch_stats)
        return y

    def backward(self, ctx, g, y, x, gamma, beta, moving_mean, moving_variance):
        dx, dgamma, dbeta = ctx.be.batch_norm_grad(g, x, gamma, ctx.mean, ctx.rstd,
                                                   ctx.batch_stats)
        return dx, dgamma, dbeta, None, None


def layer_norm(x, gamma, beta, axis: int | tuple = -1, epsilon: float = 1e-3) -> Tensor:
    """Normalize each sample over ``axis`` (an int or several), then scale by gamma and shift
    by beta, whose shape is the normalized axes' sizes (in axis order). Axes that are not
    the trailing ones are moved last around the fused node (two transposes)."""
    if not isinstance(x, Tensor):
        raise GraphError(f"layer_norm needs a Tensor, got {type(x).__name__}")
    axes = norm_axes(axis, x.ndim)
    if axis is None or not axes:
        raise GraphError(f"layer_norm needs at least one axis, got {axis!r}")
    if 0 in axes and x.shape[0] is None:
        raise GraphError(f"layer_norm cannot normalize over the batch axis of "
                         f"{fmt_shape(x.shape)}")
    op = LayerNorm(naxes=len(axes), epsilon=float(epsilon))
    keep = [a for a in range(x.ndim) if a not in axes]
    if axes == tuple(range(x.ndim - len(axes), x.ndim)):
        return apply(op, [x, gamma, beta])
    perm = keep + list(axes)
    inv = [perm.index(a) for a in range(x.ndim)]
    return transpose(apply(op, [transpose(x, perm), gamma, beta]), inv)


def batch_norm(x, gamma, beta, moving_mean, moving_variance, momentum: float = 0.99,
               epsilon: float = 1e-3, frozen: bool = False) -> Tensor:
    """Batch normalization over the last axis (Keras 3's ``axis=-1``); in programs compiled
    with ``training=True`` (and not ``frozen``) it uses the batch's statistics and updates
    the moving ones in place (see the module docstring)."""
    return apply(BatchNorm(momentum=float(momentum), epsilon=float(epsilon),
                           frozen=bool(frozen)), [x, gamma, beta, moving_mean, moving_variance])
