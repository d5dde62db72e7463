"""Every CUDA kernel the simulator ran, compiled for a real GPU with the types it was given.

The simulator runs a kernel as Python: it checks the arithmetic, not that Numba can type and
compile the kernel for a device. With ``GRAPHNET_RECORD_KERNELS=DIR`` the CUDA tests
(tests/cuda/conftest.py) record each simulated launch's kernel and argument types into DIR;

    python -m tests.cuda.kernel_types DIR

then compiles every (kernel, types) pair to PTX for sm_90 with Numba's real CUDA compiler
(NVVM; no GPU needed, the ``nvidia-cuda-nvcc-cu12`` and ``nvidia-cuda-nvrtc-cu12`` wheels
suffice) and exits 1 naming each that does not compile. ``make ptx`` runs both.
"""

from __future__ import annotations

import glob
import importlib
import os
import pickle
import sys
import time
import types as _pytypes

CC = (9, 0)  # the H100 / H200 this project's GPU sessions are lent


# -- recording (in the simulator's process) ----------------------------------------------

def _numba_type(a):
    """The type Numba's CUDA dispatcher would give argument ``a`` (a simulated array types
    as the device array would: writable, its layout)."""
    from numba import typeof, types
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    if isinstance(a, FakeCUDAArray):
        a = a._ary
    if isinstance(a, tuple):
        return types.BaseTuple.from_types([_numba_type(x) for x in a])
    t = typeof(a)
    if isinstance(t, types.Array):
        t = types.Array(t.dtype, t.ndim, t.layout)
    return t


def _where(fn) -> tuple:
    """How the compiling process finds kernel ``fn``: ``(module, qualname, how)`` with how
    None for a module-level kernel, ``("attr", name)`` for one a module-level launcher holds
    as ``.kernel``, ``("factory", name)`` for one a factory of a dtype makes."""
    mod, qual = fn.__module__, fn.__qualname__
    if "<locals>" not in qual:
        return mod, qual, None
    package = mod.rpartition(".")[0]
    for name in sorted(sys.modules):  # the launcher may live in a sibling module
        if name.startswith(package):
            for attr, g in list(vars(sys.modules[name]).items()):
                k = getattr(g, "kernel", None)
                if k is not None and getattr(k, "fn", None) is fn:
                    return name, qual, ("attr", attr)
    return mod, qual, ("factory", qual.split(".")[0])


def install_recorder(out_dir: str) -> None:
    """Record every simulated kernel launch from now on; written to ``out_dir`` at exit."""
    import atexit

    from numba.cuda.simulator import kernel as sim

    seen: dict = {}
    where: dict = {}  # id(fn) -> (fn, _where(fn))
    call = sim.FakeCUDAKernel.__call__

    def recorded(self, *args):
        if not (self._device or sim._kernel_context):
            w = where.get(id(self.fn))
            if w is None or w[0] is not self.fn:
                w = where[id(self.fn)] = (self.fn, _where(self.fn))
            seen.setdefault(w[1], set()).add(tuple(_numba_type(a) for a in args))
        return call(self, *args)

    sim.FakeCUDAKernel.__call__ = recorded

    def write() -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"{os.getpid()}.pkl"), "wb") as f:
            pickle.dump(seen, f)

    atexit.register(write)


# -- compiling (in a process with the real numba.cuda) -----------------------------------

def _kernel(mod: str, qual: str, how, sig: tuple):
    """The Python function of the recorded kernel, found again in this process."""
    from numba import types

    m = importlib.import_module(mod)
    if how is None:
        obj = m
        for part in qual.split("."):
            obj = getattr(obj, part)
        return obj.py_func
    kind, name = how
    if kind == "attr":
        return getattr(m, name).kernel.py_func
    # a factory of the dtype of the kernel's first array argument
    import numpy as np

    dt = next(t.dtype for t in sig if isinstance(t, types.Array))
    made = getattr(m, name)(np.dtype(dt.name))
    for k in made if isinstance(made, (tuple, list)) else (made,):
        if k.py_func.__qualname__ == qual:
            return k.py_func
    raise LookupError(f"{name}({dt}) makes no kernel {qual}")


def compile_all(record_dir: str) -> int:
    """Compile every recorded (kernel, types) pair for ``CC``; the number that fail."""
    import numba.cuda.dispatcher as dispatcher

    # Device functions are compiled for the current device's compute capability; with no
    # device here, say which one (compile_ptx itself takes cc)
    dispatcher.get_current_device = lambda: _pytypes.SimpleNamespace(compute_capability=CC)
    from numba import cuda

    if cuda.to_device.__module__.startswith("numba.cuda.simulator"):
        raise SystemExit("run without NUMBA_ENABLE_CUDASIM: this compiles for a real GPU")
    sigs: dict = {}
    files = glob.glob(os.path.join(record_dir, "*.pkl"))
    if not files:
        raise SystemExit(f"no recorded launches in {record_dir}: run the CUDA tests with "
                         "GRAPHNET_RECORD_KERNELS set first (make ptx)")
    for path in files:
        with open(path, "rb") as f:
            for key, ss in pickle.load(f).items():
                sigs.setdefault(key, set()).update(ss)
    t0, ok, failed = time.perf_counter(), 0, []
    for (mod, qual, how), ss in sorted(sigs.items(), key=lambda kv: kv[0][:2]):
        for sig in sorted(ss, key=str):
            try:
                cuda.compile_ptx(_kernel(mod, qual, how, sig), sig, cc=CC)
                ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
                first = (str(e).strip().splitlines() or [""])[0][:400]
                failed.append(f"{mod}.{qual}{tuple(map(str, sig))}\n    {type(e).__name__}: "
                              f"{first}")
    for f in failed:
        print("does not compile:", f)
    print(f"{ok} of {ok + len(failed)} kernel signatures ({len(sigs)} kernels) compile for "
          f"sm_{CC[0]}{CC[1]} ({time.perf_counter() - t0:.0f} s)")
    return len(failed)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(1 if compile_all(sys.argv[1]) else 0)
