"""kernels/threads.py: BLAS's and Numba's threads on the cores no other task wants."""

import os

import numpy as np
import pytest

from graphnet.kernels import threads


def test_balance_threads_takes_the_cores_no_other_task_wants(monkeypatch):
    import numba

    rec = threads
    blas = rec.blas_controllers()
    full = numba.config.NUMBA_NUM_THREADS
    if full < 2:
        pytest.skip("Numba runs one thread here")
    before = [c.get_num_threads() for c in blas]
    numba_before = numba.get_num_threads()  # (an earlier program here may have lowered it)
    numba.set_num_threads(full)
    for key, value in (("user", False), ("n", None), ("want", None), ("next", 0.0),
                       ("old", None)):
        monkeypatch.setitem(rec._balance, key, value)  # restored after the test
    monkeypatch.setattr(os, "cpu_count", lambda: full)
    others = {"n": 0}
    monkeypatch.setattr(rec, "others_running", lambda: others["n"])
    t = 1e9
    try:
        assert rec.balance_threads(now=t) == 0 and rec.balance_threads(now=t + 2) == 0
        assert numba.get_num_threads() == full
        others["n"] = full - 1  # every core but one wanted by other tasks
        assert rec.balance_threads(now=t + 4) == 0  # one look is not enough
        assert rec.balance_threads(now=t + 6) == 1  # two in a row agree
        assert numba.get_num_threads() == 1
        assert all(c.get_num_threads() == 1 for c in blas)
        others["n"] = 0
        assert rec.balance_threads(now=t + 6.5) == 1  # checked at most once a second
        assert rec.balance_threads(now=t + 8) == 1
        assert rec.balance_threads(now=t + 10) == 0  # the cores are free: the defaults
        assert numba.get_num_threads() == full
        assert [c.get_num_threads() for c in blas] == before
        others["n"] = 10 * full  # more tasks than cores: still one thread, never none
        rec.balance_threads(now=t + 12)
        assert rec.balance_threads(now=t + 14) == 1
    finally:
        numba.set_num_threads(numba_before)
        for c, n in zip(blas, before):
            c.set_num_threads(n)


def test_balance_threads_leaves_a_user_thread_count_alone(monkeypatch):
    rec = threads
    monkeypatch.setitem(rec._balance, "user", True)
    assert rec.balance_threads(now=1e9) == 0


def test_others_running_leaves_out_this_process_and_a_spinning_one_counts():
    import subprocess
    import sys
    import time

    assert threads.others_running() >= 0
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc on this system")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        seen = max(threads.others_running() for _ in range(20))
    finally:
        spin.kill()
        spin.wait()
    assert seen >= 1  # the spinning process is another task wanting a core


def test_loop_blas_threads_keeps_blas_threads_while_cores_are_free(monkeypatch):
    blas = threads.blas_controllers()
    if not blas:
        pytest.skip("threadpoolctl is not installed")
    before = [c.get_num_threads() for c in blas]
    big = 1 << 30  # a step's GEMM well past OpenBLAS's threading threshold
    monkeypatch.setattr(threads, "others_running", lambda: 0)
    with threads.loop_blas_threads(big):
        assert [c.get_num_threads() for c in blas] == before
    monkeypatch.setattr(threads, "others_running", lambda: os.cpu_count() or 1)
    with threads.loop_blas_threads(big):
        assert all(c.get_num_threads() == 1 for c in _kernels_blas(blas))
    assert [c.get_num_threads() for c in blas] == before


def _kernels_blas(blas: list) -> list:
    """The controllers one_blas_thread sets: the kernels' OpenBLAS where it is switched
    directly, else every library."""
    from graphnet.kernels.blas import LIBRARY
    if threads._kernel_blas() is None:
        return blas
    mine = [c for c in blas if os.path.realpath(c.filepath) == os.path.realpath(LIBRARY)]
    assert mine, "threadpoolctl does not see the kernels' OpenBLAS"
    return mine


def test_one_blas_thread_switches_the_kernels_blas_and_back():
    blas = threads.blas_controllers()
    if not blas:
        pytest.skip("threadpoolctl is not installed")
    before = [c.get_num_threads() for c in blas]
    with threads.one_blas_thread():
        assert all(c.get_num_threads() == 1 for c in _kernels_blas(blas))
    assert [c.get_num_threads() for c in blas] == before
    with threads.one_blas_thread(10):  # a GEMM OpenBLAS never threads: nothing to switch
        assert [c.get_num_threads() for c in blas] == before


def test_short_blas_spin_sets_the_timeout_and_gemms_stay_right(monkeypatch):
    import ctypes

    import numpy as np

    from graphnet.kernels import blas

    if blas.LIBRARY is None:
        pytest.skip("NumPy's OpenBLAS is not found here")
    lib = ctypes.CDLL(blas.LIBRARY)
    if not hasattr(lib, "openblas_thread_timeout"):
        pytest.skip("this OpenBLAS has no thread timeout")
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    monkeypatch.delenv("GOTO_THREAD_TIMEOUT", raising=False)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))
    want = np.einsum("ik,kj->ij", a, b)  # not BLAS
    assert threads.short_blas_spin(18)
    assert lib.openblas_thread_timeout() == 18
    assert "OPENBLAS_THREAD_TIMEOUT" not in os.environ  # the process's env as it was
    np.testing.assert_allclose(a @ b, want, rtol=1e-10, atol=1e-10)  # the pool started again
    assert threads.short_blas_spin()  # back to the backend's setting
    assert lib.openblas_thread_timeout() == threads._BLAS_SPIN
    np.testing.assert_allclose(a @ b, want, rtol=1e-10, atol=1e-10)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")  # the user's own setting wins
    assert not threads.short_blas_spin(10)
    assert lib.openblas_thread_timeout() == threads._BLAS_SPIN


def test_cpu_backend_loads_with_a_short_spin():
    import ctypes

    from graphnet.kernels import blas

    if blas.LIBRARY is None or "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        pytest.skip("NumPy's OpenBLAS is not found here, or the user set the timeout")
    import importlib

    importlib.import_module("graphnet.kernels.cpu")
    lib = ctypes.CDLL(blas.LIBRARY)
    if hasattr(lib, "openblas_thread_timeout"):
        assert lib.openblas_thread_timeout() == threads._BLAS_SPIN


def test_split_rows_covers_every_row_once_and_raises_a_blocks_error():
    import threading

    from graphnet.kernels.threads import split_rows

    seen, names = [], set()

    def fn(out, lo, hi):
        names.add(threading.current_thread().name)
        seen.append((lo, hi))
        out[lo:hi] += 1

    for rows, parts in [(5, 2), (5, 4), (1, 2), (7, 1), (3, 8)]:
        out, seen[:] = np.zeros(rows), []
        split_rows(fn, (out,), rows, parts)
        per = -(-rows // parts)  # rows per block: the last block may be short, or missing
        assert (out == 1).all() and sorted(seen) == [(lo, min(rows, lo + per))
                                                     for lo in range(0, rows, per)]
    assert "MainThread" in names and len(names) >= 2  # this thread and the pool's

    def bad(out, lo, hi):
        if lo > 0:
            raise ValueError(f"block {lo}:{hi}")
        out[lo:hi] = 1

    out = np.zeros(4)
    with pytest.raises(ValueError, match="block 2:4"):
        split_rows(bad, (out,), 4, 2)
    assert (out[:2] == 1).all()  # the first block ran to its end
