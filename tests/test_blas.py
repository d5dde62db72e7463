"""kernels/blas.py: ``gemm`` inside compiled code against NumPy's ``@``, for every layout
it passes to BLAS as flags (row-major, column-major, column blocks of a larger output) and
the ones it hands to ``np.dot`` instead (strided views, complex numbers), and empty
products."""

import numpy as np
import pytest
from numba import njit

from graphnet.kernels import blas
from graphnet.kernels.blas import gemm


@njit(cache=True)
def _call(a, b, c):
    gemm(a, b, c)


def _layouts(x):
    # the same matrix row-major and column-major (a transposed view: Fortran order)
    return [x, np.ascontiguousarray(x.T).T]


def test_every_layout_matches_numpy(rng):
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(5, 9))
    for x in _layouts(a):
        for y in _layouts(b):
            c = np.full((7, 9), np.nan)
            _call(x, y, c)
            np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)
            wide = np.zeros((7, 20))  # a column block: rows 20 apart
            _call(x, y, wide[:, 3:12])
            np.testing.assert_allclose(wide[:, 3:12], a @ b, rtol=1e-12, atol=1e-12)
            assert not wide[:, :3].any() and not wide[:, 12:].any()


def test_float32_through_sgemm(rng):
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(5, 9))
    wide = np.zeros((7, 20), np.float32)
    _call(a.astype(np.float32), np.ascontiguousarray(b.T).T.astype(np.float32, order="K"),
          wide[:, 3:12])
    assert wide.dtype == np.float32
    np.testing.assert_allclose(wide[:, 3:12], a @ b, rtol=1e-5, atol=1e-5)


def test_odd_layouts_other_dtypes_and_empty_products(rng):
    a = rng.normal(size=(4, 3))
    b = rng.normal(size=(3, 2))
    strided = np.zeros((4, 6))
    strided[:, ::2] = a
    c = np.empty((4, 2))
    _call(strided[:, ::2], b, c)  # neither rows nor columns contiguous: np.dot's copy
    np.testing.assert_allclose(c, a @ b)
    az, bz = a.astype(np.complex128), b.astype(np.complex128)
    cz = np.empty((4, 2), np.complex128)
    _call(az, bz, cz)  # a dtype with no binding: np.dot
    np.testing.assert_allclose(cz, az @ bz)
    c = np.ones((3, 4))
    _call(np.empty((3, 0)), np.empty((0, 4)), c)  # k = 0: a sum of nothing
    assert (c == 0).all()
    c = np.empty((1, 1))
    _call(a[:1], b[:, :1], c)
    np.testing.assert_allclose(c, a[:1] @ b[:, :1])


def test_plain_python_form_writes_column_blocks(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    out = np.zeros((3, 5))
    gemm(a, b, out[:, 1:3])  # what kernels run under NUMBA_DISABLE_JIT
    np.testing.assert_allclose(out[:, 1:3], a @ b)


def test_binds_numpy_s_own_openblas_when_it_ships_one():
    path = blas._find()
    assert blas.LIBRARY == path
    if path is not None:
        assert "openblas" in path and blas._SGEMM is not None


@njit(cache=True)
def _call_cols(a, b, c):
    blas.gemm_cols(a, b, c)


def test_gemm_cols_blocks_match_numpy(rng):
    # 8 x 512 x 300 is past SMALL_MNK: blocks of 128 columns, the last one 44 wide; a product
    # within it is one call; row blocks of a larger output and a column view of b
    for m, k, n in [(8, 512, 300), (3, 7, 5), (1, 512, 2100)]:
        a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
        wide = np.zeros((m + 2, n + 6))
        _call_cols(a, b, wide[1:m + 1, 2:n + 2])
        np.testing.assert_allclose(wide[1:m + 1, 2:n + 2], a @ b, rtol=1e-12, atol=1e-10)
        wide[1:m + 1, 2:n + 2] = 0
        assert not wide.any()
        a32, b32 = a.astype(np.float32), np.zeros((k, n + 3), np.float32)
        b32[:, 1:n + 1] = b
        c32 = np.empty((m, n), np.float32)
        _call_cols(a32, b32[:, 1:n + 1], c32)
        np.testing.assert_allclose(c32, a @ b, rtol=1e-4, atol=1e-3)
        # all three C-contiguous: the blocks go to BLAS as pointers into the full rows
        c = np.full((m, n), np.nan)
        _call_cols(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-10)
        c32[:] = np.nan
        _call_cols(a32, np.ascontiguousarray(b, np.float32), c32)
        np.testing.assert_allclose(c32, a @ b, rtol=1e-4, atol=1e-3)


@njit(cache=True)
def _call_rows(a, b, c):
    blas.gemm_rows(a, b, c)


def test_gemm_rows_blocks_match_numpy(rng):
    # (100, 288) x (288, 64) is past SMALL_MNK: blocks of 48 rows, the last one 4 high; a
    # product within it, or with too wide a (k, n) for 16 rows, is one call
    assert blas.small_height(100, 288, 64) == 48 and blas.small_height(5, 288, 64) == 5
    assert blas.small_height(20, 2048, 1024) == 20
    for m, k, n in [(100, 288, 64), (5, 7, 3), (20, 2048, 40)]:
        a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
        wide = np.zeros((m, n + 4))
        _call_rows(a, b, wide[:, 1:n + 1])
        np.testing.assert_allclose(wide[:, 1:n + 1], a @ b, rtol=1e-12, atol=1e-10)
        assert not wide[:, 0].any() and not wide[:, n + 1:].any()
        c = np.full((m, n), np.nan)  # C-contiguous: each block of rows is a pointer
        _call_rows(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-10)
        c32 = np.full((m, n), np.nan, np.float32)
        _call_rows(a.astype(np.float32), b.astype(np.float32), c32)
        np.testing.assert_allclose(c32, a @ b, rtol=1e-4, atol=1e-3)
    c = np.ones((0, 3))
    _call_rows(np.empty((0, 4)), np.empty((4, 3)), c)  # no rows: nothing to do
    _call_cols(np.empty((2, 4)), np.empty((4, 0)), np.empty((2, 0)))
    c = np.ones((2, 3))
    _call_cols(np.empty((2, 0)), np.empty((0, 3)), c)  # k = 0: the product is zeros
    np.testing.assert_array_equal(c, 0)
    with pytest.raises(ValueError, match="do not fit|not aligned"):  # (np.dot without JIT)
        _call_cols(np.empty((2, 4)), np.empty((5, 3)), np.empty((2, 3)))
