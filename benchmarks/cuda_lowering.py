"""Type-check and lower every CUDA kernel to LLVM IR without a GPU (no simulator).

The simulator runs kernels as Python, so it cannot catch what only Numba's CUDA compiler
sees: typing errors, unsupported functions, float32 code silently promoted to float64. This
script drives every family's parity tests (``tests/cuda/test_*.py``) against stand-in device
arrays (shape and dtype only), intercepts every launch, and compiles the kernel for the
launch's argument types with ``numba.cuda.compiler.compile_cuda`` (typing + lowering; no
NVVM, no driver needed).

    python benchmarks/cuda_lowering.py        # exit status 1 if any kernel fails to lower

It also lists float32 launches whose IR computes in double precision (a performance bug
on GPUs). Used by tests/cuda/test_lowering.py.
"""

from __future__ import annotations

import os
import sys
import traceback

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from types import SimpleNamespace as types_ns  # noqa: E402

import numpy as np  # noqa: E402
from numba import cuda, from_dtype, typeof, types  # noqa: E402
from numba.cuda import dispatcher as _disp  # noqa: E402
from numba.cuda.compiler import compile_cuda  # noqa: E402


class StandIn:
    """A device array with a shape and a dtype and no memory."""

    def __init__(self, shape, dtype):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(self.shape)) if self.shape else 1
        self.ndim = len(self.shape)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": self.dtype.str,
                                         "data": (0, False), "version": 3}

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1]))
            shape = tuple(self.size // max(known, 1) if d == -1 else d for d in shape)
        return StandIn(shape, self.dtype)

    def __getitem__(self, key):
        # a view's shape by NumPy's own indexing rules on a one-byte stand-in
        return StandIn(np.empty(self.shape, np.int8)[key].shape, self.dtype)

    def is_c_contiguous(self):
        return True

    def copy_to_host(self):
        return np.zeros(self.shape, self.dtype)

    def copy_to_device(self, a):
        pass


def _numba_type(a):
    if isinstance(a, StandIn):
        return types.Array(from_dtype(a.dtype), max(a.ndim, 1) if a.ndim else 0, "C")
    if isinstance(a, bool):
        return types.boolean
    if isinstance(a, int):
        return types.int64
    return typeof(a)


COMPILED: dict = {}
FAILED: list = []
DOUBLE: set = set()


def _call(self, args, launch_config):
    tys = tuple(_numba_type(a) for a in args)
    key = (self.py_func, tys)
    if key in COMPILED:
        return
    name = f"{self.py_func.__module__}.{self.py_func.__qualname__}{tys}"
    try:
        cres = compile_cuda(self.py_func, types.void, tys, cc=(8, 0))
        ir = cres.library.get_llvm_str()
        COMPILED[key] = True
        f32 = [t for t in tys if isinstance(t, types.Array) and t.dtype == types.float32]
        f64 = [t for t in tys if isinstance(t, types.Array) and t.dtype == types.float64]
        if f32 and not f64 and any(op in ir for op in ("fadd double", "fmul double",
                                                       "fdiv double", "fsub double")):
            DOUBLE.add(name)
    except Exception as e:
        COMPILED[key] = False
        FAILED.append((name, f"{type(e).__name__}: {str(e).splitlines()[0:6]}"))


SKIP_MODULES = ("test_lowering", "test_program")


def _drive(fn, fixtures: dict) -> None:
    """Call a test once per parametrize combination with stand-in fixtures; its launches are
    intercepted and compiled, and anything else it does with stand-in values may fail."""
    import inspect

    params = inspect.signature(fn).parameters
    combos = [{}]
    for m in getattr(fn, "pytestmark", []):
        if m.name == "parametrize":
            argnames = [a.strip() for a in m.args[0].split(",")] if isinstance(
                m.args[0], str) else list(m.args[0])
            values = [v if len(argnames) > 1 else (v,) for v in m.args[1]]
            combos = [{**c, **dict(zip(argnames, v))} for c in combos for v in values]
    for combo in combos:
        kw = {**fixtures, **combo}
        if any(k not in kw for k in params):
            continue  # a fixture this driver does not have (monkeypatch, tmp_path...)
        try:
            fn(**{k: kw[k] for k in params})
        except BaseException as e:  # noqa: BLE001 - values are stand-ins; only compiles count
            if isinstance(e, KeyboardInterrupt):
                raise
            if os.environ.get("LOWERING_VERBOSE"):
                traceback.print_exc()


def main() -> int:
    _disp.CUDADispatcher.call = _call
    # device functions compile for "the current device": name one (an Ampere-class target)
    _disp.get_current_device = lambda: types_ns(compute_capability=(8, 0))
    cuda.device_array = lambda shape, dtype=np.float64, **kw: StandIn(
        (shape,) if np.isscalar(shape) else shape, dtype)
    cuda.to_device = lambda a, **kw: StandIn(np.shape(a), np.asarray(a).dtype)
    cuda.is_cuda_array = lambda a: isinstance(a, StandIn)
    np.testing.assert_allclose = np.testing.assert_array_equal = lambda *a, **k: None

    import importlib
    import pkgutil

    import graphnet.kernels.cpu as C
    import graphnet.kernels.cuda as K
    import tests.cuda as suite
    from tests.cuda import parity

    assert not K.SIMULATOR, "run without NUMBA_ENABLE_CUDASIM"
    parity._same = lambda *a, **k: None
    rng = np.random.default_rng(0)
    # every family's parity tests (the program tests need real arrays; this one is itself)
    names = sorted(m.name for m in pkgutil.iter_modules(suite.__path__)
                   if m.name.startswith("test_") and m.name not in SKIP_MODULES)
    for mod in names:
        T = importlib.import_module(f"tests.cuda.{mod}")
        T._same = parity._same
        for name, fn in vars(T).items():
            if name.startswith("test_") and callable(fn):
                _drive(fn, {"K": K, "C": C, "r": rng, "rng": rng})
    ok = sum(1 for v in COMPILED.values() if v)
    print(f"lowered {ok} kernel specializations; {len(FAILED)} failed")
    for n, e in FAILED:
        print("FAILED", n, "\n   ", e)
    for n in sorted(DOUBLE):
        print("float64 arithmetic in a float32 launch:", n)
    return 1 if FAILED or ok == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
