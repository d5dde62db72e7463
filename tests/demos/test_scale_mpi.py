"""Smoke test of the scale_mpi demo under ``mpiexec -n 2`` (skipped without mpi4py/mpiexec)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.training.test_distribute import ROOT, TIMEOUT, _env, _mpiexec, needs_mpi

pytestmark = pytest.mark.lecture1


@needs_mpi
def test_scale_mpi_quick_on_two_processes(tmp_path):
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "demos", "scale_mpi",
                        "--quick", "--out", str(tmp_path)], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("== scale_mpi") == 1  # rank 0 alone reports
    lines = {k.strip(): v for k, _, v in (ln.partition(": ") for ln in r.stdout.splitlines())}
    one, two = ast.literal_eval(lines["1 process"]), ast.literal_eval(lines["2 processes"])
    assert one["samples_per_s"] > 0 and two["samples_per_s"] > 0
    assert float(lines["scaling_efficiency"]) > 0
    # the same updates: the same loss and test accuracy to float32 rounding
    assert two["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=0.01)
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-3)
