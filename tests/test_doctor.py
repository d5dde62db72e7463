"""python -m graphnet.doctor: one line per piece of the machine, exit 0 whatever is missing."""

import os
import subprocess
import sys

import pytest

from graphnet import doctor

LABELS = ["Python", "graphnet", "NumPy", "Numba", "BLAS", "Graphviz dot", "CUDA",
          "Numba cache", "optional"]


def _lines(text):
    return {ln.strip().split(":", 1)[0]: ln.split(":", 1)[1].strip()
            for ln in text.splitlines()[1:] if ":" in ln}


def test_the_command_lists_every_piece_and_exits_0():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    out = subprocess.run([sys.executable, "-m", "graphnet.doctor"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("graphnet doctor")
    lines = _lines(out.stdout)
    assert list(lines) == LABELS
    assert lines["Python"].startswith(sys.version.split()[0])
    import numba
    import numpy as np
    assert lines["NumPy"] == np.__version__
    assert lines["Numba"].startswith(numba.__version__) and "threading layer" in lines["Numba"]
    assert "could not check" not in out.stdout
    for name in doctor.OPTIONAL:
        assert name in lines["optional"]


def test_missing_pieces_are_lines_not_crashes(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)  # no Graphviz
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")

    def broken():
        raise RuntimeError("boom")

    def absent():
        import graphnet_no_such_module  # noqa: F401

    real = doctor.checks
    monkeypatch.setattr(doctor, "checks", lambda: real() + [("broken", broken),
                                                            ("absent", absent)])
    monkeypatch.setattr(doctor, "_version", lambda dist: None)  # no optional package
    assert doctor.main() == 0
    lines = _lines(capsys.readouterr().out)
    assert lines["Graphviz dot"].startswith("missing") and "apt-get install graphviz" in \
        lines["Graphviz dot"]
    assert lines["CUDA"].startswith("the simulator")
    assert lines["broken"] == "could not check (RuntimeError: boom)"
    assert lines["absent"].startswith("missing (No module named 'graphnet_no_such_module')")
    assert lines["optional"].startswith("none; not installed: torch, onnx")


@pytest.mark.parametrize("env,want", [({}, "graphnet's choice"),
                                      ({"NUMBA_THREADING_LAYER": "omp"}, "NUMBA_THREADING_LAYER")])
def test_the_threading_layer_says_who_chose_it(monkeypatch, env, want):
    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert want in doctor.numba()
