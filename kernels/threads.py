"""The process's threads beside Numba's: how many the BLAS library may use, and when.

Numba's threading layer is chosen in ``jit.py``; this module steers OpenBLAS's pool, which
numba's ``np.dot`` and NumPy share. A time loop (recurrent kernels) or a parallel loop of
GEMMs (attention) runs BLAS on one thread inside (``one_blas_thread``; a time loop only while
another task wants a core, ``loop_blas_threads``), and a Program on the
CPU calls ``balance_threads`` at each run: BLAS and Numba's parallel loops on as many threads
as there are cores no other task wants, the defaults again when the machine is free. Idle
workers spin briefly before they sleep (``short_blas_spin``, set when the CPU backend loads).
Kernels of any family use these; they know nothing of graphs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["blas_controllers", "one_blas_thread", "loop_blas_threads", "balance_threads",
           "runnable", "others_running", "short_blas_spin", "split_rows", "time_loop"]

# how long OpenBLAS's idle workers spin before they sleep: 2**20 TSC cycles, about 0.4 ms
_BLAS_SPIN = 20


def short_blas_spin(log2_cycles: int = _BLAS_SPIN) -> bool:
    """Let OpenBLAS's idle workers spin 2**log2_cycles cycles before they sleep, not its
    default 2**28 (about 0.1 s), so a GEMM's workers give the cores back to the Numba
    parallel loop that follows it. Done once, when the CPU backend loads: the setting is
    read when the pool starts, so the pool is stopped here and starts again at the next
    threaded GEMM. Returns whether the library took it; a ``OPENBLAS_THREAD_TIMEOUT`` the
    user set is left alone.

    Attention's forward right after a (4096, 128) x (128, 128) GEMM took 7.2 ms with the
    default spin and 4.1 with 2**20 (4.2 alone); fit on the attention workload 812 -> 1,083
    samples/s, embedding 12-16k -> 17-21k, lstm, cnn and mlp within the noise; beside one
    busy process all equal (the spinning worker yields there)."""
    if any(v in os.environ for v in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")):
        return False
    from .blas import LIBRARY
    if LIBRARY is None:
        return False
    import ctypes
    lib = ctypes.CDLL(LIBRARY)
    needs = ("openblas_read_env", "openblas_thread_timeout", "blas_thread_shutdown_")
    if not all(hasattr(lib, f) for f in needs):
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(log2_cycles)  # read_env reads only this
    try:
        lib.openblas_read_env()
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
    lib.blas_thread_shutdown_()  # idle workers exit; the next threaded call starts the pool
    return lib.openblas_thread_timeout() == log2_cycles

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


_FAST: list = []  # [(get, set) of the kernels' OpenBLAS thread count, or None], once found


def _kernel_blas() -> tuple | None:
    """``(get, set)`` of the thread count of the OpenBLAS that ``blas.gemm`` calls (NumPy's,
    ``blas.LIBRARY``), through ctypes: threadpoolctl's first look at the process's
    libraries took 92 ms here, which the warm first step of a program that switches BLAS
    to one thread (a long time loop, a large conv) then paid. None where the kernels call
    another library (no binding) or the names are not found."""
    if not _FAST:
        from .blas import LIBRARY
        found = None
        if LIBRARY is not None:
            import ctypes
            lib = ctypes.CDLL(LIBRARY)
            for suffix in ("scipy_openblas_%s_num_threads64_", "openblas_%s_num_threads64_",
                           "openblas_%s_num_threads"):
                get, put = (getattr(lib, suffix % v, None) for v in ("get", "set"))
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    found = (get, put)
                    break
        _FAST.append(found)
    return _FAST[0]


@contextlib.contextmanager
def one_blas_thread(step_work: int = _BLAS_THREADED) -> Iterator[None]:
    """Run BLAS single-threaded inside: the time loop alternates small GEMMs with a fused pass,
    and OpenBLAS's workers spin between GEMMs on the core the pass needs (on the 2-core
    machine, under load, an LSTM step took 240-3500 ms with two BLAS threads, 60-160 ms with
    one). ``step_work`` is m n k of one step's GEMM. The OpenBLAS the kernels' ``gemm``
    calls is switched directly (``_kernel_blas``); otherwise threadpoolctl (installed with
    scikit-learn) switches every BLAS library; without either nothing changes."""
    if step_work < _BLAS_THREADED:
        yield
        return
    fast = _kernel_blas()
    if fast:
        get, put = fast
        old_n = get()
        put(1)
        try:
            yield
        finally:
            put(old_n)
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
    /proc/loadavg less this process's threads in state R; 0 where unknown). This process's
    threads are looked at just before and just after the machine's count, and those running
    in either look are left out: one that went to sleep in between would otherwise count as
    another task (1 look in 20 while a GEMM ran in a second thread). About 0.2 ms."""
    before = _own_running()
    n = runnable()
    if not n or before is None:
        return 0
    after = _own_running() or set()
    return max(n - len(before | after), 0)


def _own_running() -> set | None:
    """This process's threads in state R (their ids), or None where /proc cannot say."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = set()
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] == "R":  # the state follows the command's name
            running.add(t)
    return running


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


# balance_threads' state: the thread count in use (None: the defaults), the count the last
# check wanted, the next check's time, and whether the user fixed the counts
_balance = {"next": 0.0, "n": None, "want": None, "old": None,
            "user": any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                  "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"))}


def runnable() -> int:
    """Tasks runnable on the machine right now (Linux's /proc/loadavg), 0 where unknown."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0


def balance_threads(now: float | None = None) -> int:
    """BLAS and Numba's parallel loops on the cores no other task wants right now; returns
    the thread count in use (0: the defaults, untouched). Checked at most once a second, and
    changed only when two checks in a row agree (a task that runs for a moment does not
    flip it).

    A GEMM split over threads, or a parallel loop in static chunks, waits for its slowest
    part, and a thread that shares its core with another task runs at a fraction of its
    speed. Beside ONE process spinning on the 2-core machine, the scoreboard's workloads
    (graphnet's fit alone in its process, samples/s) trained on two threads / with this
    rule: lstm 161 / 281, cnn 1,265 / 2,001, attention 748 / 905, embedding 19.0k / 24.4k,
    mlp 27.5k / 26.3k; on the idle machine two threads are up to 2x faster than one. So the
    count is the cores less the tasks runnable now that are not this process's threads
    (``others_running``), at least one. Counts the user set (``OPENBLAS_NUM_THREADS``,
    ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``) are left alone."""
    b = _balance
    if b["user"]:
        return 0
    now = time.monotonic() if now is None else now
    if now < b["next"]:
        return b["n"] or 0
    b["next"] = now + 1.0
    full = numba.config.NUMBA_NUM_THREADS
    want = max(1, min(full, (os.cpu_count() or 1) - others_running()))
    agreed, b["want"] = want == b["want"], want
    if not agreed or want == (b["n"] or full):
        return b["n"] or 0
    blas = blas_controllers()
    if b["n"] is None:  # leaving the defaults: remember them
        b["old"] = [c.get_num_threads() for c in blas]
    if want == full:  # the cores are free again: the defaults back
        for c, n in zip(blas, b["old"] or []):
            c.set_num_threads(n)
        numba.set_num_threads(full)
        b["n"] = None
        return 0
    for c in blas:
        c.set_num_threads(want)
    numba.set_num_threads(want)
    b["n"] = want
    return want


_POOL: list = [None, 0, 0]  # split_rows' pool of threads, the pid that started it, its size


def split_rows(fn: Callable, args: tuple, rows: int, parts: int) -> None:
    """``fn(*args, lo, hi)`` over ``parts`` blocks of ``rows`` at once: blocks of
    ``ceil(rows / parts)`` (block i starts at row ``i * ceil(rows / parts)``), the first on
    this thread, the others on a small pool of Python threads. For compiled ``nogil``
    kernels whose blocks share nothing (an RNN's batch rows over a whole time loop): a
    Numba parallel loop around such a loop took 2.6 s longer to compile and 70-100 us to
    start under the workqueue layer; a pool thread starts in tens of microseconds."""
    per = -(-rows // max(parts, 1))
    blocks = [(lo, min(rows, lo + per)) for lo in range(0, rows, per)] or [(0, 0)]
    if len(blocks) == 1:
        fn(*args, *blocks[0])
        return
    pool, pid, size = _POOL
    if pool is None or pid != os.getpid() or size < len(blocks) - 1:
        # a fork's child has none of its parent's threads: a new pool (and a larger one
        # where more blocks come than the cores less one)
        if pool is not None and pid == os.getpid():
            pool.shutdown(wait=False)
        size = max(len(blocks) - 1, (os.cpu_count() or 2) - 1)
        pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="graphnet-rows")
        _POOL[:] = [pool, os.getpid(), size]
    futures = [pool.submit(fn, *args, lo, hi) for lo, hi in blocks[1:]]
    try:
        fn(*args, *blocks[0])
    finally:
        for f in futures:  # all blocks end before anything returns or raises
            f.exception()
    for f in futures:
        f.result()  # a block's exception, raised here


# a time loop of fewer multiply-adds than this (all its steps' GEMMs) runs on the calling
# thread alone: the rnn_small workload's whole training step takes about 170 us
PARALLEL_LOOP = 1 << 25
# at least this many rows a block: a product of fewer rows reads all of U for little work
# (a guess for machines of many cores; this one has two, and 16 rows a block)
MIN_ROWS = 8


def time_loop(run: Callable, args: tuple, B: int, T: int, kn: tuple[int, int]) -> None:
    """``run(*args, lo, hi)``, a compiled time loop over batch rows ``lo:hi`` whose step GEMM
    is (B, k) x (k, n) with ``kn = (k, n)``, over all ``B`` rows. A long loop whose blocks of
    rows take OpenBLAS's small-matrix kernels (``blas.small_width``) runs one block per
    Numba thread at once (``split_rows``; one block on a busy machine, where
    ``balance_threads`` leaves Numba one thread), BLAS on one thread inside each. Otherwise
    one call on all rows, its GEMMs on BLAS's threads as ``loop_blas_threads`` chooses: the
    music demo's backward step (32, 2048) x (2048, 512) took 453 us on two BLAS threads,
    528 as two halves on a thread each."""
    from .blas import SMALL_MNK, small_width
    k, n = kn
    parts = max(1, min(numba.get_num_threads(), B // MIN_ROWS))
    m = -(-B // parts)  # rows per block
    if T * B * k * n >= PARALLEL_LOOP and m * k * small_width(m, k, n) <= SMALL_MNK:
        with one_blas_thread():
            split_rows(run, args, B, parts)
    else:
        with loop_blas_threads(B * k * n):
            run(*args, 0, B)
