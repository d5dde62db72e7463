"""Compiling ahead (core/ahead.py): the forked helper's protocol, its guards, and a first run
with helpers that trains exactly as one without."""

import os
import time

import numpy as np
import pytest

import graphnet as gn
from graphnet.core import ahead

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _mark(path, delay=0.0):
    def task():
        time.sleep(delay)
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")
    return task


def _drain(h, timeout=20.0):
    t0 = time.perf_counter()
    while h.fd >= 0 and time.perf_counter() - t0 < timeout:
        h._read(0.5)


def test_helper_runs_every_task_in_order_in_another_process(tmp_path):
    def boom():
        raise RuntimeError("a task that fails on zeros")

    paths = [tmp_path / f"t{k}" for k in range(3)]
    h = ahead.Helper([("a", _mark(paths[0])), ("b", boom), ("c", _mark(paths[1])),
                      ("d", _mark(paths[2], 0.2))])
    _drain(h)
    assert h.fd < 0  # the helper finished: its end of the pipe closed
    assert h.started == h.done == {0, 1, 2, 3}  # the failing task did not stop the rest
    pids = {p.read_text().strip() for p in paths}
    assert pids == {str(h.pid)} and str(os.getpid()) not in pids
    h.close()
    assert h.pid not in ahead._LIVE


def test_wait_for_blocks_while_the_helper_compiles_that_key(tmp_path):
    out = tmp_path / "slow"
    h = ahead.Helper([("slow", _mark(out, 0.6))])
    t0 = time.perf_counter()
    while 0 not in h.started:  # the helper has begun the task
        h._read(0.05)
    h.wait_for("unknown")  # a key the helper never runs: no wait
    h.wait_for("slow")
    assert out.exists()  # returned only once the task was done
    assert time.perf_counter() - t0 >= 0.5
    h.close()


def test_a_task_this_process_takes_first_is_skipped_by_the_helper(tmp_path):
    paths = [tmp_path / f"t{k}" for k in range(3)]
    h = ahead.Helper([("a", _mark(paths[0], 0.6)), ("b", _mark(paths[1])),
                      ("c", _mark(paths[2]))])
    while 0 not in h.started:
        h._read(0.05)
    h.wait_for("b")  # not started: returns at once, and the helper is told to skip it
    _drain(h)
    assert h.done == {0, 2} and 1 not in h.started
    assert paths[0].exists() and paths[2].exists() and not paths[1].exists()
    h.close()


def test_telling_a_helper_that_has_exited_is_harmless_even_with_sigpipe_fatal():
    import signal
    h = ahead.Helper([("a", lambda: None)])
    t0 = time.perf_counter()
    while os.waitpid(h.pid, os.WNOHANG) == (0, 0) and time.perf_counter() - t0 < 20:
        time.sleep(0.05)  # the helper has finished and exited; its reports are unread
    old = signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as some command-line scripts set
    try:
        h._tell(0)  # a pipe would raise SIGPIPE here and end this process
        h.wait_for("a")
    finally:
        signal.signal(signal.SIGPIPE, old)
    h.close()


def test_a_stuck_helper_is_given_up_after_wait_s(monkeypatch):
    monkeypatch.setattr(ahead, "WAIT_S", 0.3)
    h = ahead.Helper([("stuck", lambda: time.sleep(30))])
    while 0 not in h.started:
        h._read(0.05)
    t0 = time.perf_counter()
    h.wait_for("stuck")
    assert time.perf_counter() - t0 < 5
    assert h.fd < 0 and h.pid not in ahead._LIVE  # killed and reaped


def test_enabled_guards(monkeypatch):
    cpu = gn.core.backend.get_backend("cpu")
    monkeypatch.setenv("GRAPHNET_COMPILE_AHEAD", "0")
    assert not ahead.enabled(cpu)
    monkeypatch.setenv("GRAPHNET_COMPILE_AHEAD", "1")
    assert ahead.enabled(cpu)

    class Device:  # a backend that allocates its own arrays (CUDA): never forked
        reuses_buffers = False

    assert not ahead.enabled(Device())
    monkeypatch.setattr(ahead, "_IN_HELPER", True)
    assert not ahead.enabled(cpu)


def _model(seed=0):
    m = gn.Sequential([gn.layers.Embedding(30, 8, seed=seed),
                       gn.layers.LSTM(12, return_sequences=True, seed=seed),
                       gn.layers.Dense(30, seed=seed)], input_shape=(7,))
    m.compile(optimizer=gn.optimizers.Adam(1e-2), loss="sparse_softmax_cross_entropy")
    return m


def test_fit_with_helpers_trains_exactly_as_without(monkeypatch, capfd):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 30, size=(24, 7))
    y = rng.integers(0, 30, size=(24, 7))
    monkeypatch.setenv("GRAPHNET_COMPILE_AHEAD", "0")
    plain = _model()
    h0 = plain.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history["loss"]

    monkeypatch.setenv("GRAPHNET_COMPILE_AHEAD", "1")
    monkeypatch.setattr(ahead, "AFTER_S", 0.0)  # fork at once, as if every node compiled
    calls = iter(range(10**6))
    monkeypatch.setattr(ahead, "compiles", lambda: next(calls))
    forked = []
    real = ahead.Helper.__init__

    def spy(self, tasks):
        real(self, tasks)
        forked.append([k for k, _ in tasks])

    monkeypatch.setattr(ahead.Helper, "__init__", spy)
    helped = _model()
    h1 = helped.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history["loss"]
    assert h1 == h0  # the helpers' work is their own: not one bit differs
    for a, b in zip(plain.get_weights(), helped.get_weights()):
        np.testing.assert_array_equal(a, b)
    # one helper for the forward nodes after the first (last first), their backward nodes
    # (in the order the backward reaches them) and the optimizer's update; one for the
    # other backward nodes (last first); on the first run only
    assert len(forked) == 2
    fwd, bwd = forked
    f = [k for k in fwd if k[0] == "f"]
    b = [k for k in fwd if k[0] == "b"]
    assert fwd == f + b + ["extra"] and ("f", 0) not in f
    assert [k[1] for k in f] == sorted((k[1] for k in f), reverse=True)
    # the model's nodes: embedding, lstm, dense, loss; forward node j's backward is
    # backward node 3 - j
    assert [k[1] for k in b] == sorted(3 - k[1] for k in f)
    assert [k[1] for k in bwd] == sorted(set(range(4)) - {k[1] for k in b}, reverse=True)
    assert capfd.readouterr().err == ""  # a helper never prints


def test_a_warm_first_run_forks_no_helper(monkeypatch):
    monkeypatch.setenv("GRAPHNET_COMPILE_AHEAD", "1")
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 30, size=(8, 7)), rng.integers(0, 30, size=(8, 7))
    _model().fit(x, y, batch_size=8, epochs=1, verbose=0)  # compiles (or loads) it all
    m = _model()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    first = m._build_programs()["train"]._ahead
    assert first is not None and first.fwd_helper is None and first.bwd_helper is None


def test_a_refused_feed_is_no_first_run():
    with gn.Graph("refused"):
        x = gn.Input((3,), name="x")
        w = gn.Parameter(np.ones((3, 2), np.float32), name="w")
        loss = gn.mean(gn.matmul(x, w))
    prog = gn.compile(loss, wrt=[w])
    with pytest.raises(gn.FeedError):
        prog({x: np.ones((4, 5), np.float32)})
    assert prog._runs == 0  # the next, well-fed call is still the first run
    prog({x: np.ones((4, 3), np.float32)})
    assert prog._runs == 1
