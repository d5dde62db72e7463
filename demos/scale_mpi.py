"""Past one core: data-parallel fit over MPI (mpiexec -n 2 python -m demos scale_mpi).

Every process holds the whole MLP, trains on its half of each global batch and averages the
gradients with an MPI Allreduce before the same Adam step everywhere
(gn.distribute.MPIDataParallel). Rank 0 first trains alone while the others wait, then all
ranks train together; the demo prints the samples/s of both and their test accuracy, which
agree because the two runs compute the same updates. Each process uses one BLAS and one Numba
thread, so N processes use N cores. Without mpiexec it trains on one process only and says
how to start more.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

import graphnet as gn

ORDER = 1


def make_model(hidden: int, seed: int, distribute) -> gn.Sequential:
    model = gn.Sequential([gn.layers.Dense(hidden, activation="relu", seed=seed),
                           gn.layers.Dense(hidden, activation="relu", seed=seed + 1),
                           gn.layers.Dense(10, seed=seed + 2)], input_shape=(64,))
    model.compile(optimizer=gn.optimizers.Adam(1e-3), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"], distribute=distribute)
    return model


def train(data, hidden: int, epochs: int, batch: int, seed: int, distribute) -> dict:
    """One warm-up epoch (compiles), then ``epochs`` timed ones; samples/s and accuracy."""
    (x, y), (xt, yt) = data
    make_model(hidden, seed, distribute).fit(x[:4 * batch], y[:4 * batch], batch_size=batch,
                                             epochs=1, verbose=0, seed=seed)
    model = make_model(hidden, seed, distribute)
    if distribute is not None:
        distribute.comm.Barrier()
    t0 = time.perf_counter()
    h = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, seed=seed)
    if distribute is not None:
        distribute.comm.Barrier()
    dt = time.perf_counter() - t0
    return {"samples_per_s": round(len(x) * epochs / dt), "seconds": round(dt, 2),
            "final_loss": round(h.history["loss"][-1], 4),
            "test_accuracy": round(float(np.mean(np.argmax(model.predict(xt), -1) == yt)), 4)}


def _wait(comm) -> None:
    """Wait at a barrier without spinning a core (MPI's blocking calls poll)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.005)


def run(quick: bool, out: Path, seed: int) -> dict:
    import numba
    from threadpoolctl import threadpool_limits
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # one Numba and one BLAS thread per process
    try:
        with threadpool_limits(1):
            return _run(quick, seed)
    finally:
        numba.set_num_threads(threads)


def _run(quick: bool, seed: int) -> dict:
    try:
        dist = gn.distribute.MPIDataParallel()
    except gn.GraphError as e:
        dist, missing = None, str(e)
    size = dist.size if dist else 1
    if dist is not None and not dist.is_chief:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - rank 0 alone reports
    data = gn.datasets.digits()
    hidden, epochs, batch = (64, 2, 64) if quick else (512, 10, 128)
    summary: dict = {"processes": size}
    if size == 1:
        summary["1 process"] = train(data, hidden, epochs, batch, seed, None)
        summary["note"] = ("start more processes with: mpiexec -n 2 python -m demos scale_mpi"
                           if dist else missing)
        return summary
    one = None
    if dist.is_chief:  # rank 0 alone: the plain one-process loop
        one = train(data, hidden, epochs, batch, seed, None)
    _wait(dist.comm)
    many = train(data, hidden, epochs, batch, seed, dist)
    summary["1 process"] = one
    summary[f"{size} processes"] = many
    if one is not None:
        summary["speedup"] = round(many["samples_per_s"] / one["samples_per_s"], 2)
        summary["scaling_efficiency"] = round(summary["speedup"] / size, 2)
        print(f"samples/s: 1 process {one['samples_per_s']}, {size} processes "
              f"{many['samples_per_s']} (x{summary['speedup']})")
    return summary
