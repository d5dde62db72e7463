"""Devices: the backend object (a kernel namespace) that the executor hands to every op."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import GraphError

DEVICES = ("cpu", "cuda")


def get_backend(device: str) -> ModuleType:
    """``"cpu"`` -> graphnet.kernels.cpu; ``"cuda"`` -> graphnet.kernels.cuda (GPU or simulator)."""
    if device == "cpu":
        return importlib.import_module("graphnet.kernels.cpu")
    if device == "cuda":
        try:
            from numba import cuda
        except ImportError as e:  # pragma: no cover - numba always ships numba.cuda or numba-cuda
            raise GraphError("device='cuda' needs numba-cuda: pip install 'graphnet[cuda]'") from e
        if not (cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"):
            raise GraphError("device='cuda' was asked for, but no CUDA GPU is visible and the "
                             "simulator is off; set NUMBA_ENABLE_CUDASIM=1 to simulate, or use "
                             "device='cpu'")
        try:
            return importlib.import_module("graphnet.kernels.cuda")
        except ImportError as e:
            raise GraphError(f"the CUDA backend is not available: {e}") from e
    raise GraphError(f"unknown device {device!r}; choose one of {DEVICES}")


def is_device_array(x) -> bool:
    """True for a CUDA device array, real or simulated.

    Added for the CUDA backend (issue 5): the simulator's arrays (NUMBA_ENABLE_CUDASIM=1)
    have no ``__cuda_array_interface__``, so a ``hasattr`` test alone misses them.
    """
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray"
