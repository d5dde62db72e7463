"""A gradient that is zero but for some rows: what an embedding lookup's backward returns.

``IndexedRows(indices, values, shape, ctx)`` stands for the ``shape = (rows, dim)`` array whose
row ``indices[k]`` receives ``values[k]`` (repeated indices add up) and whose other rows are zero:
TensorFlow's IndexedSlices. A batch of 4096 tokens touches a fifth of a 20000-word table, so
an optimizer that reads these rows (Adam's row form, ``kernels/cpu/optim.py``) skips clearing,
filling and reading the dense 10 MB gradient. Everyone else asks for ``dense()``: the
executor before an op's backward, a fan-out sum or a returned gradient, and any optimizer
without a row form.
"""

from __future__ import annotations

from typing import Any


class IndexedRows:
    """``values (..., dim)`` to add into rows ``indices (...)`` of a zero ``(rows, dim)`` array.

    ``ctx`` (the producing node's) lends ``dense()`` a reused table: it is zero but for the rows
    the last call filled, and only those are cleared (``ctx.dirty``), so a dense gradient
    costs a few rows, not the whole table, each step.
    """

    __slots__ = ("indices", "values", "shape", "_ctx", "_dense")

    def __init__(self, indices: Any, values: Any, shape: tuple, ctx: Any) -> None:
        self.indices = indices
        self.values = values
        self.shape = tuple(shape)
        self._ctx = ctx
        self._dense = None

    @property
    def dtype(self):
        return self.values.dtype

    def dense(self):
        """The full ``shape`` array (computed once; a reused buffer where the backend allows)."""
        if self._dense is None:
            ctx = self._ctx
            be, n = ctx.be, self.shape[0]
            dt = ctx.buffer("dense rows", self.shape, self.values.dtype)
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
                f"{self.values.dtype}>")


def dense(g: Any) -> Any:
    """``g`` as an array: an IndexedRows' dense form, anything else as it is."""
    return g.dense() if type(g) is IndexedRows else g
