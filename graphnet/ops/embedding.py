"""Indexing ops of Lecture 2: learned embeddings (a row lookup), one-hot codes, and the
sinusoidal positional encoding of Vaswani et al. (a constant, computed on the host); and
``take``, the same row lookup on any tensor (picking sampled anchors or RoIs in a detector).
"""

from __future__ import annotations

import numpy as np

from ..core.dtypes import as_dtype
from ..core.errors import GraphError
from ..core.rows import IndexedRows
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op

__all__ = ["embedding", "one_hot", "positional_encoding", "take"]


def _int_ids(ids, what: str) -> None:
    if ids.dtype.kind not in "iu":
        raise GraphError(f"{what} must be integer ids, got {ids.dtype} {fmt_shape(ids.shape)}; "
                         "feed token ids as an int Input (gn.Input(..., dtype='int64'))")


class Embedding(Op):
    """y[..., :] = table[ids[...], :] for ids (...) and table (vocab, dim) -> (..., dim).

    Backward: d table[r] = sum of g[i] over every position i with ids[i] = r (a scatter-add,
    so repeated ids accumulate); ids get no gradient. A mean's gradient over the tokens stays
    a Broadcast in the rows (one row per bag, ``core/rows.py``).
    """

    name = "embedding"
    family = "embedding"
    takes_broadcast = True

    def infer(self, ids, table):
        _int_ids(ids, "the first input (ids)")
        if table.ndim != 2 or None in table.shape or table.dtype.kind != "f":
            raise GraphError(f"the table must be a 2-D float array (vocab, dim), got "
                             f"{fmt_shape(table.shape)} {table.dtype}")
        return tuple(ids.shape) + (table.shape[1],), table.dtype

    def forward(self, ctx, ids, table):
        shape = tuple(ids.shape) + (tuple(table.shape)[1],)
        return ctx.be.embedding(ids, table, out=ctx.buffer("y", shape, table.dtype))

    def backward(self, ctx, g, y, ids, table):
        # the rows g names, not yet summed into the table: an optimizer may read them as they
        # are (core/rows.py), anything else asks for the dense scatter-add
        return None, IndexedRows(ids, g, tuple(table.shape), ctx)


class Take(Op):
    """y[k, ...] = x[ids[k], ...]: rows of any float tensor x (N, ...), N free (None).

    The embedding lookup on x seen as (N, rest): backward scatter-adds g's rows into a zero
    gradient of x's shape (rows picked twice get both); ids get no gradient.
    """

    name = "take"
    family = "shape"

    def infer(self, x, ids):
        _int_ids(ids, "take's second input (ids)")
        if x.ndim < 1 or x.dtype.kind != "f" or None in x.shape[1:]:
            raise GraphError(f"take picks rows of a float tensor (rows, ...) whose other axes "
                             f"are known, got {fmt_shape(x.shape)} {x.dtype}")
        return tuple(ids.shape) + tuple(x.shape[1:]), x.dtype

    def forward(self, ctx, x, ids):
        rows = ctx.be.reshape(x, (tuple(x.shape)[0], -1))
        out = ctx.be.embedding(ids, rows)
        return ctx.be.reshape(out, tuple(ids.shape) + tuple(x.shape)[1:])

    def backward(self, ctx, g, y, x, ids):
        n = tuple(x.shape)[0]
        g2 = ctx.be.reshape(g, tuple(ids.shape) + (-1,))
        return ctx.be.reshape(ctx.be.embedding_grad(g2, ids, n), tuple(x.shape)), None


class OneHot(Op):
    """y[..., j] = 1 if ids[...] == j else 0, for j < depth; no gradient (ids are data)."""

    name = "one_hot"
    family = "embedding"

    def infer(self, ids):
        _int_ids(ids, "one_hot's input")
        if int(self.depth) <= 0:
            raise GraphError(f"depth must be positive, got {self.depth}")
        return tuple(ids.shape) + (int(self.depth),), as_dtype(self.dtype)

    def forward(self, ctx, ids):
        return ctx.be.one_hot(ids, int(self.depth), self.dtype)

    def backward(self, ctx, g, y, ids):
        return (None,)


def embedding(ids, table) -> Tensor:
    """Rows of ``table (vocab, dim)`` picked by the integer ``ids``: shape ``ids + (dim,)``.
    An id outside ``[0, vocab)`` stops the run with an error naming it."""
    return apply(Embedding(), [ids, table])


def take(x, ids) -> Tensor:
    """Rows of ``x`` picked by the integer ``ids`` (NumPy's ``np.take(x, ids, axis=0)``):
    shape ``ids + x.shape[1:]``; the gradient flows back to the picked rows."""
    return apply(Take(), [x, ids])


def one_hot(ids, depth: int, dtype: str = "float32") -> Tensor:
    """One-hot codes of the integer ``ids``: shape ``ids + (depth,)``, ids in ``[0, depth)``."""
    return apply(OneHot(depth=int(depth), dtype=np.dtype(dtype).name), [ids])


def positional_encoding(length: int, depth: int, dtype: str = "float32") -> np.ndarray:
    """The sinusoidal encoding ``(length, depth)`` of "Attention is all you need":

    PE[p, 2i] = sin(p / 10000^(2i/depth)),  PE[p, 2i+1] = cos(p / 10000^(2i/depth)),

    so each pair of features turns at its own frequency and ``PE[p + k]`` is a fixed rotation
    of ``PE[p]``: relative positions are linear in it. A NumPy array (add it as a constant).
    """
    if int(length) < 0 or int(depth) <= 0:
        raise ValueError(f"positional_encoding needs length >= 0 and depth > 0, got "
                         f"{length} and {depth}")
    p = np.arange(int(length), dtype=np.float64)[:, None]
    i2 = (np.arange(int(depth)) // 2 * 2).astype(np.float64)  # 2i for features 2i and 2i+1
    angle = p / np.power(10000.0, i2 / int(depth))
    pe = np.where(np.arange(int(depth)) % 2 == 0, np.sin(angle), np.cos(angle))
    return pe.astype(np.dtype(dtype))
