"""Matrix products on the GPU: cuBLAS where CuPy is there, else a tiled shared-memory GEMM.

Every product of the CUDA backend comes through ``matmul``. With CuPy installed and a GPU
present, it runs on cuBLAS over the same device memory (``cublas.py``); otherwise (the
simulator in CI, for one) on the kernel below.

One kernel serves ``a @ b``, its transposed forms and its batched form: op(A)[i, k] is read
at ``base + i*si + k*sk`` (a transpose swaps the two strides, so nothing is copied), and
``blockIdx.z`` walks the broadcast batch, whose per-operand offsets come from host-computed
strides (0 where an operand is shared). A block of 16 x 16 threads computes a 64 x 64 tile
of C: per step along k it stages a 16-deep slice of A's rows and B's columns in shared
memory, and each thread accumulates a 4 x 4 block of outputs in registers (an outer product
per k), so each global element is read N/64 times and each shared one feeds 4 multiply-adds.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, from_dtype

from . import _base, cublas

__all__ = ["matmul", "matmul_at_sum"]

# Threads per block side (T x T threads), outputs per thread side (R x R, in registers) and
# the k-depth of a staged tile; a block computes a (T R) x (T R) tile of C. The simulator's
# blocks stay small (every simulated thread is a Python thread).
_GPU_SHAPE = not _base.SIM or _base.TPB >= 256
T = 16 if _GPU_SHAPE else 4
R = 4 if _GPU_SHAPE else 2
BK = 16 if _GPU_SHAPE else 4
TILE = T * R
PAD = TILE + 1  # a shared-array shape must be a constant, not an expression


_offset = _base.offset  # the strided-view index helper


_GEMM: dict = {}


def _gemm_kernel(dtype: np.dtype):
    """The tiled GEMM for one dtype (shared and local arrays need a compile-time type)."""
    k = _GEMM.get(dtype)
    if k is not None:
        return k
    nbt = from_dtype(dtype)
    NT = T * T

    @cuda.jit
    def gemm(A, B, C, M, N, K, asi, ask, bsk, bsj, nbatch, bshape, abst, bbst, ksplit, kchunk,
             zero):
        # As[kk, m] = op(A)[row0 + m, k0 + kk], Bs[kk, n] = op(B)[k0 + kk, col0 + n]; one
        # column of padding keeps a column-wise store free of shared-memory bank conflicts.
        # z walks (batch, k-slice) pairs: slice s sums k in [s kchunk, (s + 1) kchunk) into
        # its own C[z] (split-K: the host adds the slices)
        As = cuda.shared.array((BK, PAD), nbt)
        Bs = cuda.shared.array((BK, PAD), nbt)
        acc = cuda.local.array((R, R), nbt)
        a_reg = cuda.local.array(R, nbt)
        b_reg = cuda.local.array(R, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * T + tx
        row0 = cuda.blockIdx.y * TILE
        col0 = cuda.blockIdx.x * TILE
        for z in range(cuda.blockIdx.z, nbatch * ksplit, cuda.gridDim.z):
            ao = _offset(z // ksplit, bshape, abst)
            bo = _offset(z // ksplit, bshape, bbst)
            kbeg = (z % ksplit) * kchunk
            kend = min(K, kbeg + kchunk)
            for i in range(R):
                for j in range(R):
                    acc[i, j] = zero
            for k0 in range(kbeg, kend, BK):
                # stage the tiles; neighbouring threads take neighbouring addresses in memory
                for e in range(tid, TILE * BK, NT):
                    if ask == 1:
                        m, kk = e // BK, e % BK
                    else:
                        kk, m = e // TILE, e % TILE
                    r, c = row0 + m, k0 + kk
                    As[kk, m] = A[ao + r * asi + c * ask] if r < M and c < kend else zero
                    if bsj == 1:
                        kk, n = e // TILE, e % TILE
                    else:
                        n, kk = e // BK, e % BK
                    r, c = k0 + kk, col0 + n
                    Bs[kk, n] = B[bo + r * bsk + c * bsj] if r < kend and c < N else zero
                cuda.syncthreads()
                # an outer product per k step: R values of A times R of B into R x R sums
                for kk in range(BK):
                    for i in range(R):
                        a_reg[i] = As[kk, ty + i * T]
                    for j in range(R):
                        b_reg[j] = Bs[kk, tx + j * T]
                    for i in range(R):
                        for j in range(R):
                            acc[i, j] += a_reg[i] * b_reg[j]
                cuda.syncthreads()
            for i in range(R):
                r = row0 + ty + i * T
                for j in range(R):
                    c = col0 + tx + j * T  # neighbouring threads store neighbouring columns
                    if r < M and c < N:
                        C[z * M * N + r * N + c] = acc[i, j]

    _GEMM[dtype] = gemm
    return gemm


def _mat_strides(shape: tuple, trans: bool) -> tuple[int, int, int, int]:
    """(rows, cols, row stride, col stride) of op(x) for a C-contiguous x of ``shape``."""
    r, c = shape[-2], shape[-1]
    return (c, r, 1, c) if trans else (r, c, c, 1)


def matmul(a, b, trans_a: bool = False, trans_b: bool = False):
    """``op(a) @ op(b)`` where op transposes the last two axes when asked; batch dims broadcast."""
    from . import asarray, zeros

    a, b = asarray(a), asarray(b)
    sa, sb = tuple(a.shape), tuple(b.shape)  # plain tuples (the simulator's refuse s[-1])
    if a.ndim == 1 or b.ndim == 1:  # NumPy's vector rules: promote, multiply, drop the axis
        a2 = a.reshape((1, sa[0])) if a.ndim == 1 else a
        b2 = b.reshape((sb[0], 1)) if b.ndim == 1 else b
        out = matmul(a2, b2, trans_a, trans_b)
        so = tuple(out.shape)
        shape = so[:-2] + ((so[-2],) if a.ndim > 1 else ()) + \
            ((so[-1],) if b.ndim > 1 else ())
        return out.reshape(shape)
    if b.ndim == 2 and a.ndim > 2 and not trans_a:
        # (..., m, k) @ (k, n): one (rows, k) @ (k, n) GEMM over every leading row
        out = matmul(_base.rows(a, sa[-1]), b, False, trans_b)
        so = tuple(out.shape)
        return out.reshape(tuple(sa[:-1]) + (so[-1],))
    M, K, asi, ask = _mat_strides(sa, trans_a)
    K2, N, bsk, bsj = _mat_strides(sb, trans_b)
    if K != K2:
        raise ValueError(f"matmul: inner dimensions differ, {K} and {K2} "
                         f"(shapes {sa} and {sb})")
    batch = tuple(np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2])))
    out_shape = batch + (M, N)
    dt = np.result_type(a.dtype, b.dtype)
    if _base.size(out_shape) == 0:
        return _base.empty(out_shape, dt)
    if K == 0:
        return zeros(out_shape, dt)
    if a.dtype != dt:
        a = asarray(a, dt)
    if b.dtype != dt:
        b = asarray(b, dt)
    if dt.name in cublas.FLOATS and cublas.library() is not None:
        return cublas.gemm(a, b, trans_a, trans_b, _base.empty(out_shape, dt))
    # batch strides in elements: one matrix per step, 0 where an operand is broadcast
    ast = tuple(s * sa[-2] * sa[-1] for s in _base.bcast_strides(sa[:-2], batch))
    bst = tuple(s * sb[-2] * sb[-1] for s in _base.bcast_strides(sb[:-2], batch))
    bshape, (ast, bst) = _base.coalesce(batch, [ast, bst])
    nbatch = _base.size(batch)
    tiles = ((N + TILE - 1) // TILE) * ((M + TILE - 1) // TILE)
    ksplit = split_k(tiles * nbatch, K)
    kchunk = -(-K // ksplit // BK) * BK  # a whole number of staged k-tiles per slice
    ksplit = -(-K // kchunk)
    out = _base.empty(((ksplit,) if ksplit > 1 else ()) + out_shape, dt)
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE,
            max(1, min(nbatch * ksplit, _base.MAX_BLOCKS if _base.SIM else 65535)))
    _gemm_kernel(dt)[grid, (T, T)](_base.flat(a), _base.flat(b), _base.flat(out), M, N,
                                         K, asi, ask, bsk, bsj, nbatch, bshape, ast, bst,
                                         ksplit, kchunk, dt.type(0))
    if ksplit > 1:
        from .reduce import sum as rsum

        out = rsum(out, (0,))
    return out


# Split-K: a product with few output tiles and a long inner dimension (a weight gradient
# x^T dZ: (in, out) from thousands of rows) would run on a handful of blocks, one k after
# another; below SPLIT_TILES blocks, the k range is cut into slices of at least
# SPLIT_MIN_K, each on its own blocks, and the slices' partial products are summed.
SPLIT_TILES = 128 if not _base.SIM else 2
SPLIT_MIN_K = 1024 if not _base.SIM else 8


def split_k(blocks: int, K: int) -> int:
    """How many k-slices a GEMM of ``blocks`` output tiles and inner size ``K`` runs as."""
    if blocks >= SPLIT_TILES or K < 2 * SPLIT_MIN_K:
        return 1
    return max(1, min(K // SPLIT_MIN_K, SPLIT_TILES // blocks))


def matmul_at_sum(a, g):
    """``sum over batch of a_i^T g_i`` for a (..., m, k) and g (..., m, n): a (k, n) matrix."""
    from . import asarray

    a, g = asarray(a), asarray(g)
    return matmul(_base.rows(a, a.shape[a.ndim - 1]), _base.rows(g, g.shape[g.ndim - 1]),
                  trans_a=True)
