"""The CPU backend: NumPy arrays and @njit kernels.

An op reaches every kernel as ``ctx.be.<name>``; ``graphnet.kernels.cuda`` exposes the same
names for the GPU. Array helpers (``empty``, ``asarray``, ``to_host``) let ops stay
device-neutral.
"""

import numpy as np

from . import elementwise, optim, reduce
from .activation import activation, activation_grad
from .dense import dense, dense_grad
from .dropout import dropout, dropout_grad
from .elementwise import (
    abs_grad,
    absolute,
    add,
    div,
    div_grad_b,
    exp,
    log,
    mul,
    neg,
    power,
    power_grad_a,
    power_grad_b,
    sqrt,
    sqrt_grad,
    sub,
)
from .loss import (
    pointwise_loss,
    pointwise_loss_grad,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
)
from .matmul import matmul, matmul_at_sum
from .optim import adam_update, grad_sq_norms, rms_update, sgd_update
from .reduce import (  # noqa: A004 - the kernels carry NumPy's names
    broadcast_to,
    max,
    max_grad,
    mean,
    sum,
    sum_to,
)
from .shape import concatenate, getitem, getitem_grad, reshape, split, transpose
from .softmax import softmax, softmax_grad

name = "cpu"
# whether ops may hand kernels reusable output buffers (Ctx.buffer)
reuses_buffers = True
badge = "njit"


def empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype)


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def asarray(x, dtype=None) -> np.ndarray:
    # np.asarray with order="C", not np.ascontiguousarray, which turns 0-d into shape (1,)
    return np.asarray(x, dtype=dtype, order="C")


def to_host(x) -> np.ndarray:
    return x


def is_finite(x) -> bool:
    return bool(np.isfinite(x).all())


__all__ = [
    "elementwise", "reduce", "name", "badge", "empty", "zeros", "asarray", "to_host",
    "is_finite", "add", "sub", "mul", "div", "power", "neg", "exp", "log", "sqrt", "absolute",
    "div_grad_b", "power_grad_a", "power_grad_b", "sqrt_grad", "abs_grad", "sum", "max",
    "sum_to",
]
__all__ += ["optim", "sgd_update", "adam_update", "rms_update", "grad_sq_norms"]
__all__ += ["activation", "activation_grad", "dense", "dense_grad", "dropout", "dropout_grad",
            "pointwise_loss", "pointwise_loss_grad", "softmax_cross_entropy",
            "softmax_cross_entropy_grad", "softmax", "softmax_grad"]
__all__ += ["broadcast_to", "mean", "max_grad", "reshape", "transpose", "concatenate", "split",
            "getitem", "getitem_grad", "matmul", "matmul_at_sum"]
