"""Activation kernels on the GPU: the CPU family's scalar math as device functions.

``act(code, z, alpha)`` and ``act_grad(code, z, y, alpha)`` are the CPU kernels' own
functions compiled for the device (``_base.twin``): the same codes and formulas, constants
taken from the data's type so float32 stays float32. ``activation`` and ``activation_grad``
run them through the elementwise template; ``dense.py`` calls them in its fused epilogue.
"""

from __future__ import annotations

import math

from ..cpu.activation import PIECES, code_of
from ..cpu.activation import act as _cpu_act
from ..cpu.activation import act_grad as _cpu_act_grad
from . import _base, elementwise

__all__ = ["activation", "activation_grad"]


# the CPU kernels' scalar functions (one per activation, and the dispatch over them),
# compiled for the device from the same source (tanh is the device's own: the CPU's fast
# float32 form answers a CPU libm cost; so is exp)
_pieces = {name: _base.twin(f, tanh=math.tanh, exp_neg=math.exp) for name, f in PIECES.items()}
act = _base.twin(_cpu_act, **_pieces)
act_grad = _base.twin(_cpu_act_grad, **_pieces)


def _act(x, b, c, d, alpha, q, code):
    return act(code, x, alpha)


def _act_grad(g, x, y, d, alpha, q, code):
    return g * act_grad(code, x, y, alpha)


_act_map = elementwise._map(_act)
_act_grad_map = elementwise._map(_act_grad)


def activation(x, kind: str, alpha: float = 0.0):
    """``act(x)`` elementwise for the activation named ``kind``."""
    return _act_map(x, p=alpha, code=code_of(kind))


def activation_grad(g, x, y, kind: str, alpha: float = 0.0):
    """``g * act'(x)`` given the input ``x`` and output ``y`` of the activation."""
    out = _act_grad_map(g, x, y, p=alpha, code=code_of(kind))
    return out.reshape(x.shape) if tuple(out.shape) != tuple(x.shape) else out


