"""Compiling ahead: on a program's first run, a forked helper compiles the kernels the run
will need later while this process compiles the ones it needs now.

A first run is Numba compiling, one kernel after another on one core (the lstm workload's
first step: ten seconds, all of it compiles). Each kernel lands in Numba's on-disk cache, and
a process that reaches a kernel another has cached loads it in milliseconds. So once the
first forward nodes have spent a while compiling (a warm cache's loads fork nothing), the
program forks a helper that runs the *remaining* forward nodes last-first on zero inputs of
the right shapes, then the backward nodes of those same nodes on zero gradients (in the
order this process reaches them), then the extra task (the trainer's optimizer update on
zero gradients); once the forward is done, a second helper runs the other backward nodes
last-first on zero gradients, with the forward's real values. This
process runs its nodes in order and, before each, waits for a helper that is compiling that
very node, then loads it: the two meet in the middle.

The helpers' work is thrown away (each is a copy-on-write fork; its arrays, state and random
streams are its own), so a run's results do not change; only the cache fills sooner. A
helper is forked only on the CPU, with a core to spare, where ``os.fork`` exists; it never
prints, and it is killed at the program's next run or at exit. ``GRAPHNET_COMPILE_AHEAD=0``
turns helpers off, ``=1`` forks them even on a busy machine.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from . import rows

__all__ = ["FirstRun", "Helper", "enabled"]

AFTER_S = 0.25  # forward nodes that compiled and took this long: fork the helpers
WAIT_S = 30.0  # the longest this process waits for one helper in all (a stuck helper)

_LIVE: set[int] = set()  # pids of helpers not yet reaped
_COMPILES: list = []  # [count] of Numba compilations in this process (cache loads are not)
_IN_HELPER = False  # set in a helper: it forks none of its own


def enabled(be) -> bool:
    """Whether a first run on backend ``be`` should fork helpers (see the module's doc)."""
    want = os.environ.get("GRAPHNET_COMPILE_AHEAD", "")
    if want == "0" or _IN_HELPER or not hasattr(os, "fork"):
        return False
    if not getattr(be, "reuses_buffers", False):  # the CPU backend (a device can't be forked)
        return False
    import numba
    if numba.config.DISABLE_JIT:
        return False
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized():  # an MPI rank is not forked
        return False
    if want == "1":
        return True
    from ..kernels.threads import others_running
    return (os.cpu_count() or 1) >= 2 and others_running() <= (os.cpu_count() or 1) - 2


def compiles() -> int:
    """How many times Numba has compiled in this process since the first call (a first run
    forks helpers only when its nodes compile: Numba's first cache load alone takes a
    quarter second too)."""
    if not _COMPILES:
        from numba.core import event

        class Counter(event.Listener):
            def on_start(self, ev) -> None:
                _COMPILES[0] += 1

            def on_end(self, ev) -> None:
                pass

        _COMPILES.append(0)
        event.register("numba:compile", Counter())
    return _COMPILES[0]


class Helper:
    """A forked process running ``tasks`` (key, callable) in order; it reports each key's
    start and end through a pipe, so that :meth:`wait_for` knows what is in progress, and
    skips the tasks this process has said (through a socket pair) it compiles itself."""

    def __init__(self, tasks: Sequence[tuple[object, Callable[[], object]]]) -> None:
        self.keys = {key: k for k, (key, _) in enumerate(tasks)}
        self.started: set[int] = set()
        self.done: set[int] = set()
        self.waited = 0.0  # seconds this process has waited for the helper
        self._buf = b""
        _reap_finished()
        r, w = os.pipe()  # helper -> this process: what it started and finished
        # this process -> helper: the tasks it took itself (a socket: a send to a helper that
        # has exited fails with an error, never a SIGPIPE a script may have left fatal)
        mine, theirs = socket.socketpair()
        with warnings.catch_warnings():  # Python 3.12+ warns of forking beside threads;
            warnings.simplefilter("ignore", DeprecationWarning)  # the helper only compiles
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper's side runs in the fork
            os.close(r)
            theirs.close()
            _serve(w, mine.fileno(), [fn for _, fn in tasks])
        os.close(w)
        mine.close()
        self.pid, self.fd, self.out = pid, r, theirs
        _LIVE.add(pid)

    def _read(self, timeout: float) -> bool:
        """Take the helper's reports that arrive within ``timeout`` s; False once it is gone."""
        if self.fd < 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        data = os.read(self.fd, 65536)
        if not data:  # the helper has finished (or died): nothing more to wait for
            self._stop_reading()
            return False
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            (self.started if line[:1] == b"s" else self.done).add(int(line[1:]))
        return True

    def wait_for(self, key) -> None:
        """Return once the helper is not compiling ``key`` (at once if it has not started it,
        or has finished it): this process then loads what the helper cached."""
        k = self.keys.get(key)
        if k is None or self.fd < 0:
            return
        self._read(0)
        if k not in self.started:  # this process compiles it now: the helper skips it
            self._tell(k)
            return
        t0 = time.perf_counter()
        while k in self.started and k not in self.done and self.fd >= 0:
            left = WAIT_S - self.waited - (time.perf_counter() - t0)
            if left <= 0:  # stuck: stop waiting for this helper, compile here
                self.close()
                break
            self._read(min(left, 1.0))
        self.waited += time.perf_counter() - t0

    def _tell(self, k: int) -> None:
        if self.out is not None:
            try:
                self.out.send(b"%d\n" % k, getattr(socket, "MSG_NOSIGNAL", 0))
            except OSError:  # the helper has gone
                pass

    def _stop_reading(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.out is not None:
            self.out.close()
            self.out = None

    def close(self) -> None:
        """Stop the helper (its finished kernels stay in the cache) and reap it."""
        self._stop_reading()
        if self.pid in _LIVE:
            _reap(self.pid)


def _taken(r: int, taken: set[int]) -> None:  # pragma: no cover - runs in the helper
    """Add to ``taken`` the tasks the parent has said it compiles itself (no wait)."""
    buf = b""
    while select.select([r], [], [], 0)[0]:
        data = os.read(r, 65536)
        if not data:
            break
        buf += data
    taken.update(int(x) for x in buf.split())


def _serve(w: int, r: int, fns: list) -> None:  # pragma: no cover - runs in the fork
    """The helper's life: one thread, silent, every task the parent has not taken
    attempted, then a plain exit."""
    global _IN_HELPER
    _IN_HELPER = True
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import numba
        numba.set_num_threads(1)  # the other core is this process's parent's
        taken: set[int] = set()
        for k, fn in enumerate(fns):
            _taken(r, taken)
            if k in taken:
                continue
            os.write(w, b"s%d\n" % k)
            try:
                fn()
            except Exception:  # noqa: S110 - a task that fails on zeros just compiles less
                pass
            os.write(w, b"d%d\n" % k)
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


def _reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
    _LIVE.discard(pid)


def _reap_finished() -> None:
    """Collect the helpers that have exited (a program dropped unread leaves its helper's
    exit status behind)."""
    for pid in list(_LIVE):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except OSError:  # not our child any more
            done = pid
        if done:
            _LIVE.discard(pid)


@atexit.register
def _reap_all() -> None:
    for pid in list(_LIVE):
        _reap(pid)


def _zeros_like_tensor(t, batch: int | None) -> np.ndarray:
    """Zeros of tensor ``t``'s shape, its leading unknown (batch) axis ``batch`` long."""
    shape = tuple(t.shape)
    if shape and shape[0] is None and batch is not None:
        shape = (batch,) + shape[1:]
    if None in shape:
        raise ValueError(f"{t.name}: shape {shape} is not known before the run")
    return np.zeros(shape, t.dtype)


class FirstRun:
    """The helpers of one program's first run: the program calls ``forward(j, vals)``
    before forward node j, ``backward(j, vals)`` before backward node j."""

    def __init__(self, prog) -> None:
        self.prog = prog
        self.t0 = time.perf_counter()
        self.c0 = compiles()
        self.fwd_helper: Helper | None = None
        self.bwd_helper: Helper | None = None
        self.forked_fwd = self.forked_bwd = False
        self.fwd_bwd: set[int] = set()  # backward nodes the forward helper compiles

    def forward(self, j: int, vals: list) -> None:
        if self.fwd_helper is not None:
            self.fwd_helper.wait_for(("f", j))
        elif (not self.forked_fwd and time.perf_counter() - self.t0 > AFTER_S
              and compiles() > self.c0):
            self.forked_fwd = True  # compiling: nodes j.. in a helper, last first
            self.fwd_helper = Helper(self._forward_tasks(j, vals))

    def backward(self, j: int, vals: list) -> None:
        if not self.forked_fwd:  # a warm forward: nothing to compile ahead
            return
        if not self.forked_bwd:  # the nodes the forward helper does not compile, last first
            self.forked_bwd = True
            rest = [k for k in reversed(range(len(self.prog._bwd))) if k not in self.fwd_bwd]
            if rest:
                self.bwd_helper = Helper([(("b", k), self._backward_task(k, vals.__getitem__))
                                          for k in rest])
        helper = self.fwd_helper if j in self.fwd_bwd else self.bwd_helper
        if helper is not None:
            helper.wait_for(("b", j))

    def wait_extra(self) -> None:
        """Before the caller's own extra step (the optimizer's update): wait for the helper
        if it is compiling it."""
        if self.fwd_helper is not None:
            self.fwd_helper.wait_for("extra")

    def close(self) -> None:
        for h in (self.fwd_helper, self.bwd_helper):
            if h is not None:
                h.close()

    def _forward_tasks(self, start: int, vals: list) -> list:
        """The forward nodes after ``start``, last first, on zeros where no value is known
        yet; then the backward nodes of those same nodes, in the order this process will
        need them, from the values the helper made; then the extra task. (The lstm
        workload's first step: the helper was idle for seconds while this process compiled
        the LSTM's forward, and the dense layer's backward then compiled here, 2 s, in
        parallel to the LSTM's in the backward helper.)"""
        prog = self.prog
        slots = [i for _, i, _ in prog._input_slots if vals[i] is not None]
        batch = len(vals[slots[0]]) if slots and np.ndim(vals[slots[0]]) else None
        fake = list(vals)

        def value(i: int):
            if fake[i] is None:
                fake[i] = _zeros_like_tensor(prog.order[i], batch)
            return fake[i]

        def run(step) -> None:
            op, ctx, ins, o = step
            args = [value(i) for i in ins]
            fake[o] = op.forward(ctx, *args)

        tasks: list = [(("f", k), (lambda s=prog._fwd[k]: run(s)))
                       for k in reversed(range(start + 1, len(prog._fwd)))]
        later = {prog._fwd[k][3] for k in range(start + 1, len(prog._fwd))}
        self.fwd_bwd = {k for k, step in enumerate(prog._bwd) if step[3] in later}
        tasks += [(("b", k), self._backward_task(k, value)) for k in sorted(self.fwd_bwd)]
        extra = prog.warm_extra
        if extra is not None:
            tasks.append(("extra", extra))
        return tasks

    def _backward_task(self, k: int, value: Callable[[int], object]) -> Callable[[], None]:
        op, ctx, ins, o, _ = self.prog._bwd[k]

        def run() -> None:
            y = value(o)
            for g in op.backward(ctx, np.zeros(np.shape(y), y.dtype), y, *map(value, ins)):
                rows.dense(g)  # the scatter an IndexedRows' dense form runs, compiled too

        return run
