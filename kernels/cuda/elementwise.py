"""Elementwise kernels with NumPy broadcasting: one @cuda.jit template, many scalar rules.

``_map(rule)`` builds a kernel that walks the output with a grid-stride loop and reads up to
four operands through broadcast strides (0 on an axis that broadcasting repeats). The
strides are computed on the host, axes that every operand walks contiguously are merged
(``_base.coalesce``), and the shape and strides travel as kernel arguments (tuples), so no
index arrays cross the bus. Each scalar rule is a device function of four values; unused
operands are a one-element dummy. No float literals: a Python float would make float32
kernels compute in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import _base

__all__ = [
    "add", "sub", "mul", "div", "power", "neg", "exp", "log", "sqrt", "absolute", "div_grad_b",
    "power_grad_a", "power_grad_b", "sqrt_grad", "abs_grad", "copy", "cast",
]

_KERNELS: dict = {}


def _map(rule):
    """A launcher ``f(*arrays, p=0, q=0, code=0)`` applying ``rule(a, b, c, d, p, q, code)``
    elementwise; ``p`` and ``q`` are scalars of the output's dtype, ``code`` an integer."""
    dev = cuda.jit(device=True)(rule)

    @cuda.jit
    def k(out, shape, x0, s0, x1, s1, x2, s2, x3, s3, p, q, code):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            if len(shape) == 1:  # one run of memory per operand: no division (the common case)
                o0, o1, o2, o3 = i * s0[0], i * s1[0], i * s2[0], i * s3[0]
            else:
                # unravel i over the (coalesced) output shape; offsets follow the strides
                r = i
                o0 = o1 = o2 = o3 = 0
                for d in range(len(shape) - 1, -1, -1):
                    e = r % shape[d]
                    r //= shape[d]
                    o0 += e * s0[d]
                    o1 += e * s1[d]
                    o2 += e * s2[d]
                    o3 += e * s3[d]
            out[i] = dev(x0[o0], x1[o1], x2[o2], x3[o3], p, q, code)

    def launch(*xs, p=0, q=0, code=0, out_dtype=None, shape=None):
        return _launch(k, xs, out_dtype, (p, q, code), shape)

    launch.__name__ = rule.__name__
    launch.__doc__ = rule.__doc__
    launch.kernel = k
    return launch


_DUMMY: dict = {}


def _dummy(dtype):
    d = _DUMMY.get(dtype)
    if d is None:
        d = _DUMMY[dtype] = cuda.to_device(np.zeros(1, dtype))
    return d


def _launch(k, xs, out_dtype, scalars, shape=None):
    from . import asarray  # the package's asarray: host arrays and scalars move over once

    arrays = [x for x in xs if _base.is_device(x) or isinstance(x, np.ndarray)]
    dt = np.result_type(*[a.dtype for a in arrays]) if arrays else np.result_type(*xs)
    # Python scalars take the arrays' dtype (NumPy 2's rule), then live on the device.
    xs = [asarray(x) if _base.is_device(x) or isinstance(x, np.ndarray)
          else asarray(np.asarray(x, dt)) for x in xs]
    out_shape = np.broadcast_shapes(*[x.shape for x in xs], *([shape] if shape else []))
    out = _base.empty(out_shape, out_dtype or dt)
    n = out.size
    if n == 0:
        return out
    shape, strides = _base.coalesce(out_shape, [_base.bcast_strides(x.shape, out_shape)
                                                 for x in xs])
    args = []
    for x, st in zip(xs, strides):
        args += [_base.flat(x), st]
    pad = _dummy(out.dtype)
    while len(args) < 8:
        args += [pad, (0,) * len(shape)]
    p, q, code = scalars
    t = out.dtype.type
    k[_base.blocks(n), _base.TPB](_base.flat(out), shape, *args, t(p), t(q), np.int64(code))
    return out


# -- forward rules ---------------------------------------------------------------------------

def _add(a, b, c, d, p, q, code):
    return a + b


def _sub(a, b, c, d, p, q, code):
    return a - b


def _mul(a, b, c, d, p, q, code):
    return a * b


def _div(a, b, c, d, p, q, code):
    return a / b


def _power(a, b, c, d, p, q, code):
    return a ** b


def _neg(a, b, c, d, p, q, code):
    return -a


def _exp(a, b, c, d, p, q, code):
    return math.exp(a)


def _log(a, b, c, d, p, q, code):
    return math.log(a)


def _sqrt(a, b, c, d, p, q, code):
    return math.sqrt(a)


def _absolute(a, b, c, d, p, q, code):
    return abs(a)


def _copy(a, b, c, d, p, q, code):
    return a


# -- backward rules (the CPU kernels' formulas, term for term) --------------------------------

def _div_grad_b(g, a, b, d, p, q, code):
    # d(a/b)/db = -a / b^2
    return -g * a / (b * b)


def _power_grad_a(g, a, b, y, p, q, code):
    # d(a^b)/da = b a^(b-1), written without dividing by a so that a = 0 works
    return g * b * a ** (b - (b / b))


def _power_grad_b(g, a, y, d, p, q, code):
    # d(a^b)/db = a^b log a, taken as 0 where a <= 0
    return g * y * math.log(a) if a > 0 else g * (a - a)


def _sqrt_grad(g, y, c, d, p, q, code):
    # d sqrt(a) = 1 / (2 sqrt(a))
    return g / (y + y)


def _abs_grad(g, a, c, d, p, q, code):
    # g sign(a); (a - a) g is 0 at the kink and NaN for NaN, as NumPy's sign
    return g if a > 0 else (-g if a < 0 else (a - a) * g)


add = _map(_add)
sub = _map(_sub)
mul = _map(_mul)
div = _map(_div)
power = _map(_power)
neg = _map(_neg)
exp = _map(_exp)
log = _map(_log)
sqrt = _map(_sqrt)
absolute = _map(_absolute)
copy = _map(_copy)
div_grad_b = _map(_div_grad_b)
power_grad_a = _map(_power_grad_a)
power_grad_b = _map(_power_grad_b)
sqrt_grad = _map(_sqrt_grad)
abs_grad = _map(_abs_grad)


def cast(x, dtype):
    """``x`` converted to ``dtype`` on the device (one copy pass)."""
    return copy(x, out_dtype=np.dtype(dtype))


def _scale(a, b, c, d, p, q, code):
    return a * p


scale = _map(_scale)
