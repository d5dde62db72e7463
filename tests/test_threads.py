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
