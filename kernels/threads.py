"""The process's threads beside Numba's: how many the BLAS library may use, and when.

Numba's threading layer is chosen in ``jit.py``; this module steers OpenBLAS's pool, which
numba's ``np.dot`` and NumPy share. A time loop (recurrent kernels) or a parallel loop of
GEMMs (attention) runs BLAS on one thread inside (``one_blas_thread``; a time loop only while
another task wants a core, ``loop_blas_threads``), and a Program on the
CPU calls ``balance_threads`` at each run: one BLAS thread while the machine is busy, its
default again when it is calm. Kernels of any family use these; they know nothing of graphs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

__all__ = ["blas_controllers", "one_blas_thread", "loop_blas_threads", "balance_threads",
           "runnable", "others_running"]

_BLAS: list | None = None  # thread-count controllers of the process's BLAS libraries


def blas_controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries numpy and numba's ``np.dot`` use
    (empty without threadpoolctl, installed with scikit-learn)."""
    global _BLAS
    if _BLAS is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401 - loads the BLAS numba's np.dot calls
            from threadpoolctl import ThreadpoolController
            _BLAS = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except ImportError:
            _BLAS = []
    return _BLAS


# OpenBLAS runs a GEMM on one thread anyway below m n k = 4 * 65536 (its
# GEMM_MULTITHREAD_THRESHOLD): smaller steps skip the switch, which costs about 20 us
_BLAS_THREADED = 4 * 65536


@contextlib.contextmanager
def one_blas_thread(step_work: int = _BLAS_THREADED) -> Iterator[None]:
    """Run BLAS single-threaded inside: the time loop alternates small GEMMs with a fused pass,
    and OpenBLAS's workers spin between GEMMs on the core the pass needs (on the 2-core
    machine, under load, an LSTM step took 240-3500 ms with two BLAS threads, 60-160 ms with
    one). ``step_work`` is m n k of one step's GEMM. Needs threadpoolctl (installed with
    scikit-learn); without it nothing changes."""
    if step_work < _BLAS_THREADED:
        yield
        return
    blas = blas_controllers()
    old = [c.get_num_threads() for c in blas]
    for c in blas:
        c.set_num_threads(1)
    try:
        yield
    finally:
        for c, n in zip(blas, old):
            c.set_num_threads(n)


def others_running() -> int:
    """Tasks runnable on the machine right now that are not this process's threads (Linux:
    /proc/loadavg less this process's threads in state R; 0 where unknown). About 0.1 ms."""
    n = runnable()
    if not n:
        return 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        n -= stat[stat.rindex(")") + 2] == "R"  # the state follows the command's name
    return max(n, 0)


@contextlib.contextmanager
def loop_blas_threads(step_work: int) -> Iterator[None]:
    """BLAS for a time loop's GEMMs: all its threads while the cores are free, one while
    another task wants one (``one_blas_thread``). Idle, the LSTM of the lstm workload ran a
    training step in 99 ms with two BLAS threads in its loops and 121 with one; beside one
    busy process, 360 with two and 288 with one (the spinning worker then takes the core
    the pass needs)."""
    busy = step_work >= _BLAS_THREADED and others_running() > (os.cpu_count() or 1) - 2
    with one_blas_thread(step_work if busy else 0):
        yield


# balance_threads: the load at which BLAS goes to one thread, and back (per core)
_BUSY, _CALM = 1.5, 1.0
_balance = {"next": 0.0, "one": False, "old": None,
            "user": any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                  "MKL_NUM_THREADS"))}


def runnable() -> int:
    """Tasks runnable on the machine right now (Linux's /proc/loadavg), 0 where unknown."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0


def balance_threads(now: float | None = None) -> bool:
    """BLAS on one thread while the machine is busy, its default again when it is calm;
    returns whether BLAS is held at one thread. Checked at most once a second.

    A GEMM split over BLAS's threads waits for its slowest part: on the 2-core machine
    shared with other jobs (load average 5), the LSTM's output-layer backward GEMMs took
    12-28 ms on two BLAS threads and 1.1-1.9 ms on one; idle, two threads are at most 2x
    faster. So above ``_BUSY`` x cores of 1-minute load average (or of tasks runnable now,
    besides this process's two) BLAS runs on one thread, below ``_CALM`` x cores it gets
    its threads back. A thread count the user set
    (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) is left alone."""
    b = _balance
    if b["user"]:
        return False
    now = time.monotonic() if now is None else now
    if now < b["next"]:
        return b["one"]
    b["next"] = now + 1.0
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0] / cores
    except OSError:
        return b["one"]
    # the 1-minute average lags a burst by tens of seconds: the tasks runnable right now
    # beyond this process's own two (main and one BLAS worker) count too
    now_busy = (runnable() - 2) / cores
    blas = blas_controllers()
    if not b["one"] and max(load, now_busy) > _BUSY:
        b["old"] = [c.get_num_threads() for c in blas]
        for c in blas:
            c.set_num_threads(1)
        b["one"] = True
    elif b["one"] and max(load, now_busy) < _CALM:
        for c, n in zip(blas, b["old"] or []):
            c.set_num_threads(n)
        b["one"] = False
    return b["one"]
