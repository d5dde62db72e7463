"""Matrix products through BLAS: ``a @ b`` with batch dimensions, and its two backward GEMMs.

NumPy's matmul, not ``np.dot`` inside @njit: NumPy's matmul hands transposed views (``b.T``
in ``g @ b.T``) to BLAS as flags instead of copies, broadcasts leading batch dimensions, and
costs no Numba compilation per dtype and rank, which dominates test time. It is NumPy's own
OpenBLAS, the library the compiled kernels call too (``kernels/blas.py``), so a model that
mixes matmul with dense layers keeps one BLAS thread pool. A 2-D right
operand (Dense on sequences, projections in attention) takes the fast path: the left
operand's leading dimensions fold into the rows of one GEMM.
"""

import numpy as np

__all__ = ["matmul", "matmul_at_sum"]


def _t(x: np.ndarray) -> np.ndarray:
    # the transpose of the last two axes: a strided view BLAS reads directly
    return np.swapaxes(x, -1, -2)


def matmul(a: np.ndarray, b: np.ndarray, trans_a: bool = False,
           trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` where op transposes the last two axes when asked; batch dims broadcast."""
    if b.ndim == 2 and a.ndim > 2 and not trans_a:
        # (..., m, k) @ (k, n): one (rows, k) @ (k, n) GEMM over every leading row
        rows = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
        out = np.matmul(rows, b.T if trans_b else b)
        return out.reshape(a.shape[:-1] + (out.shape[-1],))
    return np.matmul(_t(a) if trans_a else a, _t(b) if trans_b else b)


def matmul_at_sum(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``sum over batch of a_i^T g_i`` for a (..., m, k) and g (..., m, n): a (k, n) matrix.

    The gradient of a 2-D right operand shared by every batch entry, as one GEMM:
    ``a.reshape(-1, k).T @ g.reshape(-1, n)``.
    """
    a2 = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
    g2 = np.ascontiguousarray(g).reshape(-1, g.shape[-1])
    return np.matmul(a2.T, g2)
