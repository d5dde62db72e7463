"""Activation kernels: one family for the standalone activations and the dense op's epilogue.

Two scalar functions, ``act(code, z, alpha)`` and ``act_grad(code, z, y, alpha)``, hold the
math of every activation; the loops here and in ``dense.py`` call them, so adding an
activation means adding one branch to each. The derivative reads the output ``y`` where it
can (sigmoid, tanh, elu) and the pre-activation ``z`` for the sign tests and gelu.
Constants come from the data's own type (``type(z)(0.5)``) so float32 stays float32.
"""

import math

import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["activation", "activation_grad"]

# The activation names the kernels know, and the integer code each loop branches on.
CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "elu": 5, "gelu": 6}
SIGMOID = CODES["sigmoid"]  # for other kernels (a global int is a compile-time constant)


def code_of(kind: str | None) -> int:
    """The kernel code of an activation name (None means linear)."""
    return CODES["linear" if kind is None else kind]


@kernel
def act(code, z, alpha):
    """The activation ``code`` at the scalar ``z``."""
    zero = type(z)(0)
    # written as `... if z < zero else z` so that NaN passes through, as in NumPy
    if code == 1:  # relu
        return zero if z < zero else z
    if code == 2:  # sigmoid, never exp of a large positive number
        one = type(z)(1)
        if z >= zero:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == 3:
        return math.tanh(z)
    if code == 4:  # leaky relu
        return alpha * z if z < zero else z
    if code == 5:  # elu: alpha (e^z - 1) below zero
        return alpha * math.expm1(z) if z < zero else z
    if code == 6:  # gelu, exact: z Phi(z) = z/2 (1 + erf(z / sqrt 2))
        half = type(z)(0.5)
        return half * z * (type(z)(1) + math.erf(z * type(z)(0.7071067811865476)))
    return z


@kernel
def act_grad(code, z, y, alpha):
    """d act / d z at ``z`` where ``y = act(z)``."""
    zero = type(z)(0)
    one = type(y)(1)
    if code == 1:
        return one if z > zero else zero
    if code == 2:  # s (1 - s)
        return y * (one - y)
    if code == 3:  # 1 - tanh^2
        return one - y * y
    if code == 4:
        return one if z > zero else alpha
    if code == 5:  # alpha e^z = y + alpha below zero
        return one if z > zero else y + alpha
    if code == 6:  # Phi(z) + z phi(z)
        half = type(z)(0.5)
        cdf = half * (one + math.erf(z * type(z)(0.7071067811865476)))
        return cdf + z * math.exp(-half * z * z) * type(z)(0.3989422804014327)
    return one


@kernel(parallel=True)
def _act_flat(x, out, code, alpha):
    for i in prange(x.shape[0]):
        out[i] = act(code, x[i], alpha)
    return out


@kernel(parallel=True)
def _act_grad_flat(g, z, y, out, code, alpha):
    # dx = g * act'(z): one pass over g, z and y
    for i in prange(g.shape[0]):
        out[i] = g[i] * act_grad(code, z[i], y[i], alpha)
    return out


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def activation(x: np.ndarray, kind: str, alpha: float = 0.0) -> np.ndarray:
    """``act(x)`` elementwise for the activation named ``kind``."""
    out = np.empty(x.shape, x.dtype)
    pick(_act_flat, x.size)(_flat(x), out.reshape(-1), code_of(kind), x.dtype.type(alpha))
    return out


def activation_grad(g: np.ndarray, x: np.ndarray, y: np.ndarray, kind: str,
                    alpha: float = 0.0) -> np.ndarray:
    """``g * act'(x)`` given the input ``x`` and output ``y`` of the activation."""
    out = np.empty(x.shape, x.dtype)
    pick(_act_grad_flat, x.size)(_flat(g), _flat(x), _flat(y), out.reshape(-1),
                                 code_of(kind), x.dtype.type(alpha))
    return out
