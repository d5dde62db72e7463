"""Smoke tests of the Lecture 1 demos: each --quick run, in-process, with checks on its summary."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

from demos.__main__ import available, main

pytestmark = pytest.mark.lecture1


def quick(name: str, tmp_path) -> dict:
    summary = importlib.import_module(f"demos.{name}").run(quick=True, out=tmp_path, seed=0)
    pics = summary.get("pictures") or [summary["picture"]]
    for p in pics:
        assert (tmp_path / p.rsplit("/", 1)[-1]).stat().st_size > 5_000, p
    return summary


def test_registry_lists_lecture1_demos(capsys):
    names = available()
    for n in ("lecture1_perceptron", "lecture1_gradient_descent", "lecture1_minibatch",
              "lecture1_regularization"):
        assert names[n] and not names[n].startswith(" ")
    assert main([]) == 0
    assert "lecture1_perceptron" in capsys.readouterr().out


def test_perceptron(tmp_path):
    s = quick("lecture1_perceptron", tmp_path)
    assert s["accuracy"] > 0.9
    assert s["final_loss"] < 0.3
    assert len(s["W"]) == 2 and isinstance(s["w0"], float)


def test_gradient_descent(tmp_path):
    s = quick("lecture1_gradient_descent", tmp_path)
    best = s["minimum_loss"]
    # the good rate gets close to the minimum, the small one does not, the large one diverges
    assert s["gd_good"]["final_loss"] < 1.5 * best
    assert s["gd_too_small"]["final_loss"] > 2 * best
    assert s["gd_too_large"]["final_loss"] > s["gd_too_small"]["final_loss"]
    for opt in ("SGD + momentum 0.9", "RMSProp", "Adam"):
        assert s[opt]["final_loss"] < 3 * best


def test_minibatch(tmp_path):
    s = quick("lecture1_minibatch", tmp_path)
    noise = s["gradient_noise"]
    assert noise["B=1"] > noise["B=16"] > noise["B=256"] > 0
    mb = s["mini-batch 100"]
    assert mb["reached_target"] is not None
    assert mb["final_loss"] < s["full batch"]["final_loss"]


def test_regularization(tmp_path):
    s = quick("lecture1_regularization", tmp_path)
    for label in ("no dropout", "dropout 0.5"):
        r = s[label]
        assert r["test_accuracy"] > 0.9
        assert 1 <= r["best_epoch"] <= r["epochs_run"]
    if shutil.which("dot"):  # the network, its two modes and its gradients, drawn
        assert len(s["drawings"]) == 3
        assert all(Path(p).stat().st_size > 5000 for p in s["drawings"])


def test_cli_runs_one_demo(tmp_path, capsys):
    assert main(["lecture1_perceptron", "--quick", "--out", str(tmp_path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert (tmp_path / "lecture1_perceptron.png").exists()
