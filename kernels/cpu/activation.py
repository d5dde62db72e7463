"""Activation kernels: one family for the standalone activations and the dense op's epilogue.

One small scalar function per activation (``_relu(code, z, alpha)``) and per derivative
(``_relu_grad(code, z, y, alpha)``) holds its math; ``act(code, z, alpha)`` and
``act_grad(code, z, y, alpha)`` pick one by code, and the loops here and in ``dense.py``,
``conv.py`` and the recurrent cells call those two, so adding an activation means adding a
pair of functions and a code. The derivative reads the output ``y`` where it can (sigmoid,
tanh, elu) and the pre-activation ``z`` for the sign tests and gelu. All are inlined into
their callers' loops (``kernel(inline=True)``): a ReLU pass vectorizes (4x faster than a
compiled call per element; tanh and sigmoid 1.5-2x). In compiled code a constant code
selects its function at typing time (see ``_act_typed``).
"""

import math

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic, overload

from ..jit import _renamed, kernel, pick, specializing

__all__ = ["activation", "activation_grad"]

# The activation names the kernels know, and the integer code each loop branches on.
CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "elu": 5, "gelu": 6}
SIGMOID = CODES["sigmoid"]  # for other kernels (a global int is a compile-time constant)


def code_of(kind: str | None) -> int:
    """The kernel code of an activation name (None means linear)."""
    return CODES["linear" if kind is None else kind]


def tanh(z):
    """tanh; in compiled float32 code the fast form ``_tanh32`` (see below)."""
    return math.tanh(z)


# Taylor coefficients of tanh(z) / z - 1 in powers of z^2 (-1/3, 2/15, -17/315, ...)
_TANH_TAYLOR = (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075,
                -929569 / 638512875, 6404582 / 10854718875)


def exp_neg(x):
    """exp of ``x <= 0``; in compiled float32 code the vectorizable ``_exp_neg32`` below."""
    return math.exp(x)


@intrinsic
def _f32_from_bits(typingctx, i):
    # the float32 whose IEEE bits are the low 32 bits of the integer i (an LLVM bitcast,
    # which the loop vectorizer keeps in vector registers)
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


# 1/k! for e^r = 1 + r + r^2/2 + ... + r^7/7!: on |r| <= ln2/2 the truncation is r^8/8! <
# 6e-9, under float32's half ulp
_EXP_TAYLOR = tuple(1 / math.factorial(k) for k in range(8))


def _exp_neg32(x):
    # Numba without SVML calls libm's expf per element and no loop around it vectorizes.
    # Here only arithmetic: x = k ln2 + r with k = round(x / ln2) (ln2 split in a short high
    # part, exact in k ln2_hi, and the rest), e^r from its Taylor series, 2^k built from
    # its exponent bits. Below -87.3 (2^-126) the result is 0.
    # All in float32, 16 lanes: k stays a float (k from math.floor is an int64, and k r in
    # float64 ran the reduction and the polynomial in double precision, 8 lanes). Within
    # 0.9 ulp of exp; the sigmoid takes its quotient in double to stay within 2 ulp.
    lo = np.float32(-87.3)
    xc = x if x > lo else lo
    k = np.floor(xc * np.float32(1.4426950408889634) + np.float32(0.5))
    r = xc - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)
    p = np.float32(_EXP_TAYLOR[7])
    for j in range(6, -1, -1):
        p = p * r + np.float32(_EXP_TAYLOR[j])
    e = p * _f32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))
    return e if x > lo else np.float32(0)


@overload(exp_neg, jit_options={"error_model": "numpy"})
def _exp_neg_typed(x):
    if x == types.float32:
        return _exp_neg32
    return lambda x: math.exp(x)


def _tanh32(z):
    # libm's tanhf cost 25 ns a call, exp 4 ns: tanh |z| = (1 - e) / (1 + e), e = exp(-2|z|),
    # which loses no precision for |z| >= 0.55 (e <= 1/3); below, the Taylor series to z^17
    # (truncation < 1e-8 relative at 0.55, under float32's 6e-8)
    # (both forms computed and one selected, with the vectorizable exp: no branch stops the
    # loop vectorizer)
    a = abs(z)
    z2 = z * z
    p = np.float32(_TANH_TAYLOR[7])
    for k in range(6, -1, -1):
        p = p * z2 + np.float32(_TANH_TAYLOR[k])
    small = z + z * z2 * p
    e = exp_neg(np.float32(-2) * a)
    t = (np.float32(1) - e) / (np.float32(1) + e)
    big = t if z >= np.float32(0) else -t
    return small if a < np.float32(0.55) else big


@overload(tanh, jit_options={"error_model": "numpy"})
def _tanh_typed(z):
    # chosen by type at compile time: float32 takes the fast form, others libm's tanh
    if z == types.float32:
        return _tanh32
    return lambda z: math.tanh(z)


# One scalar function per activation and per derivative, each with act's or act_grad's
# arguments (the code unused) so that the typing below can hand it over as the call itself.
# Constants come from the data's own type so float32 stays float32; ``... if z < zero else
# z`` lets NaN pass through, as in NumPy.


@kernel(inline=True)
def _linear(code, z, alpha):
    return z


@kernel(inline=True)
def _linear_grad(code, z, y, alpha):
    return type(y)(1)


@kernel(inline=True)
def _relu(code, z, alpha):
    zero = type(z)(0)
    return zero if z < zero else z


@kernel(inline=True)
def _relu_grad(code, z, y, alpha):
    return type(y)(1) if z > type(z)(0) else type(y)(0)


@kernel(inline=True)
def _sigmoid(code, z, alpha):
    # from e = exp(-|z|), never exp of a large positive number: 1 / (1 + e) for z >= 0,
    # e / (1 + e) below (one exp, no branch); the quotient in double precision (in float32
    # the roundings of e, 1 + e and the quotient added up to 2.2 ulp)
    e = np.float64(exp_neg(-abs(z)))
    s = 1.0 / (1.0 + e) if z >= type(z)(0) else e / (1.0 + e)
    return type(z)(s)


@kernel(inline=True)
def _sigmoid_grad(code, z, y, alpha):
    return y * (type(y)(1) - y)  # s (1 - s)


@kernel(inline=True)
def _tanh(code, z, alpha):
    return tanh(z)


@kernel(inline=True)
def _tanh_grad(code, z, y, alpha):
    return type(y)(1) - y * y  # 1 - tanh^2


@kernel(inline=True)
def _leaky_relu(code, z, alpha):
    return alpha * z if z < type(z)(0) else z


@kernel(inline=True)
def _leaky_relu_grad(code, z, y, alpha):
    return type(y)(1) if z > type(z)(0) else alpha


@kernel(inline=True)
def _elu(code, z, alpha):
    return alpha * math.expm1(z) if z < type(z)(0) else z  # alpha (e^z - 1) below zero


@kernel(inline=True)
def _elu_grad(code, z, y, alpha):
    return type(y)(1) if z > type(z)(0) else y + alpha  # alpha e^z = y + alpha below zero


@kernel(inline=True)
def _gelu(code, z, alpha):
    # exact: z Phi(z) = z/2 (1 + erf(z / sqrt 2))
    half = type(z)(0.5)
    return half * z * (type(z)(1) + math.erf(z * type(z)(0.7071067811865476)))


@kernel(inline=True)
def _gelu_grad(code, z, y, alpha):
    # Phi(z) + z phi(z)
    half = type(z)(0.5)
    cdf = half * (type(y)(1) + math.erf(z * type(z)(0.7071067811865476)))
    return cdf + z * math.exp(-half * z * z) * type(z)(0.3989422804014327)


# by name (the CUDA twins rebind each one to its device copy) and by code (CODES)
_PIECES = (_linear, _relu, _sigmoid, _tanh, _leaky_relu, _elu, _gelu, _linear_grad, _relu_grad,
           _sigmoid_grad, _tanh_grad, _leaky_relu_grad, _elu_grad, _gelu_grad)
PIECES = {getattr(f, "py_func", f).__name__: f for f in _PIECES}
_ACTS = {code: PIECES["_" + name] for name, code in CODES.items()}
_GRADS = {code: PIECES["_" + name + "_grad"] for name, code in CODES.items()}


def act(code, z, alpha):
    """The activation ``code`` at the scalar ``z``."""
    if code == 1:
        return _relu(code, z, alpha)
    if code == 2:
        return _sigmoid(code, z, alpha)
    if code == 3:
        return _tanh(code, z, alpha)
    if code == 4:
        return _leaky_relu(code, z, alpha)
    if code == 5:
        return _elu(code, z, alpha)
    if code == 6:
        return _gelu(code, z, alpha)
    return _linear(code, z, alpha)


def act_grad(code, z, y, alpha):
    """d act / d z at ``z`` where ``y = act(z)``."""
    if code == 1:
        return _relu_grad(code, z, y, alpha)
    if code == 2:
        return _sigmoid_grad(code, z, y, alpha)
    if code == 3:
        return _tanh_grad(code, z, y, alpha)
    if code == 4:
        return _leaky_relu_grad(code, z, y, alpha)
    if code == 5:
        return _elu_grad(code, z, y, alpha)
    if code == 6:
        return _gelu_grad(code, z, y, alpha)
    return _linear_grad(code, z, y, alpha)


# In compiled code a constant code (every CPU caller passes a module constant fixed by
# jit.specializing, or the cell's own) compiles only its own function: typed through act,
# each call inlined every branch's math and Numba typed and lowered all of them (most of
# the LSTM drivers' cold compile). A code known only at run time keeps the branches.
_act_any, _act_grad_any = _renamed(act, "_any"), _renamed(act_grad, "_any")


@overload(act, inline="always", prefer_literal=True)
def _act_typed(code, z, alpha):
    if isinstance(code, types.IntegerLiteral):
        return _ACTS[code.literal_value].py_func
    return _act_any


@overload(act_grad, inline="always", prefer_literal=True)
def _act_grad_typed(code, z, y, alpha):
    if isinstance(code, types.IntegerLiteral):
        return _GRADS[code.literal_value].py_func
    return _act_grad_any


# the activation each compiled copy of the passes below fixes (jit.specializing): a loop
# that calls act with a run-time code keeps the branch over every activation inside and
# stays scalar (a ReLU backward pass over (50176, 32) took 13 ms instead of 1)
CODE = 0


@specializing("CODE", parallel=True)
def _act_flat(x, out, alpha):
    for i in prange(x.shape[0]):
        out[i] = act(CODE, x[i], alpha)


@specializing("CODE", parallel=True)
def _act_grad_flat(g, z, y, out, alpha):
    # dx = g * act'(z): one pass over g, z and y
    for i in prange(g.shape[0]):
        out[i] = g[i] * act_grad(CODE, z[i], y[i], alpha)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def activation(x: np.ndarray, kind: str, alpha: float = 0.0) -> np.ndarray:
    """``act(x)`` elementwise for the activation named ``kind``."""
    out = np.empty(x.shape, x.dtype)
    pick(_act_flat.of(CODE=code_of(kind)), x.size)(_flat(x), out.reshape(-1),
                                                   x.dtype.type(alpha))
    return out


def activation_grad(g: np.ndarray, x: np.ndarray, y: np.ndarray, kind: str,
                    alpha: float = 0.0) -> np.ndarray:
    """``g * act'(x)`` given the input ``x`` and output ``y`` of the activation."""
    out = np.empty(x.shape, x.dtype)
    pick(_act_grad_flat.of(CODE=code_of(kind)), x.size)(_flat(g), _flat(x), _flat(y),
                                                        out.reshape(-1), x.dtype.type(alpha))
    return out
