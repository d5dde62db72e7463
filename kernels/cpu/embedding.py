"""Embedding kernels: a row gather from a table, its scatter-add gradient, and one-hot codes.

``y[i] = table[ids[i]]`` copies one row per id (parallel over ids: each thread writes its own
rows). The gradient adds ``g[i]`` into row ``ids[i]`` of a zero table; repeated ids must
accumulate, so two threads may never own the same row: the parallel twin splits the table's
*columns* among threads instead, each thread walking every id for its own column block.
Ids are checked before anything runs: an id outside ``[0, vocab)`` is a ValueError naming it.
"""

import numba
import numpy as np
from numba import prange

from ..jit import kernel, pick

__all__ = ["embedding", "embedding_grad", "one_hot", "take_rows"]

# column blocks of the parallel scatter (read once: numba.get_num_threads() in a kernel
# would make it uncacheable)
_THREADS = numba.config.NUMBA_NUM_THREADS


@kernel(parallel=True)
def _gather(ids, table, out):
    # out[i, :] = table[ids[i], :], each row a view indexed from 0 (an element loop over
    # table[r, j] kept the negative-index test of the id inside and stayed scalar)
    for i in prange(ids.shape[0]):
        src, dst = table[ids[i]], out[i]
        for j in range(dst.shape[0]):
            dst[j] = src[j]


@kernel(parallel=True)
def _scatter_add(g, ids, dirty, chunks, dtable):
    # dtable[dirty[i], :] = 0, then dtable[ids[i], :] += g[i, :]; chunk c owns columns
    # [c m / chunks, (c + 1) m / chunks) of both passes (one kernel and one parallel region
    # for the clearing and the adding; the embedding workload's step measured the same as
    # with a serial clearing pass before it). Each row's block is sliced and indexed from 0:
    # a loop over range(lo, hi) kept Numba's negative-index test inside and stayed scalar,
    # see recurrent.py's _gates_row
    m = g.shape[1]
    zero = dtable.dtype.type(0)
    for c in prange(chunks):
        lo, hi = c * m // chunks, (c + 1) * m // chunks
        for i in range(dirty.shape[0]):
            d = dtable[dirty[i], lo:hi]
            for j in range(d.shape[0]):
                d[j] = zero
        for i in range(ids.shape[0]):
            d, gi = dtable[ids[i], lo:hi], g[i, lo:hi]
            for j in range(d.shape[0]):
                d[j] += gi[j]


@kernel(parallel=True)
def _one_hot(ids, out, one):
    # out[i, :] = 0 except out[i, ids[i]] = 1 (``one`` is a 1 of out's dtype)
    zero = one - one
    for i in prange(ids.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = zero
        out[i, ids[i]] = one


def range_error(bad: int, n: int, what: str = "vocabulary size") -> ValueError:
    """The error for an id outside ``[0, n)`` (both backends raise it)."""
    return ValueError(f"id {bad} is out of range for {what} {n} (valid ids are 0..{n - 1})")


def check_ids(ids: np.ndarray, n: int, what: str = "vocabulary size") -> np.ndarray:
    """``ids`` flattened (contiguous); a ValueError names the first id outside ``[0, n)``."""
    if ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    flat = np.ascontiguousarray(ids).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        raise range_error(int(flat[(flat < 0) | (flat >= n)][0]), n, what)
    return flat


def embedding(ids: np.ndarray, table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``table[ids]``: one row of ``table (vocab, dim)`` per id, shape ``ids.shape + (dim,)``;
    ``out`` is an array of that shape to write into."""
    vocab, dim = table.shape
    flat = check_ids(ids, vocab)
    if out is None:
        out = np.empty(ids.shape + (dim,), table.dtype)
    pick(_gather, out.size)(flat, table, out.reshape(-1, dim))
    return out


def embedding_grad(g: np.ndarray, ids: np.ndarray, vocab: int,
                   out: np.ndarray | None = None, dirty: np.ndarray | None = None
                   ) -> np.ndarray:
    """The table's gradient ``(vocab, dim)``: the rows of ``g`` summed into the rows their ids
    name (an id seen twice gets both rows). ``out`` is a ``(vocab, dim)`` array to zero and
    fill (a reused one is faster than fresh zeros, whose pages fault in on first touch).
    ``dirty``: the flat ids of the last call that filled ``out``, when ``out`` is zero
    elsewhere; then only those rows are zeroed (a batch touches a few rows of a large
    vocabulary: 4096 of 20000 rows cleared instead of the whole 10 MB table)."""
    dim = g.shape[-1]
    flat = check_ids(ids, vocab)
    if out is None:
        dtable = np.zeros((vocab, dim), g.dtype)
    else:
        dtable = out
        if dirty is None:
            dtable.fill(0)
    rows = flat[:0] if dirty is None else np.ascontiguousarray(dirty, flat.dtype)
    k = pick(_scatter_add, g.size)
    chunks = min(_THREADS, dim) if k is getattr(_scatter_add, "parallel", None) else 1
    k(np.ascontiguousarray(g).reshape(-1, dim), flat, rows, max(chunks, 1), dtable)
    return dtable


def one_hot(ids: np.ndarray, depth: int, dtype="float32") -> np.ndarray:
    """``ids.shape + (depth,)``: 1 at each id's position, 0 elsewhere; ids in ``[0, depth)``."""
    flat = check_ids(ids, depth, "depth")
    out = np.empty(ids.shape + (depth,), np.dtype(dtype))
    pick(_one_hot, out.size)(flat, out.reshape(-1, depth), out.dtype.type(1))
    return out


def take_rows(x: np.ndarray, lo: int, hi: int, order: np.ndarray | None = None) -> np.ndarray:
    """Rows ``lo:hi`` of ``x`` (a view), or rows ``order[lo:hi]`` gathered: fit's batch from
    data kept where the program runs (the CUDA twin keeps it on the device)."""
    return x[lo:hi] if order is None else x[order[lo:hi]]
