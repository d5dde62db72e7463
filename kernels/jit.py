"""The one wrapper every CPU kernel is compiled through: caching, fastmath and parallel policy.

Threading: Numba's parallel loops and the BLAS thread pool must not fight. On the project's
2-core machine a ``parallel=True`` loop over the result of a GEMM took 8.4 ms instead of
0.14 ms under Numba's default OpenMP layer, whose worker threads spin while OpenBLAS's own
threads want the same cores. The ``workqueue`` layer has no spinning workers, so graphnet
selects it at import unless the user chose a layer (NUMBA_THREADING_LAYER);
``benchmarks/bench_core.py`` measures the GEMM-then-loop case to guard the choice.

Small arrays run a serial twin of each parallel kernel: waking threads costs more than the
loop below ``PARALLEL_MIN`` elements.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable

import numba
import numpy as np

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

PARALLEL_MIN = 1 << 16
JIT_DISABLED = bool(numba.config.DISABLE_JIT)


def _renamed(f: Callable, suffix: str) -> Callable:
    # Numba's on-disk cache is keyed by qualified name and signature, not by flags, so the
    # parallel twin gets its own name and cache file.
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix, f.__defaults__,
                           f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    g.__module__ = f.__module__
    return g


def kernel(fn: Callable | None = None, *, parallel: bool = False, fastmath: bool = False):
    """Compile ``fn`` with ``@njit(cache=True)``; with ``parallel=True`` also a prange twin.

    The dispatcher runs the twin when the first argument is large and every array argument
    has its shape (Numba's parallel array expressions do not broadcast).
    """

    def wrap(f: Callable):
        serial = numba.njit(cache=True, fastmath=fastmath, nogil=True)(f)
        if not parallel or JIT_DISABLED:
            return serial
        par = numba.njit(cache=True, fastmath=fastmath, parallel=True)(_renamed(f, "_par"))

        def dispatch(*args):
            # Numba's parallel array expressions do not broadcast: equal shapes only.
            a0 = args[0]
            if a0.size >= PARALLEL_MIN and all(
                    getattr(a, "shape", a0.shape) == a0.shape for a in args[1:]):
                return par(*args)
            out = serial(*args)
            # an array expression over 0-d arrays comes back as a scalar: keep it an array
            return out if isinstance(out, np.ndarray) else np.asarray(out, a0.dtype)

        dispatch.__name__ = f.__name__
        dispatch.__qualname__ = f.__qualname__
        dispatch.__doc__ = f.__doc__
        dispatch.serial = serial
        dispatch.parallel = par
        dispatch.py_func = f
        return dispatch

    return wrap(fn) if fn is not None else wrap
