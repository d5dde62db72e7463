"""benchmarks/bench_workloads.py runs on tiny shapes and prints every row (never a speed)."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load():
    path = os.path.join(ROOT, "benchmarks", "bench_workloads.py")
    spec = importlib.util.spec_from_file_location("bench_workloads", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_workloads"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_quick_prints_every_row_with_equal_parameter_counts(capsys):
    pytest.importorskip("torch")
    bench = _load()
    bench.main(["--quick", "--no-first-step"])
    lines = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln.split() for ln in lines[3:] if ln.strip()}
    assert set(rows) == set(bench.NAMES)
    for name, cols in rows.items():
        assert cols[-1] == cols[-2], f"{name}: parameter counts differ: {cols}"


def test_first_step_of_the_lstm_workload_runs():
    pytest.importorskip("torch")
    assert _load().first_step(quick=True) > 0
