"""The Op contract: one node kind's math in one class (shape rule, forward, backward).

Ops never touch Numba; they call kernels through ``ctx.be``, the backend the executor hands
them, so one op runs on the CPU and on the GPU alike.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import fmt_shape

OPS: dict[str, type[Op]] = {}


class Op:
    """Base class. Subclasses set ``name`` (the registry key) and ``family`` (for drawing).

    * ``infer(*inputs)`` returns ``(shape, dtype)`` from the input Tensors or raises GraphError;
    * ``forward(ctx, *xs)`` returns the output array;
    * ``backward(ctx, g, y, *xs)`` returns one gradient (or None) per input: the
      vector-Jacobian product of the upstream gradient ``g`` through this node. Where
      ``ctx.wants(i)`` is false nobody wants input i's gradient, and an op may skip it.
    Static attributes (axis, rate, ...) are keyword arguments of the constructor, kept in
    ``attrs`` so that a graph can be saved and rebuilt.

    ``g`` is an array, or for an op that sets ``takes_broadcast`` possibly a
    ``core.rows.Broadcast`` (a reduction's backward not yet written out).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "math"
    takes_broadcast: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name:
            OPS[cls.name] = cls

    def __init__(self, **attrs: Any) -> None:
        self.attrs = attrs
        for k, v in attrs.items():
            setattr(self, k, v)

    def infer(self, *xs) -> tuple[tuple, np.dtype]:
        raise NotImplementedError

    def forward(self, ctx, *xs):
        raise NotImplementedError

    def backward(self, ctx, g, y, *xs) -> tuple:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attrs.items())
        return f"{self.name}({args})"


# -- shape helpers shared by the shape rules ------------------------------------------------

def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    """NumPy broadcasting with None (the batch dimension) treated as an unknown size."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for da, db in zip(a, b):
        if da == 1:
            out.append(db)
        elif db == 1 or da == db:
            out.append(da)
        elif da is None or db is None:
            out.append(da if db is None else db)
        else:
            raise GraphError(f"shapes {a} and {b} do not broadcast")
    return tuple(out)


def same_float_dtype(*xs) -> np.dtype:
    """The common float dtype of the inputs; mixing float32 and float64 is an error."""
    dts = {x.dtype for x in xs}
    if len(dts) != 1:
        raise GraphError(f"dtypes differ: {sorted(str(d) for d in dts)}; cast one explicitly")
    (dt,) = dts
    if dt.kind != "f":
        raise GraphError(f"needs a float input, got {dt}")
    return dt


def norm_axes(axis, ndim: int) -> tuple:
    """Axis argument (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise GraphError(f"axis {a} is out of range for {ndim} dimensions")
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


def pair(v, what: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (Keras' ``pool_size=2``)."""
    try:
        p = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    except TypeError:
        p = ()
    if len(p) != 2 or not all(isinstance(a, (int, np.integer)) and a >= 1 for a in p):
        raise GraphError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return int(p[0]), int(p[1])


def spatial(x, op: str) -> tuple[int, int]:
    """The static (height, width) of a channels-last 4-D input, or a GraphError."""
    if x.ndim != 4:
        raise GraphError(f"{op} expects channels-last (batch, height, width, channels) "
                         f"input, got {fmt_shape(x.shape)}")
    if x.shape[1] is None or x.shape[2] is None:
        raise GraphError(f"{op} needs a known height and width, got {fmt_shape(x.shape)}")
    return x.shape[1], x.shape[2]
