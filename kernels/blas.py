"""``gemm(a, b, c)``: ``c = a @ b`` inside compiled kernels, through NumPy's own OpenBLAS.

Numba's ``np.dot`` calls the BLAS that SciPy ships (OpenBLAS 0.3.30 here); NumPy wheels ship
a newer one (0.3.31), whose sgemm ran the LSTM step's (32, 256) x (256, 1024) product at
52-57 GFLOP/s on one core against 36-43, and NumPy's ``@`` (``matmul.py``) uses it anyway:
one library means one thread pool (two pools' spinning workers slowed each other, see
docs/architecture.md). The library is found next to NumPy and its ``cblas_?gemm`` bound by
symbol name (``types.ExternalFunction``, resolved when a kernel is loaded, so the kernels
stay cacheable). Where it is not found (another NumPy build), or for other dtypes and
layouts, ``gemm`` is ``np.dot``.

Layouts: ``a`` and ``b`` may be row-major or column-major 2-D views (a transposed view is
passed as a transpose flag, not copied), with any leading dimension; ``c`` must have
contiguous rows (a column block of a larger matrix is fine).
"""

from __future__ import annotations

import glob
import os

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["gemm", "gemm_cols", "gemm_rows", "small_width", "small_height", "SMALL_MNK",
           "LIBRARY"]


def _find() -> str | None:
    """The OpenBLAS that NumPy's wheel ships (numpy.libs/libscipy_openblas64_*.so)."""
    here = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    found = sorted(glob.glob(os.path.join(here, "libscipy_openblas64_*.so*")))
    return os.path.abspath(found[0]) if found else None


def _bind() -> tuple:
    """(library path, sgemm, dgemm) or (None, None, None)."""
    path = _find()
    if path is None:
        return None, None, None
    try:
        import llvmlite.binding as llvm

        llvm.load_library_permanently(path)
    except (OSError, RuntimeError):
        return None, None, None
    i64, i32, vp = types.int64, types.int32, types.voidptr
    fns = []
    for name, t in (("scipy_cblas_sgemm64_", types.float32), ("scipy_cblas_dgemm64_",
                                                               types.float64)):
        # cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        fns.append(types.ExternalFunction(name, types.void(
            i32, i32, i32, i64, i64, i64, t, vp, i64, vp, i64, t, vp, i64)))
    return path, fns[0], fns[1]


LIBRARY, _SGEMM, _DGEMM = _bind()
_ROW, _NOTRANS, _TRANS = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans


@intrinsic
def _data(typingctx, a):
    # the address of an array's first element, as a void* for the C call
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.bitcast(ary.data, cgutils.voidptr_t)

    return types.voidptr(a), codegen


@intrinsic
def _at(typingctx, a, offset):
    # the address of element ``offset`` of an array's flat data: a block of a C-contiguous
    # operand, passed to BLAS without typing a slice
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.bitcast(builder.gep(ary.data, [args[1]]), cgutils.voidptr_t)

    return types.voidptr(a, offset), codegen


@register_jitable
def _ld(n):
    # a leading dimension: BLAS refuses 0 (a builtin max compiled its own overload, 0.2 s)
    return n if n > 1 else 1


def _binding(*arrays) -> tuple | None:
    """(cblas gemm, 1, 0) of the arrays' dtype when all are 2-D arrays of one dtype with a
    binding, else None."""
    dt = getattr(arrays[0], "dtype", None)
    fn = {types.float32: _SGEMM, types.float64: _DGEMM}.get(dt)
    if fn is None or any(getattr(x, "dtype", None) != dt or getattr(x, "ndim", 0) != 2
                         for x in arrays):
        return None
    return (fn, np.float32(1), np.float32(0)) if dt == types.float32 else (fn, 1.0, 0.0)


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c[...] = a @ b`` (plain NumPy outside compiled code)."""
    if c.flags.c_contiguous:
        np.dot(a, b, c)
    else:
        c[...] = a @ b


@register_jitable
def _assign(c, v):
    # elementwise: an array assignment compiles Numba's shape-error message (seconds)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            c[i, j] = v[i, j]


@register_jitable
def _same(a):
    return a


@register_jitable
def _contiguous(a):
    return np.ascontiguousarray(a)


@overload(gemm, jit_options={"error_model": "numpy"})
def _gemm_typed(a, b, c):
    bound = _binding(a, b, c)
    if bound is None:
        # no binding for this dtype: np.dot (Numba's writes only into C-contiguous arrays
        # and reads C or F ones; an "A" view is copied first)
        ca = _contiguous if getattr(a, "layout", "") == "A" else _same
        cb = _contiguous if getattr(b, "layout", "") == "A" else _same
        if getattr(c, "layout", "") == "C":
            return lambda a, b, c: np.dot(ca(a), cb(b), c)
        return lambda a, b, c: _assign(c, np.dot(ca(a), cb(b)))
    fn, one, zero = bound
    if a.layout in "CF" and b.layout in "CF" and c.layout == "C":
        # the layouts are the flags (a column-major operand is a transposed row-major one),
        # known now: a short body (every kernel that calls gemm compiles it)
        ta = _NOTRANS if a.layout == "C" else _TRANS
        tb = _NOTRANS if b.layout == "C" else _TRANS

        def fixed(a, b, c):
            m, k = a.shape
            n = b.shape[1]
            if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
                raise ValueError("gemm: shapes do not fit (m, k) (k, n) (m, n)")
            lda = _ld(k if ta == _NOTRANS else m)
            ldb = _ld(n if tb == _NOTRANS else k)
            fn(_ROW, ta, tb, m, n, k, one, _data(a), lda, _data(b), ldb, zero, _data(c),
               _ld(n))

        return fixed

    def strided(a, b, c):
        # some operand a view of unknown layout: its strides decide, at run time
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
            raise ValueError("gemm: shapes do not fit (m, k) (k, n) (m, n)")
        if m == 0 or n == 0:
            return
        size = a.itemsize
        # each operand as a row-major call sees it: rows contiguous -> as is (leading
        # dimension = row stride), columns contiguous -> transposed (column stride)
        a0, a1, b0, b1 = (a.strides[0] // size, a.strides[1] // size, b.strides[0] // size,
                          b.strides[1] // size)
        ta, lda, tb, ldb = _NOTRANS, a0 if m > 1 else k, _NOTRANS, b0 if k > 1 else n
        ok = True
        if not (k == 1 or a1 == 1):
            ta, lda, ok = _TRANS, a1 if k > 1 else m, a0 == 1 or m == 1
        if not (n == 1 or b1 == 1):
            tb, ldb, ok = _TRANS, b1 if n > 1 else k, ok and (b0 == 1 or k == 1)
        ldc = c.strides[0] // size if m > 1 else n
        ok = ok and (n == 1 or c.strides[1] == size) and ldc >= n
        ok = ok and lda >= (k if ta == _NOTRANS else m) and ldb >= (n if tb == _NOTRANS else k)
        if ok and k > 0:
            fn(_ROW, ta, tb, m, n, k, one, _data(a), max(lda, 1), _data(b), max(ldb, 1),
               zero, _data(c), max(ldc, 1))
            return
        # k = 0, or a layout BLAS cannot take as flags (a view strided both ways; rare):
        # plain loops, which compile in a fraction of np.dot's time
        for i in range(m):
            for j in range(n):
                acc = zero
                for p in range(k):
                    acc += a[i, p] * b[p, j]
                c[i, j] = acc

    return strided


# OpenBLAS's small-matrix kernels (its SkylakeX kernels, which this machine's Zen 4 runs)
# take a product of m n k <= 10^6 without packing the operands or waking its threads. On one
# core, per 1024 columns: (16, 256) x (256, w) 74 us at w = 64 or 128 against 127 as one
# call, (16, 512) x (512, 64) 325 against 783; but at w = 16 they ran 1.5-2.5x slower than
# one call. conv1's (32, 3136) x (3136, 9) took 19 us, at 3600 rows (past the limit) 57.
# A build without these kernels runs the blocks through its ordinary path.
SMALL_MNK = 1_000_000


@register_jitable
def small_width(m: int, k: int, n: int) -> int:
    """Columns per block of ``gemm_cols`` for an (m, k) x (k, n) product: 128, 64 or 32, the
    widest with m k w <= ``SMALL_MNK``; n where the whole product is that small or no such
    width is."""
    if m * k * n > SMALL_MNK:
        for w in (128, 64, 32):
            if m * k * w <= SMALL_MNK:
                return w
    return n


@register_jitable
def _cols_any(a, b, c):
    n = b.shape[1]
    w = max(small_width(a.shape[0], a.shape[1], n), 1)
    for s in range(0, n, w):
        e = min(s + w, n)
        gemm(a, b[:, s:e], c[:, s:e])


def gemm_cols(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c = a b`` by blocks of ``small_width`` columns, for OpenBLAS's small-matrix kernels
    (on the calling thread)."""
    _cols_any(a, b, c)


@register_jitable
def small_height(m: int, k: int, n: int) -> int:
    """Rows per block of ``gemm_rows`` for an (m, k) x (k, n) product: the most, in
    multiples of 16, with h k n <= ``SMALL_MNK``; m where the whole product is that small
    or not even 16 rows are."""
    h = SMALL_MNK // max(k * n, 1) // 16 * 16
    return m if m * k * n <= SMALL_MNK or h < 16 else h


@register_jitable
def _rows_any(a, b, c):
    m = a.shape[0]
    h = max(small_height(m, a.shape[1], b.shape[1]), 1)
    for s in range(0, m, h):
        e = min(s + h, m)
        gemm(a[s:e], b, c[s:e])


def gemm_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c = a b`` by blocks of ``small_height`` rows, for OpenBLAS's small-matrix kernels
    (on the calling thread): the cnn workload's second conv, (6272, 288) x (288, 64) on one
    core, took 2.37 ms in blocks of 48 rows, 3.06 as one call, 3.45 in blocks of 64 (past
    the limit)."""
    _rows_any(a, b, c)


# C-contiguous operands (the recurrent steps' and the conv's): each block is a pointer and
# the full row length, one BLAS call with no slice typed. The sliced form compiled in 3.2 s
# on the Zen 3 machine (typing the views, min and max, gemm's strided body), this in 0.3;
# every recurrent driver and the conv forward compiled it on a cold cache.

def _blocks(a, b, c, fallback, rows: bool):
    """The compiled body of ``gemm_rows`` (``rows``) or ``gemm_cols`` for these types."""
    bound = _binding(a, b, c)
    if bound is None or any(x.layout != "C" for x in (a, b, c)):
        return lambda a, b, c: fallback(a, b, c)
    fn, one, zero = bound
    width = small_height if rows else small_width  # (one typed, not both)

    def direct(a, b, c):
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
            raise ValueError("gemm: shapes do not fit (m, k) (k, n) (m, n)")
        size = m if rows else n
        w = width(m, k, n)
        s = 0
        while s < size:
            e = s + w if s + w < size else size
            # rows s:e start at element s k of a and s n of c; columns s:e at element s of
            # b and c, whose rows keep their full length n as the leading dimension
            mb, nb = (e - s, n) if rows else (m, e - s)
            oa, ob, oc = (s * k, 0, s * n) if rows else (0, s, s)
            fn(_ROW, _NOTRANS, _NOTRANS, mb, nb, k, one, _at(a, oa), _ld(k), _at(b, ob),
               _ld(n), zero, _at(c, oc), _ld(n))
            s = e

    return direct


@overload(gemm_cols, jit_options={"error_model": "numpy"})
def _gemm_cols_typed(a, b, c):
    return _blocks(a, b, c, _cols_any, rows=False)


@overload(gemm_rows, jit_options={"error_model": "numpy"})
def _gemm_rows_typed(a, b, c):
    return _blocks(a, b, c, _rows_any, rows=True)
