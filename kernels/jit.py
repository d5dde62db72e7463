"""The one wrapper every CPU kernel is compiled through: caching, fastmath and parallel policy.

Threading: Numba's parallel loops and the BLAS thread pool must not fight. On the project's
2-core machine a ``parallel=True`` loop over the result of a GEMM took 8.4 ms instead of
0.14 ms under Numba's default OpenMP layer, whose worker threads spin while OpenBLAS's own
threads want the same cores. The ``workqueue`` layer has no spinning workers, so graphnet
selects it at import unless the user chose a layer (NUMBA_THREADING_LAYER);
``benchmarks/bench_core.py`` measures the GEMM-then-loop case to guard the choice.

Small arrays run a serial twin of each parallel kernel: waking threads costs more than the
loop below ``PARALLEL_MIN`` elements.

``error_model="numpy"``: a float division by zero gives inf or nan, as in NumPy, instead of
Python's ZeroDivisionError check, which also kept LLVM from vectorizing every loop with a
division in it (Adam's update ran 7x slower; ``check_numerics`` finds the inf).
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import types
import warnings
from collections.abc import Callable

import numba
import numpy as np
from numba.core import caching
from numba.core.cpu import CPUContext
from numba.core.runtime import nrt

# Numba's SSA pass checks that a variable it renames was declared in the function's scope;
# one inlined from an overload (activation.act with a constant code) was declared in the
# overload's, and the check warns though the variable is defined and used as written
warnings.filterwarnings("ignore", category=numba.core.errors.NumbaIRAssumptionWarning,
                        module="numba.core.ssa")


def _package_stamp() -> bytes:
    """One hash over every kernel source file (their names and contents)."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(_KERNELS, "**", "*.py"), recursive=True)):
        h.update(os.path.relpath(path, _KERNELS).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.digest()


# Numba's on-disk cache is valid while the kernel's own file is unchanged, but a kernel
# inlines helpers from other files (activation.act into the LSTM drivers, blas.gemm into
# most): after an edit there, the cache would serve the old helper's code. A kernel's cache
# entry here is also stamped with a hash of the whole package, so any edit recompiles.
_KERNELS = os.path.dirname(os.path.abspath(__file__))
_STAMP = _package_stamp()
_Locator = getattr(caching, "_SourceFileBackedLocatorMixin", None)
if _Locator is not None and not getattr(_Locator.get_source_stamp, "graphnet", False):
    _file_stamp = _Locator.get_source_stamp

    def _stamp(self):
        own = _file_stamp(self)
        path = os.path.abspath(getattr(self, "_py_file", ""))
        return (own, _STAMP) if path.startswith(_KERNELS + os.sep) else own

    _stamp.graphnet = True
    _Locator.get_source_stamp = _stamp


def _light_blas_check() -> None:
    """Numba's ``arraymath``, imported at the first refresh of its registries (the first
    compile), imports all of scipy.linalg (0.2-0.3 s) only to see that
    ``scipy.linalg.cython_blas`` exists. For that one import its check looks for the
    module's file instead (and still checks the integer width); ``np.dot`` imports the
    module itself when it compiles."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    import importlib.machinery
    import importlib.util

    from numba.np import linalg

    full = linalg.ensure_blas
    width = getattr(linalg, "_check_lapack_int_width", lambda: None)
    spec = importlib.util.find_spec("scipy")
    where = list(spec.submodule_search_locations or ()) if spec is not None else []
    linalg_dirs = [os.path.join(d, "linalg") for d in where]

    def found() -> None:
        if importlib.machinery.PathFinder.find_spec("scipy.linalg.cython_blas",
                                                    linalg_dirs) is None:
            raise ImportError("scipy 0.16+ is required for linear algebra")
        width()

    linalg.ensure_blas = found
    try:
        import numba.np.arraymath as arraymath
        arraymath.ensure_blas = full
    finally:
        linalg.ensure_blas = full


def _blas_check_at_first_refresh() -> None:
    """The first fill of the CPU registries (which imports arraymath) runs the light check."""
    fill = CPUContext.load_additional_registries
    if getattr(fill, "graphnet", False):
        return

    def load_additional_registries(self):
        _light_blas_check()
        fill(self)

    load_additional_registries.graphnet = True
    CPUContext.load_additional_registries = load_additional_registries


def _load_without_refresh() -> None:
    """A CPU kernel loaded from Numba's cache needs Numba's runtime (NRT) started, not the
    typing and lowering registries that Numba's cache refreshes first: filling those
    imports some 60 more Numba modules (0.3-0.4 s of a warm first step, a third of it
    NumPy's array implementations). Here a load starts the runtime only; a compile still
    refreshes everything itself (``compiler.compile_extra``)."""
    cache = getattr(caching, "Cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None or getattr(load, "graphnet", False) or not all(
            hasattr(cache, a) for a in ("_load_overload", "_guard_against_spurious_io_errors")):
        return

    def load_overload(self, sig, target_context):
        if not isinstance(target_context, CPUContext):  # CUDA's cache: as Numba does it
            return load(self, sig, target_context)
        nrt.rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    load_overload.graphnet = True
    cache.load_overload = load_overload


_blas_check_at_first_refresh()
_load_without_refresh()

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Measured on the 2-core machine (benchmarks/bench_core.py era, 2026-11): below about two
# million elements a memory-bound loop (Adam's update, exp) ran slower on two threads than
# on one, since the serial loop vectorizes and the wake-up costs tens of microseconds.
PARALLEL_MIN = 1 << 21
JIT_DISABLED = bool(numba.config.DISABLE_JIT)

# ``fastmath=REASSOC`` for a kernel whose loops sum or take maxima over a row: without
# reassociation LLVM keeps a float reduction in order, one element at a time (the attention
# softmax row's max and sum, 9.5 -> 6.3 ms over (128, 128, 128)); nothing else changes
REASSOC = {"reassoc", "nsz"}


def _renamed(f: Callable, suffix: str, globals_: dict | None = None) -> Callable:
    # Numba's on-disk cache is keyed by qualified name and signature, not by flags, so the
    # parallel twin (and each specialized copy) gets its own name and cache file.
    g = types.FunctionType(f.__code__, f.__globals__ if globals_ is None else globals_,
                           f.__name__ + suffix, f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    g.__module__ = f.__module__
    return g


def kernel(fn: Callable | None = None, *, parallel: bool = False,
           fastmath: bool | set = False,
           broadcasts: bool = False, inline: bool = False):
    """Compile ``fn`` with ``@njit(cache=True)``; with ``parallel=True`` also a prange twin.

    The dispatcher runs the twin when the first argument has ``PARALLEL_MIN`` elements or
    more; with ``broadcasts=True`` (array expressions) only when every array argument also
    has that shape, since Numba's parallel array expressions do not broadcast. ``pick``
    chooses by another size. ``inline=True`` inlines a helper that takes arrays into its
    callers (a compiled call that passes arrays increments and decrements their reference
    counts: in a per-element loop that cost more than the arithmetic).
    """

    def wrap(f: Callable):
        serial = numba.njit(cache=True, fastmath=fastmath, nogil=True, error_model="numpy",
                            inline="always" if inline else "never")(f)
        if not parallel or JIT_DISABLED:
            return serial
        par = numba.njit(cache=True, fastmath=fastmath, parallel=True,
                         error_model="numpy")(_renamed(f, "_par"))

        def dispatch(*args):
            a0 = args[0]
            if a0.size >= PARALLEL_MIN and (not broadcasts or all(
                    getattr(a, "shape", a0.shape) == a0.shape for a in args[1:])):
                return par(*args)
            out = serial(*args)
            if broadcasts and not isinstance(out, np.ndarray):
                # an array expression over 0-d arrays comes back as a scalar: keep an array
                return np.asarray(out, a0.dtype)
            return out

        dispatch.__name__ = f.__name__
        dispatch.__qualname__ = f.__qualname__
        dispatch.__doc__ = f.__doc__
        dispatch.serial = serial
        dispatch.parallel = par
        dispatch.py_func = f
        return dispatch

    return wrap(fn) if fn is not None else wrap


def specializing(*names: str, **options) -> Callable:
    """Decorator: a kernel compiled once per combination of values of the module-level
    constants ``names``, chosen by the caller: ``f.of(CODE=3, ...)`` is the kernel with
    those names fixed (Numba freezes globals as constants).

    For drivers whose inner loops branch on a few small integers (which cell, which
    activation): a run-time code keeps every branch's copy of each loop in one function,
    and Numba and LLVM compiled them all (the LSTM's driver pair, with every sigmoid and
    tanh copy at each gate, took 13.7 s cold); a fixed one compiles only its own.
    ``options`` are ``kernel``'s."""

    def wrap(f: Callable):
        made: dict = {}

        def of(**consts) -> Callable:
            key = tuple(map(consts.__getitem__, names))  # called per op call: kept lean
            k = made.get(key)
            if k is None:
                ints = tuple(int(v) for v in key)
                k = made.get(ints)
                if k is None:
                    g = dict(f.__globals__)
                    g.update(zip(names, ints))
                    suffix = "_" + "_".join(f"{n.lower()}{v}" for n, v in zip(names, ints))
                    k = made[ints] = kernel(_renamed(f, suffix, g), **options)
                made[key] = k
            return k

        return types.SimpleNamespace(of=of, py_func=f)

    return wrap


def pick(k: Callable, n: int) -> Callable:
    """The parallel twin of kernel ``k`` for work of ``n`` elements or more, else the serial
    one (plain Python under NUMBA_DISABLE_JIT)."""
    if n >= PARALLEL_MIN and hasattr(k, "parallel"):
        return k.parallel
    return getattr(k, "serial", k)


# -- calling kernels cheaply: a small model's step is mostly the Python around its calls ---

_SCALARS: dict = {}  # (dtype, value) and (dtype, tuple of values) -> their casts


def scalar(dtype: np.dtype, value: float):
    """``value`` as a NumPy scalar of ``dtype`` (a Python float would promote a float32
    kernel to float64), remembered: constructing one costs about as much as a kernel call's
    dispatch."""
    key = (dtype, value)
    s = _SCALARS.get(key)
    if s is None:
        if len(_SCALARS) > 1024:  # a schedule's learning rates: keep the memo small
            _SCALARS.clear()
        s = _SCALARS[key] = dtype.type(value)
    return s


def scalars(dtype: np.dtype, values: tuple) -> tuple:
    """``scalar`` over a tuple of settings at once, remembered as one. Flags become 0 or 1
    of the dtype too (a kernel's ``if flag:`` reads them alike): ``True == 1.0``, so two
    tuples equal in value must be interchangeable in the memo."""
    key = (dtype, values)
    s = _SCALARS.get(key)
    if s is None:
        if len(_SCALARS) > 1024:
            _SCALARS.clear()
        s = _SCALARS[key] = tuple(map(dtype.type, values))
    return s


def rows(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` as a C-contiguous 2-D array of rows of length ``n`` (itself when it is one)."""
    if a.ndim == 2 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a).reshape(-1, n)


def flat(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous 1-D array (itself when it is one)."""
    if a.ndim == 1 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a).reshape(-1)
