"""CUDA kernels (@cuda.jit), the same names as graphnet.kernels.cpu.

The GPU backend: arrays are numba device arrays (real, or simulated under
``NUMBA_ENABLE_CUDASIM=1``), kernels are ``@cuda.jit`` launched by thin host functions that
carry the CPU kernels' names and signatures. A CPU kernel without a CUDA twin yet is not
run on NumPy behind the user's back: asking for it raises ``MissingKernel`` (a
NotImplementedError) that names it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .. import export_families
from . import _base
from .elementwise import cast

# every public module here is a node family; its __all__ lists its kernels (pool.py is the
# allocator and cublas.py the vendor's GEMM under matmul.py, not families)
KERNELS = export_families(globals(), skip=("pool", "cublas"))

name = "cuda"
# whether ops may hand kernels reusable output buffers (Ctx.buffer)
reuses_buffers = False
# whether fit keeps its training data here for the whole fit (a host batch is a synchronous
# copy: the step's one wait for the device) and gathers each batch with take_rows
resident_data = True
badge = "cuda.jit"
SIMULATOR = _base.SIM


class MissingKernel(NotImplementedError, AttributeError):
    """A CPU kernel that has no CUDA twin yet (an AttributeError too, so hasattr says False)."""


@cuda.jit
def _fill(out, v):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = v


@cuda.jit
def _nonfinite(x, flag):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        if not math.isfinite(x[i]):
            flag[0] = 1


def empty(shape, dtype):
    """An uninitialized device array."""
    return _base.empty(shape, dtype)


def zeros(shape, dtype):
    """A device array of zeros, filled on the device (nothing crosses the bus)."""
    out = _base.empty(shape, dtype)
    if out.size:
        _fill[_base.blocks(out.size), _base.TPB](_base.flat(out), out.dtype.type(0))
    return out


def asarray(x, dtype=None):
    """A contiguous device array of ``dtype``: host arrays move over, device arrays stay."""
    if _base.is_device(x):
        if not (x.is_c_contiguous() or x.size <= 1):
            raise MissingKernel("a non-contiguous device array: the CUDA backend reads "
                                "C-contiguous arrays only (make a contiguous copy first)")
        if dtype is not None and np.dtype(dtype) != x.dtype:
            return cast(x, dtype)
        return x
    # asarray keeps a 0-d array 0-d (ascontiguousarray made the loss's seed 1-d, so the
    # program uploaded a new one every step)
    host = np.asarray(x, dtype=dtype, order="C")
    return _base.note_range(cuda.to_device(host), host)  # ids checked here, not on the GPU


def to_host(x) -> np.ndarray:
    """A NumPy copy of a device array (host arrays pass through)."""
    return x.copy_to_host() if _base.is_device(x) else np.asarray(x)


def is_finite(x) -> bool:
    """True when no element is NaN or infinite; one pass on the device, one flag back."""
    if not _base.is_device(x):
        return bool(np.isfinite(x).all())
    if x.dtype.kind != "f" or x.size == 0:
        return True
    flag = cuda.to_device(np.zeros(1, np.int32))
    _nonfinite[_base.blocks(x.size), _base.TPB](_base.flat(asarray(x)), flag)
    return not flag.copy_to_host()[0]


def device_name() -> str:
    """The GPU's name, or "simulator"."""
    if SIMULATOR:
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def missing() -> list[str]:
    """Kernel names the CPU backend has and this one does not (yet)."""
    from .. import cpu

    return sorted(n for n in cpu.KERNELS if n not in globals())


def __getattr__(attr: str):
    # A CPU kernel without a twin: say so by name rather than fail deep inside an op.
    from .. import cpu

    if attr in getattr(cpu, "KERNELS", ()):
        raise MissingKernel(f"kernel {attr!r} has no CUDA implementation yet in "
                            f"graphnet.kernels.cuda; compile with device='cpu'")
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["name", "badge", "reuses_buffers", "resident_data", "empty", "zeros", "asarray",
           "to_host", "is_finite", "MissingKernel", "SIMULATOR", "device_name", "missing", *KERNELS]
