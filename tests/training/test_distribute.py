"""gn.distribute.MPIDataParallel: ``mpiexec -n 2`` training equals one process, faults end
every rank, checkpoints resume on any number of ranks (issue 14).

The MPI runs are subprocesses of ``tests/training/mpi_scripts/fit.py``; they are skipped when
mpi4py or mpiexec is missing (CI installs the ``mpi`` extra: mpi4py and the mpich wheel).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from tests.training.mpi_scripts import fit as script

pytestmark = pytest.mark.lecture1

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # seconds; a hang fails the test instead of the suite


def _mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's, matching mpi4py), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _have_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return _mpiexec() is not None


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and mpiexec "
                               "(pip install 'graphnet[mpi]')")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def launch(n: int | None, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m tests.training.mpi_scripts.fit args`` (n None: no mpiexec)."""
    cmd = [sys.executable, "-m", "tests.training.mpi_scripts.fit", *args]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n), *cmd]
    return subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                          timeout=TIMEOUT)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def result(folder: Path, rank: int = 0) -> tuple[list[np.ndarray], int, dict]:
    with np.load(folder / f"rank{rank}.npz") as f:
        ws = [f[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in f.files))]
        return ws, int(f["iterations"]), json.loads(str(f["history"]))


def close(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(gn.GraphError, match=r"graphnet\[mpi\]"):
        gn.distribute.MPIDataParallel()


def test_compile_refuses_what_is_no_strategy():
    m = script.build("mlp")
    with pytest.raises(gn.GraphError, match="MPIDataParallel"):
        m.compile(loss="mse", distribute="mpi")


@needs_mpi
@pytest.mark.parametrize("kind,poll,buckets", [("mlp", "none", 4), ("lstm", "0", 1)])
def test_two_ranks_train_as_one_process(kind, poll, buckets, tmp_path):
    """3 epochs, shuffled, uneven last batches (the MLP's has one sample: an empty slice),
    validation and accuracy: the same weights, step count and logs as one process; with a
    blocking Allreduce of 4 small buckets (MLP) and a polled Iallreduce of one (LSTM)."""
    script.main(["--model", kind, "--out", str(tmp_path / "one")])
    r = ok(launch(2, "--model", kind, "--out", str(tmp_path / "two"), "--dist", "--poll",
                  poll, "--bucket-bytes", "200" if buckets > 1 else str(8 << 20)))
    with np.load(tmp_path / "two" / "rank0.npz") as f:
        assert int(f["buckets"]) == buckets
    ref, it, hist = result(tmp_path / "one")
    w0, it0, h0 = result(tmp_path / "two", 0)
    w1, it1, h1 = result(tmp_path / "two", 1)
    for u, v in zip(w0, w1):  # the ranks hold the very same weights
        np.testing.assert_array_equal(u, v)
    close(w0, ref)
    assert it0 == it1 == it
    assert h0 == h1 and set(h0) == set(hist) == {"loss", "accuracy", "val_loss",
                                                 "val_accuracy"}
    for k in hist:
        np.testing.assert_allclose(h0[k], hist[k], rtol=1e-5)
    assert r.stdout.count("Epoch 3/3") == 1  # rank 0 alone reports


@needs_mpi
def test_one_process_without_mpiexec_runs_as_before(tmp_path):
    """MPIDataParallel in a plain ``python`` (MPI's singleton, size 1) steps aside: the same
    bits as distribute=None in a like process."""
    ok(launch(None, "--out", str(tmp_path / "ref"), "--epochs", "1"))
    ok(launch(None, "--out", str(tmp_path / "one"), "--dist", "--epochs", "1"))
    for u, v in zip(result(tmp_path / "ref")[0], result(tmp_path / "one")[0]):
        np.testing.assert_array_equal(u, v)


@needs_mpi
@pytest.mark.parametrize("where,rank", [("begin", 1), ("batch", 0), ("data", 1)])
def test_a_failing_rank_ends_every_rank(where, rank, tmp_path):
    """An exception before the first allreduce, in the middle of an epoch, or a rank with
    other data: mpiexec exits non-zero, names the rank, and nothing hangs (the timeout)."""
    r = launch(2, "--out", str(tmp_path), "--dist", "--fail", where, "--fail-rank", str(rank))
    assert r.returncode != 0
    if where == "data":  # every rank raises; whichever aborts first reports
        assert re.search(r"rank [01] of 2 failed: GraphError: the ranks disagree", r.stderr)
        assert "rank 1: (95, 4, 4)" in r.stderr
    else:
        assert f"rank {rank} of 2 failed: RuntimeError: injected failure" in r.stderr
    assert not (tmp_path / "rank0.npz").exists()


@needs_mpi
def test_early_stopping_stops_every_rank_at_the_same_epoch(tmp_path):
    script.main(["--out", str(tmp_path / "one"), "--epochs", "6", "--stop"])
    ok(launch(2, "--out", str(tmp_path / "two"), "--dist", "--epochs", "6", "--stop"))
    _, it, hist = result(tmp_path / "one")
    (w0, it0, h0), (w1, it1, h1) = result(tmp_path / "two", 0), result(tmp_path / "two", 1)
    assert len(hist["loss"]) == len(h0["loss"]) == len(h1["loss"]) == 2
    assert it == it0 == it1 == 2 * 7
    for u, v in zip(w0, w1):
        np.testing.assert_array_equal(u, v)


@needs_mpi
def test_a_checkpoint_of_rank_0_resumes_on_one_and_two_ranks(tmp_path):
    ckpt = tmp_path / "ckpt.graphnet"
    r = ok(launch(2, "--out", str(tmp_path / "first"), "--dist", "--epochs", "2",
                  "--save", str(ckpt)))
    assert r.stdout.count("saving model to") == 2  # rank 0 writes, once per epoch
    assert ckpt.exists() and not list(tmp_path.glob(".tmp-*"))
    more = ["--resume", str(ckpt), "--epochs", "4", "--initial-epoch", "2"]
    script.main([*more, "--out", str(tmp_path / "one")])
    ok(launch(2, *more, "--out", str(tmp_path / "two"), "--dist"))
    start = result(tmp_path / "first")[0]
    one, it1, _ = result(tmp_path / "one")
    two, it2, h2 = result(tmp_path / "two")
    assert it1 == it2 == 4 * 7  # the optimizer's steps came back from the file
    assert list(h2["loss"]) and len(h2["loss"]) == 2
    close(two, one)
    assert max(np.abs(a - b).max() for a, b in zip(one, start)) > 1e-3  # it trained on


@needs_mpi
@pytest.mark.cuda
def test_cuda_device_stages_gradients_through_the_host(tmp_path):
    """device="cuda" on the simulator: device gradients are copied into the host buffers."""
    script.main(["--out", str(tmp_path / "cpu"), "--epochs", "1", "--batch", "32"])
    ok(launch(2, "--out", str(tmp_path / "cuda"), "--dist", "--device", "cuda", "--epochs",
              "1", "--batch", "32",
              env=_env() if os.environ.get("GRAPHNET_REAL_GPU") == "1"
              else _env(NUMBA_ENABLE_CUDASIM="1")))
    close(result(tmp_path / "cuda")[0], result(tmp_path / "cpu")[0])
