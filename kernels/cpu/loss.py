"""Loss kernels: each reduces to a mean in one pass, and its gradient is one fused pass.

Pointwise losses (mse, mae, sigmoid and binary cross-entropy, huber) share one pair of scalar
functions selected by a code, as the activations do; their parameter ``eps`` is binary
cross-entropy's probability clip and huber's ``delta``. Softmax cross-entropy works row by row
with a stable log-sum-exp (``lse = m + log sum exp(z - m)``, m the row maximum) and keeps
``m`` and ``log sum exp(z - m)`` per row for the backward pass ``(softmax - onehot) / N``;
differences are taken against ``m`` first, so logits of 1e4 lose no digits to rounding.
Sums accumulate in float64, so a float32 mean over many elements keeps its digits.
"""

import math

import numpy as np
from numba import prange

from ..jit import REASSOC, flat, kernel, pick, scalar
from .activation import SIGMOID, act, exp_neg
from .softmax import row_lse

__all__ = [
    "pointwise_loss", "pointwise_loss_grad", "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
]

CODES = {"mse": 0, "mae": 1, "sigmoid_cross_entropy": 2, "binary_cross_entropy": 3, "huber": 4}
# losses of the difference p - t, whose target gradient is -dp
DIFFERENCE = (0, 1, 4)


@kernel
def _point(code, p, t, eps):
    """The loss of one element: prediction (or logit) ``p``, target ``t``."""
    zero = type(p)(0)
    if code == 0:
        return (p - t) * (p - t)
    if code == 1:
        return abs(p - t)
    if code == 2:  # logits: max(z, 0) - z y + log(1 + e^-|z|), never exp of a large number
        return (p if p > zero else zero) - p * t + math.log1p(math.exp(-abs(p)))
    if code == 4:  # huber, eps = delta: d^2 / 2 for |d| <= delta, else delta (|d| - delta / 2)
        d = abs(p - t)
        half = type(p)(0.5)
        return half * d * d if d <= eps else eps * (d - half * eps)
    one = type(p)(1)  # probabilities clipped to [eps, 1 - eps]
    q = min(max(p, eps), one - eps)
    return -(t * math.log(q) + (one - t) * math.log(one - q))


@kernel
def _point_grad(code, p, t, eps):
    """d loss / d p of one element."""
    zero = type(p)(0)
    if code == 0:
        return (p - t) + (p - t)
    one = type(p)(1)
    if code == 1:  # sign(p - t), 0 at the kink
        return one if p > t else (-one if p < t else zero)
    if code == 2:  # sigmoid(z) - y
        return act(SIGMOID, p, zero) - t
    if code == 4:  # huber: p - t clipped to [-delta, delta]
        return min(max(p - t, -eps), eps)
    # (p - y) / (p (1 - p)) inside the clip, 0 where the clip holds
    if p < eps or p > one - eps:
        return zero
    return (p - t) / (p * (one - p))


@kernel(parallel=True)
def _point_sum(p, t, code, eps):
    acc = 0.0  # float64 on purpose (see the module docstring)
    for i in prange(p.shape[0]):
        acc += _point(code, p[i], t[i], eps)
    return acc


@kernel(parallel=True)
def _point_grad_flat(p, t, dp, code, eps, scale):
    for i in prange(p.shape[0]):
        dp[i] = scale * _point_grad(code, p[i], t[i], eps)


@kernel(parallel=True)
def _sce_sparse(z, labels, lse):
    # loss_i = lse_i - z[i, label_i] = (m_i - z[i, label_i]) + log s_i
    acc = 0.0
    for i in prange(z.shape[0]):
        lse[0, i], lse[1, i] = row_lse(z, i)  # max and log-sum of the row
        acc += (lse[0, i] - z[i, labels[i]]) + lse[1, i]
    return acc


@kernel(parallel=True)
def _sce_dense(z, y, lse):
    # loss_i = sum_j y_ij (lse_i - z_ij)
    acc = 0.0
    for i in prange(z.shape[0]):
        lse[0, i], lse[1, i] = row_lse(z, i)  # max and log-sum of the row
        r = type(z[i, 0])(0)
        for j in range(z.shape[1]):
            r += y[i, j] * ((lse[0, i] - z[i, j]) + lse[1, i])
        acc += r
    return acc


@kernel(parallel=True)
def _sce_sparse_grad(z, labels, lse, scale, dz):
    # dz = scale (softmax - onehot), softmax = exp((z - m) - log s), an argument <= 0: the
    # vectorizable exp_neg (rows as views indexed from 0)
    for i in prange(z.shape[0]):
        zi, di, m, ls = z[i], dz[i], lse[0, i], lse[1, i]
        for j in range(zi.shape[0]):
            di[j] = scale * exp_neg((zi[j] - m) - ls)
        dz[i, labels[i]] -= scale


@kernel(parallel=True, fastmath=REASSOC)
def _sce_dense_grad(z, y, lse, scale, dz):
    # dz = scale (softmax sum_j y_ij - y), which is softmax - y for probability rows
    for i in prange(z.shape[0]):
        zi, yi, di, m, ls = z[i], y[i], dz[i], lse[0, i], lse[1, i]
        sy = type(zi[0])(0)
        for j in range(zi.shape[0]):
            sy += yi[j]
        for j in range(zi.shape[0]):
            di[j] = scale * (exp_neg((zi[j] - m) - ls) * sy - yi[j])


def pointwise_loss(p: np.ndarray, t: np.ndarray, kind: str, eps: float = 0.0) -> np.ndarray:
    """The mean over all elements of the loss ``kind``; a 0-d array of ``p``'s dtype."""
    s = pick(_point_sum, p.size)(flat(p), flat(t).astype(p.dtype, copy=False), CODES[kind],
                                 scalar(p.dtype, eps))
    return np.array(s / max(p.size, 1), p.dtype)


def pointwise_loss_grad(g: np.ndarray, p: np.ndarray, t: np.ndarray, kind: str,
                        eps: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """``(dp, dt)``: the loss gradient scaled by ``g / size``; ``dt = -dp`` for mse, mae and
    huber, None for the cross-entropies (labels are data)."""
    dp = np.empty(p.shape, p.dtype)
    code = CODES[kind]
    pick(_point_grad_flat, p.size)(flat(p), flat(t).astype(p.dtype, copy=False),
                                   dp.reshape(-1), code, scalar(p.dtype, eps),
                                   scalar(p.dtype, float(g) / max(p.size, 1)))
    return dp, ((-dp).reshape(t.shape) if code in DIFFERENCE else None)


def _rows(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = z.shape[-1]
    z2 = np.ascontiguousarray(z).reshape(-1, c)
    if labels.dtype.kind in "iu":
        y = np.ascontiguousarray(labels).reshape(-1)
        if y.size and (y.min() < 0 or y.max() >= c):
            bad = y[(y < 0) | (y >= c)][0]
            raise ValueError(f"label {bad} is out of range for {c} classes (0..{c - 1})")
    else:
        y = np.ascontiguousarray(labels, dtype=z.dtype).reshape(-1, c)
    return z2, y


def softmax_cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, lse)``: the batch-mean cross-entropy of logits ``z`` (..., C) against integer
    class ids (...) or probability rows (..., C); ``lse`` (2, N) keeps each row's maximum
    and log-sum-exp after it, for backward."""
    z2, y = _rows(z, labels)
    lse = np.empty((2, z2.shape[0]), z.dtype)
    k = _sce_sparse if y.ndim == 1 else _sce_dense
    s = pick(k, z2.size)(z2, y, lse)
    return np.array(s / max(z2.shape[0], 1), z.dtype), lse


def softmax_cross_entropy_grad(g: np.ndarray, z: np.ndarray, labels: np.ndarray,
                               lse: np.ndarray) -> np.ndarray:
    """d loss / d z = g (softmax(z) - y) / N, from the forward pass's ``lse``."""
    z2, y = _rows(z, labels)
    dz = np.empty_like(z2)
    k = _sce_sparse_grad if y.ndim == 1 else _sce_dense_grad
    pick(k, z2.size)(z2, y, lse, z.dtype.type(float(g) / max(z2.shape[0], 1)), dz)
    return dz.reshape(z.shape)
