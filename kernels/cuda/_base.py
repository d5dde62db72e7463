"""Launch helpers shared by the CUDA kernel families: grid sizes, device arrays, strides.

Kernels use grid-stride loops, so any grid size is correct; the grid is capped so that a
launch never asks for more blocks than the data needs. Under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) every CUDA thread is a Python thread, so blocks are small and
grids tiny there: the same code runs, only the launch shape differs.
"""

from __future__ import annotations

import math
import os
import types

import numpy as np
from numba import cuda

try:  # numba-cuda (the out-of-tree target) keeps its own config
    from numba.cuda.core import config as _config
except ImportError:  # pragma: no cover - numba's built-in numba.cuda
    from numba.core import config as _config

# Ask the numba.cuda module this process actually loaded, not the variable: numba reads
# NUMBA_ENABLE_CUDASIM once, at its first import of numba.cuda, which may be long before
# this module is imported (and the variable may have changed since).
SIM = cuda.to_device.__module__.startswith("numba.cuda.simulator")
if not SIM:  # the caching allocator (kernels/cuda/pool.py); before any context exists
    from .pool import install as _install_pool

    POOL = _install_pool()
else:
    POOL = False
# Small graphs launch small grids by design (a bias of 10 elements); Numba would warn on each.
_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
# Threads per block for 1-D launches and the grid cap (grid-stride loops cover the rest).
# GRAPHNET_CUDA_TPB=256 makes the simulator run the GPU's launch shapes (slowly).
TPB = int(os.environ.get("GRAPHNET_CUDA_TPB", 32 if SIM else 256))
MAX_BLOCKS = 2 if SIM else 65535


@cuda.jit(device=True)
def offset(i, shape, strides):
    """The memory offset of flat index ``i`` (row-major over ``shape``) in a strided view."""
    o = 0
    for d in range(len(shape) - 1, -1, -1):
        q = i % shape[d]
        i //= shape[d]
        o += q * strides[d]
    return o


@cuda.jit(device=True)
def nhwc(i, H, W, C):
    """``(n, h, w, c)`` of flat index ``i`` in a C-contiguous ``(N, H, W, C)`` array."""
    c = i % C
    t = i // C
    w = t % W
    t //= W
    return t // H, t % H, w, c


def blocks(n: int, tpb: int = TPB) -> int:
    """Blocks for ``n`` work items at ``tpb`` threads each (at least one)."""
    return max(1, min(MAX_BLOCKS, (n + tpb - 1) // tpb))


def is_device(x) -> bool:
    """True for a numba device array (real or simulated)."""
    if SIM:
        return type(x).__name__ == "FakeCUDAArray"
    return cuda.is_cuda_array(x)


def empty(shape, dtype):
    """An uninitialized device array."""
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return cuda.device_array(shape, np.dtype(dtype))


def flat(x):
    """A contiguous device array seen as 1-D (0-d arrays become length 1)."""
    return x.reshape(max(1, int(np.prod(x.shape))))


def size(shape: tuple) -> int:
    return int(math.prod(shape))


def bcast_strides(shape: tuple, out_shape: tuple) -> tuple:
    """Element strides that read a C-contiguous ``shape`` broadcast to ``out_shape``."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s if d != 1 else 0)  # a broadcast axis re-reads the same element
        s *= d
    return tuple(reversed(strides))


def coalesce(shape: tuple, strides: list[tuple]) -> tuple[tuple, list[tuple]]:
    """Merge adjacent axes that every operand walks contiguously: fewer index divisions.

    Axes i and i+1 merge when, for each operand, stride[i] == stride[i+1] * shape[i+1];
    size-1 axes vanish. The result has at least one axis.
    """
    dims = [(d, [st[i] for st in strides]) for i, d in enumerate(shape) if d != 1]
    out: list = []
    for d, st in dims:
        if out and all(p == q * d for p, q in zip(out[-1][1], st)):
            out[-1] = (out[-1][0] * d, st)
        else:
            out.append((d, st))
    if not out:
        out = [(1, [0] * len(strides))]
    new_shape = tuple(d for d, _ in out)
    return new_shape, [tuple(st[k] for _, st in out) for k in range(len(strides))]


def rows(x, n: int):
    """A contiguous device array seen as 2-D ``(size // n, n)``."""
    return x.reshape((x.size // n if n else 0, n))


def twin(cpu_fn, **rebind):
    """A CUDA device function compiled from a CPU scalar kernel's own Python source.

    The CPU family's scalar math (activations, losses, the dropout hash) is shared, not
    copied: the same function body, with globals that name other CPU kernels rebound to
    their device twins (``rebind``), so both backends compute the same formula.
    """
    f = getattr(cpu_fn, "py_func", cpu_fn)
    g = types.FunctionType(f.__code__, {**f.__globals__, **rebind}, f.__name__, f.__defaults__,
                           f.__closure__)
    g.__qualname__ = f.__qualname__ + "_cuda"
    g.__doc__ = f.__doc__
    return cuda.jit(device=True)(g)


# -- id checks without a device read ----------------------------------------------------
# Reading a flag back waits for the GPU to finish everything queued: once per training step
# for the labels alone. Integer arrays that come from the host carry their smallest and
# largest value (taken on the host, where it costs microseconds), so kernels that read them
# as ids can check the range here and launch with a scratch flag nobody reads.
_RANGE = "_graphnet_range"
_SCRATCH: list = []


def note_range(dev, host: np.ndarray):
    """``dev`` (the device copy of ``host``), marked with an integer host array's range."""
    if host.dtype.kind in "iu" and host.size:
        setattr(dev, _RANGE, (int(host.min()), int(host.max())))
    return dev


def keep_range(dst, src):
    """``dst``, whose values are some of ``src``'s (a slice, a gather), marked with its range."""
    r = getattr(src, _RANGE, None)
    if r is not None:
        setattr(dst, _RANGE, r)
    return dst


def within(ids, n: int) -> bool:
    """Whether ``ids`` came from the host with every value in ``[0, n)`` (``note_range``)."""
    r = getattr(ids, _RANGE, None)
    return r is not None and r[0] >= 0 and r[1] < n


def bad_id(kernel, n: int, args: tuple, ids, limit: int) -> int | None:
    """Launch an id-checking ``kernel`` over ``n`` items (its last argument is a flag
    ``(bad?, id)``); the bad id it reports, or None. Ids known to lie in ``[0, limit)``
    launch with the scratch flag and are not read back, so the host does not wait."""
    if not n:
        return None
    if within(ids, limit):
        if not _SCRATCH:
            _SCRATCH.append(cuda.to_device(np.zeros(2, np.int64)))
        kernel[blocks(n), TPB](*args, _SCRATCH[0])
        return None
    flag = cuda.to_device(np.zeros(2, np.int64))
    kernel[blocks(n), TPB](*args, flag)
    bad, idx = flag.copy_to_host()
    return int(idx) if bad else None
