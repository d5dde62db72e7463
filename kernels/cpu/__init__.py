"""The CPU backend: NumPy arrays and @njit kernels.

An op reaches every kernel as ``ctx.be.<name>``; ``graphnet.kernels.cuda`` exposes the same
names for the GPU. Array helpers (``empty``, ``asarray``, ``to_host``) let ops stay
device-neutral.
"""

import numpy as np

from . import elementwise, reduce
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
from .reduce import max, sum, sum_to  # noqa: A004 - the kernels carry NumPy's names

name = "cpu"
badge = "njit"


def empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype)


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def asarray(x, dtype=None) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=dtype)


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
