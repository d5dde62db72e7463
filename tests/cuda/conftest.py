"""CUDA tests: run on the CUDA simulator unless GRAPHNET_REAL_GPU=1 asks for the real GPU.

``NUMBA_ENABLE_CUDASIM`` is read once, when ``numba.cuda`` is first imported, so it is set
here at import time (pytest imports this file while collecting, before any test runs) and
restored right after the import: ``numba.cuda`` stays the simulator for this process, and
nothing else sees the variable. Numba's CPU ``@njit`` does not depend on it. When neither
the simulator nor a GPU can be used, every test here is skipped with the reason.
"""

from __future__ import annotations

import os

import pytest

REAL_GPU = os.environ.get("GRAPHNET_REAL_GPU") == "1"
_prev = os.environ.get("NUMBA_ENABLE_CUDASIM")
if not REAL_GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
try:
    import numba.core.config

    # numba read its environment when it was first imported (tests/conftest.py imports
    # graphnet, hence numba, earlier): read it again so that numba.cuda sees the variable
    numba.core.config.reload_config()
    from numba import cuda

    # the module numba.cuda actually is in this process, whatever the variable says now
    SIMULATED = cuda.to_device.__module__.startswith("numba.cuda.simulator")
    if REAL_GPU:
        USABLE = cuda.is_available() and not SIMULATED
        REASON = "GRAPHNET_REAL_GPU=1 but no CUDA GPU is visible"
    else:
        USABLE = SIMULATED
        REASON = ("numba.cuda was imported without the simulator before tests/cuda was "
                  "collected; run tests/cuda on its own or with NUMBA_ENABLE_CUDASIM=1")
except Exception as e:  # numba-cuda missing or broken
    USABLE, SIMULATED, REASON = False, False, f"numba.cuda cannot be used: {e}"
finally:
    if not REAL_GPU:
        if _prev is None:
            os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
        else:
            os.environ["NUMBA_ENABLE_CUDASIM"] = _prev

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if str(item.path).startswith(_HERE):
            item.add_marker(pytest.mark.cuda)
            if not USABLE:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def K():
    """The CUDA backend module (graphnet.kernels.cuda)."""
    import graphnet.kernels.cuda as k

    return k


@pytest.fixture(scope="session")
def C():
    """The CPU backend module (graphnet.kernels.cpu)."""
    import graphnet.kernels.cpu as c

    return c
