"""kernels/threads.py: BLAS's threads held at one while the machine is busy."""

import os

import pytest

from graphnet.kernels import threads


def test_balance_threads_holds_blas_at_one_thread_while_the_machine_is_busy(monkeypatch):
    rec = threads
    blas = rec.blas_controllers()
    if not blas:
        pytest.skip("threadpoolctl is not installed")
    before = [c.get_num_threads() for c in blas]
    for key, value in (("user", False), ("one", False), ("next", 0.0), ("old", None)):
        monkeypatch.setitem(rec._balance, key, value)  # restored after the test
    cores = os.cpu_count() or 1
    monkeypatch.setattr(rec, "runnable", lambda: 0)
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (3.0 * cores, 0.0, 0.0))
        assert rec.balance_threads(now=1e9)
        assert all(c.get_num_threads() == 1 for c in blas)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.0, 0.0))
        assert rec.balance_threads(now=1e9 + 0.5)  # checked at most once a second
        assert not rec.balance_threads(now=1e9 + 2)
        assert [c.get_num_threads() for c in blas] == before
        monkeypatch.setattr(rec, "runnable", lambda: 2 + 3 * cores)  # a burst, right now
        assert rec.balance_threads(now=1e9 + 4)
    finally:
        for c, n in zip(blas, before):
            c.set_num_threads(n)


def test_balance_threads_leaves_a_user_thread_count_alone(monkeypatch):
    rec = threads
    monkeypatch.setitem(rec._balance, "user", True)
    assert rec.balance_threads(now=1e9) is False


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
        assert all(c.get_num_threads() == 1 for c in blas)
    assert [c.get_num_threads() for c in blas] == before
