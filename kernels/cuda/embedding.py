"""Embedding kernels on the GPU: row gather, its scatter-add gradient, and one-hot codes.

One thread per output element. The gather and one-hot kernels also check each id: an id
outside ``[0, n)`` writes a zero and is reported in a two-int flag the host reads back after
the launch (as the sparse cross-entropy does), raising the CPU twin's ValueError; ids fed from
the host were range-checked there and are not read back (``_base.bad_id``). The
gradient adds ``g`` into the table with ``cuda.atomic.add``, so repeated ids accumulate.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..cpu.embedding import range_error
from . import _base

__all__ = ["embedding", "embedding_grad", "one_hot", "take_rows"]


@cuda.jit
def _gather(ids, table, out, dim, vocab, zero, bad):
    # out[i, j] = table[ids[i], j] over the flat output
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = ids[e // dim]
        if r < 0 or r >= vocab:
            bad[0] = 1
            bad[1] = r
            out[e] = zero
        else:
            out[e] = table[r * dim + e % dim]


@cuda.jit
def _scatter_add(g, ids, dtable, dim, vocab):
    # dtable[ids[i], j] += g[i, j]; ids were checked by the forward gather (others skipped)
    for e in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        r = ids[e // dim]
        if r >= 0 and r < vocab:
            cuda.atomic.add(dtable, r * dim + e % dim, g[e])


@cuda.jit
def _one_hot(ids, out, depth, one, bad):
    # out[i, j] = 1 where j == ids[i], else 0
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = ids[e // depth]
        if r < 0 or r >= depth:
            bad[0] = 1
            bad[1] = r
        out[e] = one if e % depth == r else one - one


def _launch(k, n: int, ids, *args, what: str, limit: int) -> None:
    """Run an id-checking kernel over ``n`` elements; raise for a bad id in ``ids``."""
    bad = _base.bad_id(k, n, args, ids, limit)
    if bad is not None:
        raise range_error(bad, limit, what)


def _ids(ids):
    from . import asarray

    ids = asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    return ids


def embedding(ids, table, out=None):
    """``table[ids]``: one row of ``table (vocab, dim)`` per id, shape ``ids.shape + (dim,)``.
    ``out`` is the CPU's buffer hint; this backend allocates (``reuses_buffers = False``)."""
    from . import asarray

    ids, table = _ids(ids), asarray(table)
    vocab, dim = table.shape
    y = _base.empty(tuple(ids.shape) + (dim,), table.dtype)
    _launch(_gather, y.size, ids, _base.flat(ids), _base.flat(table), _base.flat(y), dim, vocab,
            table.dtype.type(0), what="vocabulary size", limit=vocab)
    return y


def embedding_grad(g, ids, vocab: int, out=None):
    """The table's gradient ``(vocab, dim)``: the rows of ``g`` summed into the rows their ids
    name (an id seen twice gets both rows). ``out`` (the CPU's buffer hint) is ignored."""
    from . import asarray, zeros

    g, ids = asarray(g), _ids(ids)
    dim = tuple(g.shape)[-1]
    dtable = zeros((vocab, dim), g.dtype)
    if g.size:
        _scatter_add[_base.blocks(g.size), _base.TPB](_base.flat(g), _base.flat(ids),
                                                      _base.flat(dtable), dim, vocab)
    return dtable


def one_hot(ids, depth: int, dtype="float32"):
    """``ids.shape + (depth,)``: 1 at each id's position, 0 elsewhere; ids in ``[0, depth)``."""
    ids = _ids(ids)
    dt = np.dtype(dtype)
    out = _base.empty(tuple(ids.shape) + (depth,), dt)
    _launch(_one_hot, out.size, ids, _base.flat(ids), _base.flat(out), depth, dt.type(1),
            what="depth", limit=depth)
    return out


def take_rows(x, lo: int, hi: int, order=None):
    """Rows ``lo:hi`` of ``x`` (a view), or rows ``order[lo:hi]`` gathered: fit's batch from
    data kept on the device. Integer rows keep the range ``x`` came with (``_base``)."""
    if order is None:
        return _base.keep_range(x[lo:hi], x)
    n = tuple(x.shape)[0]
    dim = x.size // n if n else 0
    y = _base.empty((hi - lo, dim), x.dtype)
    _launch(_gather, y.size, order, _base.flat(order[lo:hi]), _base.flat(x), _base.flat(y), dim,
            n, x.dtype.type(0), what="rows", limit=n)
    return _base.keep_range(y.reshape((hi - lo,) + tuple(x.shape)[1:]), x)
