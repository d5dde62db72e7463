"""Data-parallel training over MPI: ``compile(..., distribute=gn.distribute.MPIDataParallel())``.

Run the same script under ``mpiexec -n N python train.py``. Every process (rank) holds the
whole model and all of the data; ``fit`` then does what Horovod and PyTorch's DDP do:

* at the start of ``fit`` rank 0 broadcasts the weights, the optimizer's step count and its
  slots (Adam's moments...), and a shuffle seed when ``seed=None``, so every rank starts
  alike and draws the same order of samples;
* ``batch_size`` stays the *global* batch: each rank takes its contiguous ``1/N`` slice of
  every batch (``shard``), runs forward and backward on it, and scales its gradients by its
  share of the batch's samples, ``n_k / n``; one sum-``Allreduce`` of a few large contiguous
  buffers (``bucket_bytes`` each, at most) then gives every rank the gradient of the whole
  batch, as one process computes it (the losses are batch means), uneven last batches and
  empty slices included; the batch's loss rides in the first buffer;
* every rank applies the same optimizer step to the same weights, so the weights stay
  identical (MPI's sum gives every rank the same bits);
* at the end of each epoch the metrics' running sums and counts are summed over the ranks,
  validation data is sharded and reduced the same way, and rank 0's logs are broadcast, so
  ``EarlyStopping`` and every other callback see the same numbers and decide alike; rank 0
  alone shows the progress bar and runs the callbacks that write files (``chief_only``:
  ``ModelCheckpoint``; a checkpoint resumes on any number of processes, through
  ``gn.load_model(path, distribute=...)``);
* an exception on any rank prints ``graphnet.distribute: rank k of N failed: ...`` and calls
  ``MPI_Abort``, which ends every rank (those blocked in a collective included) with a
  non-zero status instead of a hang. For errors outside ``fit``/``evaluate`` run the script as
  ``mpiexec -n N python -m mpi4py train.py``, which does the same.

Dropout: the training program of rank ``k`` is seeded with ``seed + 100003 k``, so the ranks
draw independent masks (equal seeds would repeat one mask pattern on every slice); the
distributed run is then a different, equally valid draw than one process's. Layers that use
batch statistics in training see their rank's slice only (as DDP without SyncBatchNorm).

``device="cuda"``: gradients are staged through the host, one device-to-host copy per
gradient into the buffers and one host-to-device copy per gradient for the update. A
CUDA-aware MPI (or NCCL) would reduce device buffers in place (mpi4py takes any object with
``__cuda_array_interface__``), removing both copies; the buckets would then be device arrays.
Without ``mpiexec`` (one process) the strategy steps aside and ``fit`` runs the one-process
loop unchanged. Needs the ``mpi`` extra: ``pip install 'graphnet[mpi]'`` (mpi4py and the
``mpich`` wheel, which brings ``libmpi`` and ``mpiexec``; no system MPI needed).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..core.errors import GraphError

__all__ = ["MPIDataParallel", "OneProcess"]


class OneProcess:
    """The strategy of a single process: every hook ``fit`` calls is the identity, so the
    training loop reads the same with and without MPI."""

    rank, size, is_chief = 0, 1, True

    def program_seed(self, seed: int) -> int:
        return int(seed)

    def setup(self, model: Any, params: Sequence, n: int, seed: Any) -> Any:
        return seed

    def shard(self, arrays: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        return arrays

    def reduce_gradients(self, grads: Sequence | None, loss: float, weight: float
                         ) -> tuple[float, Sequence | None]:
        return loss, grads

    def reduce_metrics(self, metrics: Sequence[Sequence[Any]], *sums: float
                       ) -> tuple[float, ...]:
        return sums

    def agree(self, value: Any) -> Any:
        return value

    @contextmanager
    def guard(self) -> Iterator[None]:
        yield


ONE_PROCESS = OneProcess()


class MPIDataParallel:
    """Synchronous data parallelism over an MPI communicator (``MPI.COMM_WORLD`` by default).

    ``bucket_bytes`` caps each gradient buffer of the ``Allreduce`` (parameters of one dtype
    are packed, last layer first, into as few buffers as that allows); ``abort_on_error``
    turns an exception on one rank into ``MPI_Abort`` of all (see the module docstring).
    ``poll``: None reduces with a blocking ``Allreduce``, in which MPI spins while it waits
    for the slowest rank (best on dedicated cores); a number of seconds starts
    ``Iallreduce`` and tests it, sleeping that long (0: yielding the core) between tests,
    which leaves the core to others where there are more processes than free cores.
    ``stats`` counts the steps, the seconds spent in the gradient reduction (packing and
    ``Allreduce``, waiting for the slowest rank included) and the bytes of the buffers reduced
    per step (``buckets`` their number).
    """

    def __init__(self, comm: Any = None, bucket_bytes: int = 8 << 20,
                 abort_on_error: bool = True, poll: float | None = None) -> None:
        try:
            from mpi4py import MPI
        except (ImportError, RuntimeError, OSError) as e:  # no mpi4py, or no libmpi for it
            raise GraphError("gn.distribute.MPIDataParallel needs mpi4py and an MPI library: "
                             "pip install 'graphnet[mpi]' (the mpi extra: mpi4py and the mpich "
                             f"wheel) ({type(e).__name__}: {e})") from None
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if int(bucket_bytes) < 1:
            raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
        self.bucket_bytes = int(bucket_bytes)
        self.abort_on_error = bool(abort_on_error)
        self.poll = None if poll is None else float(poll)
        self._buckets: list[tuple[np.ndarray, list[tuple[int, int, int]]]] = []
        self._views: list[np.ndarray] = []
        self._layout: list | None = None
        self.stats = {"steps": 0, "reduce_s": 0.0, "bytes_per_step": 0, "buckets": 0}

    @property
    def is_chief(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"<MPIDataParallel rank {self.rank} of {self.size}>"

    # -- what fit calls -------------------------------------------------------------------
    def program_seed(self, seed: int) -> int:
        """The training program's (dropout) seed on this rank: rank 0 keeps ``seed``."""
        return int(seed) + 100003 * self.rank

    def shard(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """This rank's contiguous slice of the rows of every array (a batch, or a data set)."""
        n = len(arrays[0])
        lo, hi = self.rank * n // self.size, (self.rank + 1) * n // self.size
        return [a[lo:hi] for a in arrays]

    def setup(self, model: Any, params: Sequence, n: int, seed: Any) -> Any:
        """Start of fit: check that every rank has the same data and model, broadcast rank 0's
        weights and optimizer state, lay out the gradient buffers; returns the shuffle seed
        (rank 0's draw when ``seed`` is None)."""
        comm = self.comm
        me = (int(n), len(model.weights), len(params))
        seen = comm.allgather(me)
        if any(s != seen[0] for s in seen):
            raise GraphError("the ranks disagree on (samples, weights, trainable weights): "
                             + ", ".join(f"rank {r}: {s}" for r, s in enumerate(seen))
                             + "; give every rank the whole training set and the same model")
        for w in model.weights:
            buf = np.ascontiguousarray(w.value)
            comm.Bcast(buf, root=0)
            if not self.is_chief:
                w.value = buf
        opt = model.optimizer
        state = comm.bcast((opt.iterations, opt.state_arrays(params)) if self.is_chief
                           else None, root=0)
        if not self.is_chief:
            iterations, slots = state
            for p, s in zip(params, slots):
                if not s:  # rank 0 has no state for it yet: neither may this rank
                    opt._state.pop(id(p), None)
                    opt._pending.pop(id(p), None)
            opt.load_state(iterations, params, slots)
        if seed is None:
            seed = comm.bcast(np.random.SeedSequence().entropy if self.is_chief else None,
                              root=0)
        self._plan(params)
        return seed

    def _plan(self, params: Sequence) -> None:
        """Pack the gradients, last parameter first and by dtype, into few flat buffers; one
        extra element of the first buffer carries the batch's loss."""
        layout = [(tuple(p.shape), np.dtype(p.dtype)) for p in params]
        if layout == self._layout:
            return
        groups: list[tuple[np.dtype, list[int]]] = []
        size = 0
        for i in reversed(range(len(params))):  # backward finishes the last layers first
            shape, dt = layout[i]
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            if not groups or groups[-1][0] != dt or size + nbytes > self.bucket_bytes:
                groups.append((dt, []))
                size = 0
            groups[-1][1].append(i)
            size += nbytes
        self._buckets, self._views = [], [None] * len(params)
        for k, (dt, idx) in enumerate(groups):
            total = sum(int(np.prod(layout[i][0], dtype=np.int64)) for i in idx)
            buf = np.zeros(total + (k == 0), dt)
            slots, a = [], 0
            for i in idx:
                b = a + int(np.prod(layout[i][0], dtype=np.int64))
                slots.append((i, a, b))
                self._views[i] = buf[a:b].reshape(layout[i][0])
                a = b
            self._buckets.append((buf, slots))
        self._layout = layout
        self.stats["bytes_per_step"] = sum(b.nbytes for b, _ in self._buckets)
        self.stats["buckets"] = len(self._buckets)

    def reduce_gradients(self, grads: Sequence | None, loss: float, weight: float
                         ) -> tuple[float, list[np.ndarray]]:
        """Sum ``weight * grads`` (and ``weight * loss``) over the ranks: with ``weight`` this
        rank's share of the batch's samples, the batch's gradient and loss. ``grads`` None: an
        empty slice (nothing to add). Returns the loss and the gradients, as host arrays (views
        of the buffers, valid until the next call)."""
        t0 = time.perf_counter()
        MPI = self._MPI
        for buf, slots in self._buckets:
            if grads is None:
                buf[:] = 0
                continue
            for i, a, b in slots:
                g = grads[i]
                if isinstance(g, np.ndarray):
                    np.multiply(g.reshape(-1), weight, out=buf[a:b])
                else:  # a device array: stage it through the host (see the module docstring)
                    view = self._views[i]
                    g.copy_to_host(view)
                    view *= weight
        first = self._buckets[0][0]
        first[-1] = loss * weight if grads is not None else 0.0
        if self.poll is None:
            for buf, _ in self._buckets:
                self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        else:  # non-blocking: test, and give the core away between tests
            reqs = [self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                    for buf, _ in self._buckets]
            while not MPI.Request.Testall(reqs):
                time.sleep(self.poll) if self.poll else os.sched_yield()
        self.stats["steps"] += 1
        self.stats["reduce_s"] += time.perf_counter() - t0
        return float(first[-1]), self._views

    def reduce_metrics(self, metrics: Sequence[Sequence[Any]], *sums: float
                       ) -> tuple[float, ...]:
        """Sum every metric's running ``total`` and ``count`` over the ranks (in place), and
        the extra numbers ``sums``; returns the summed ``sums``."""
        ms = [m for group in metrics for m in group
              if hasattr(m, "total") and hasattr(m, "count")]
        v = np.array([*sums, *[x for m in ms for x in (m.total, m.count)]], np.float64)
        self.comm.Allreduce(self._MPI.IN_PLACE, v, op=self._MPI.SUM)
        k = len(sums)
        for j, m in enumerate(ms):
            m.total = float(v[k + 2 * j])
            c = v[k + 2 * j + 1]
            m.count = int(round(c)) if isinstance(m.count, (int, np.integer)) else float(c)
        return tuple(float(x) for x in v[:k])

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (epoch logs, the decision to stop)."""
        return self.comm.bcast(value, root=0)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """An exception inside ends every rank: message naming this rank, then MPI_Abort."""
        if self.size == 1 or not self.abort_on_error:
            yield
            return
        try:
            yield
        except BaseException as e:  # noqa: B036 - any failure must end every rank
            self.abort(e)

    def abort(self, error: BaseException) -> None:
        """Print the traceback and ``rank k of N failed: ...`` to stderr, then MPI_Abort: the
        process manager (mpiexec) ends every rank and exits non-zero."""
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        sys.stdout.flush()
        sys.stderr.write(f"{tb}graphnet.distribute: rank {self.rank} of {self.size} failed: "
                         f"{type(error).__name__}: {error}\n")
        sys.stderr.flush()
        # give mpiexec's output forwarding a moment: MPI_Abort ends every rank at once, and a
        # message still in the process manager's pipes is lost (seen on a loaded machine)
        time.sleep(0.5)
        self.comm.Abort(1)
        os._exit(1)  # MPICH's MPI_Abort can return before the process manager ends this rank
