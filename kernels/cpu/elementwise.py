"""Elementwise kernels: NumPy broadcasting inside @njit array expressions, one pass each.

Backward rules that need more than one array are fused here (``div_grad_b`` reads g, a and b
once) rather than composed from several passes. No float literals: a Python float would
promote float32 arrays to float64.
"""

import numpy as np

from ..jit import kernel

__all__ = [
    "add", "sub", "mul", "div", "power", "neg", "exp", "log", "sqrt", "absolute", "div_grad_b",
    "power_grad_a", "power_grad_b", "sqrt_grad", "abs_grad",
]


@kernel(parallel=True, broadcasts=True)
def add(a, b):
    return a + b


@kernel(parallel=True, broadcasts=True)
def sub(a, b):
    return a - b


@kernel(parallel=True, broadcasts=True)
def mul(a, b):
    return a * b


@kernel(parallel=True, broadcasts=True)
def div(a, b):
    return a / b


@kernel(parallel=True, broadcasts=True)
def power(a, b):
    return a ** b


@kernel(parallel=True, broadcasts=True)
def neg(a):
    return -a


@kernel(parallel=True, broadcasts=True)
def exp(a):
    return np.exp(a)


@kernel(parallel=True, broadcasts=True)
def log(a):
    return np.log(a)


@kernel(parallel=True, broadcasts=True)
def sqrt(a):
    return np.sqrt(a)


@kernel(parallel=True, broadcasts=True)
def absolute(a):
    return np.abs(a)


# -- backward rules -----------------------------------------------------------------------

@kernel(parallel=True, broadcasts=True)
def div_grad_b(g, a, b):
    # d(a/b)/db = -a / b^2
    return -g * a / (b * b)


@kernel(parallel=True, broadcasts=True)
def power_grad_a(g, a, b, y):
    # d(a^b)/da = b a^(b-1) = b y / a, written without the division so that a = 0 works
    return g * b * a ** (b - (b / b))


@kernel(parallel=True, broadcasts=True)
def power_grad_b(g, a, y):
    # d(a^b)/db = a^b log a, taken as 0 where a <= 0 (the limit for a -> 0+ when b > 0)
    return np.where(a > 0, g * y * np.log(np.where(a > 0, a, a / a)), g * (a - a))


@kernel(parallel=True, broadcasts=True)
def sqrt_grad(g, y):
    # d sqrt(a) = 1 / (2 sqrt(a))
    return g / (y + y)


@kernel(parallel=True, broadcasts=True)
def abs_grad(g, a):
    return g * np.sign(a)
