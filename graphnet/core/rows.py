"""A gradient that is zero but for some rows: what an embedding lookup's backward returns.

``IndexedRows(indices, values, shape, ctx)`` stands for the ``shape = (rows, dim)`` array whose
row ``indices[k]`` receives ``values[k]`` (repeated indices add up) and whose other rows are zero:
TensorFlow's IndexedSlices. A batch of 4096 tokens touches a fifth of a 20000-word table, so
an optimizer that reads these rows (Adam's row form, ``kernels/cpu/optim.py``) skips clearing,
filling and reading the dense 10 MB gradient. Everyone else asks for ``dense()``: the
executor before an op's backward, a fan-out sum or a returned gradient, and any optimizer
without a row form.

``Broadcast`` is the other lazy gradient: a sum's or mean's backward (``g`` copied back along
the reduced axes) before it is written out. An embedding's backward keeps it inside its
IndexedRows, so the row sums read one row of ``g`` per bag of tokens (the (64, 128) gradient
of a mean over 64 tokens, not its (64, 64, 128) copy); every other op gets ``dense()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class IndexedRows:
    """``values (..., dim)`` to add into rows ``indices (...)`` of a zero ``(rows, dim)`` array.

    ``ctx`` (the producing node's) lends ``dense()`` a reused table: it is zero but for the rows
    the last call filled, and only those are cleared (``ctx.dirty``), so a dense gradient
    costs a few rows, not the whole table, each step.
    """

    __slots__ = ("indices", "_values", "shape", "_ctx", "_dense")

    def __init__(self, indices: Any, values: Any, shape: tuple, ctx: Any) -> None:
        self.indices = indices
        self._values = values  # an array, or a Broadcast of shape indices + (dim,)
        self.shape = tuple(shape)
        self._ctx = ctx
        self._dense = None

    @property
    def dtype(self):
        return self._values.dtype

    @property
    def values(self):
        """``values (..., dim)`` as an array (a Broadcast written out)."""
        return dense(self._values)

    def rows(self) -> tuple:
        """``(vals (k, dim), src)``: position i of the flat indices adds ``vals[src[i]]``;
        or ``(values (..., dim), None)``, a row per position (the row kernels' two forms)."""
        v = self._values
        if type(v) is Broadcast:
            found = v.rows()
            if found is not None:
                return found
        return dense(v), None

    def dense(self):
        """The full ``shape`` array (computed once; a reused buffer where the backend allows)."""
        if self._dense is None:
            ctx = self._ctx
            be, n = ctx.be, self.shape[0]
            dt = ctx.buffer("dense rows", self.shape, self.dtype)
            if dt is None:  # the backend allocates (CUDA)
                self._dense = be.embedding_grad(self.values, self.indices, n)
                return self._dense
            last = getattr(ctx, "dirty", None)
            rows = last[1] if last is not None and last[0] is dt else None
            self._dense = be.embedding_grad(self.values, self.indices, n, out=dt, dirty=rows)
            ctx.dirty = (dt, be.asarray(self.indices).reshape(-1).copy())
        return self._dense

    def __repr__(self) -> str:
        return (f"<IndexedRows {self.indices.size} rows of {self.shape} "
                f"{self.dtype}>")


class Broadcast:
    """``g`` times ``scale`` copied back along ``axes`` of ``shape`` (a sum's or mean's
    backward), written out by ``dense()`` into ``ctx``'s reused buffer.

    The scale is applied in ``g``'s dtype, as the written-out form does, so ``rows()`` and
    ``dense()`` give the same bits."""

    __slots__ = ("g", "shape", "axes", "scale", "_ctx", "_dense")

    def __init__(self, g: Any, shape: tuple, axes: tuple, scale: float, ctx: Any) -> None:
        self.g, self.shape, self.axes, self.scale = g, tuple(shape), tuple(axes), scale
        self._ctx = ctx
        self._dense = None

    @property
    def dtype(self):
        return self.g.dtype

    def dense(self):
        """The ``shape`` array (computed once)."""
        if self._dense is None:
            ctx = self._ctx
            self._dense = ctx.be.broadcast_to(self.g, self.shape, self.axes, self.scale,
                                              out=ctx.buffer("dx", self.shape, self.dtype))
        return self._dense

    def rows(self) -> tuple | None:
        """``(vals (k, dim), src)``, row ``src[i]`` of ``vals`` at position i of the leading
        axes (where the last axis is not reduced; else None): ``g`` scaled, not copied out.
        ``src`` depends on the shape only and is kept in ``ctx``."""
        last = len(self.shape) - 1
        if last < 0 or last in self.axes:
            return None
        ctx, dim = self._ctx, self.shape[-1]
        keep = tuple(1 if i in self.axes else d for i, d in enumerate(self.shape))
        k = int(np.prod(keep[:-1]))
        vals = ctx.be.broadcast_to(self.g.reshape(k, dim), (k, dim), (), self.scale,
                                   out=ctx.buffer("dx rows", (k, dim), self.dtype))
        key = (self.shape, self.axes)
        cached = getattr(ctx, "spread_src", None)
        if cached is None or cached[0] != key:
            src = np.broadcast_to(np.arange(k).reshape(keep[:-1]), self.shape[:-1])
            cached = ctx.spread_src = (key, ctx.be.asarray(src.reshape(-1)))
        return vals, cached[1]


LAZY = (IndexedRows, Broadcast)  # the gradients a node's backward may leave unwritten


def dense(g: Any) -> Any:
    """``g`` as an array: the dense form of a lazy gradient, anything else as it is."""
    return g.dense() if type(g) in LAZY else g


def stored(g: Any) -> Any:
    """The array a gradient holds, nothing written out (what ``check_numerics`` reads): an
    IndexedRows' values, a Broadcast's ``g``."""
    if type(g) is IndexedRows:
        g = g._values
    return g.g if type(g) is Broadcast else g


def taken_by(op: Any, g: Any) -> Any:
    """``g`` as ``op``'s backward takes it: written out, but a Broadcast where the op sets
    ``takes_broadcast``."""
    if type(g) is Broadcast and op.takes_broadcast:
        return g
    return dense(g)
