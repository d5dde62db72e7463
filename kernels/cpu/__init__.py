"""The CPU backend: NumPy arrays and @njit kernels.

An op reaches every kernel as ``ctx.be.<name>``: each module here is one node family and
exports its kernels in ``__all__`` (``conv.py`` holds ``conv2d``...); ``graphnet.kernels.cuda``
exposes the same names for the GPU. Array helpers (``empty``, ``asarray``, ``to_host``) let ops stay
device-neutral.
"""

import numpy as np

from .. import export_families
from ..threads import balance_threads, short_blas_spin

short_blas_spin()

# every module here is a node family; its __all__ lists its kernels (kernels/__init__.py)
KERNELS = export_families(globals())

name = "cpu"
# whether ops may hand kernels reusable output buffers (Ctx.buffer)
reuses_buffers = True
# whether fit keeps its training data on this backend's device (the host needs no copy)
resident_data = False
badge = "njit"


def empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype)


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def asarray(x, dtype=None) -> np.ndarray:
    # np.asarray with order="C", not np.ascontiguousarray, which turns 0-d into shape (1,)
    return np.asarray(x, dtype=dtype, order="C")


def to_host(x) -> np.ndarray:
    return x


def is_finite(x) -> bool:
    return bool(np.isfinite(x).all())


__all__ = ["name", "badge", "reuses_buffers", "resident_data", "empty", "zeros", "asarray",
           "to_host", "is_finite", "balance_threads", *KERNELS]
