"""Shape kernels: reshape, transpose, concatenate/split, basic slicing and its scatter.

These move memory and compute nothing, so they are NumPy calls rather than @njit loops:
NumPy's strided copy is already one pass over the output, and Numba cannot take an arbitrary
index tuple (ints, slices, steps) as one argument type. Every result is C-contiguous, so the
@njit kernels downstream compile one layout per dtype and rank.
"""

import numpy as np

__all__ = ["reshape", "transpose", "concatenate", "split", "getitem", "getitem_grad"]


def _c(a) -> np.ndarray:
    # C order without copying what already is; unlike np.ascontiguousarray, 0-d stays 0-d
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy()


def reshape(x: np.ndarray, shape: tuple) -> np.ndarray:
    """``x`` viewed with ``shape`` (-1 allowed); free when ``x`` is contiguous."""
    return _c(x).reshape(shape)


def transpose(x: np.ndarray, axes: tuple) -> np.ndarray:
    """``x`` with its axes permuted, copied to C order."""
    return _c(np.transpose(x, axes))


def concatenate(xs, axis: int) -> np.ndarray:
    """The arrays joined along ``axis``."""
    return np.concatenate(xs, axis=axis)


def split(g: np.ndarray, sizes: tuple, axis: int) -> list:
    """``g`` cut along ``axis`` into pieces of ``sizes`` (the backward of concatenate)."""
    cuts = np.cumsum(sizes)[:-1]
    return [_c(p) for p in np.split(g, cuts, axis=axis)]


def getitem(x: np.ndarray, key: tuple) -> np.ndarray:
    """``x[key]`` for a tuple of ints and slices, copied to C order."""
    return _c(x[key])


def getitem_grad(g: np.ndarray, shape: tuple, key: tuple) -> np.ndarray:
    """The backward of ``x[key]``: zeros of ``shape`` with ``g`` written at ``key``.

    Basic indexing never selects an element twice, so a write (no accumulation) is exact.
    """
    out = np.zeros(shape, g.dtype)
    out[key] = g
    return out
