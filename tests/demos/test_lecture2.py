"""Smoke tests of the Lecture 2 demos: each --quick run, in-process, with checks on its summary."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from demos.__main__ import available, run_one

pytestmark = pytest.mark.lecture2


def quick(name: str, tmp_path) -> dict:
    summary = importlib.import_module(f"demos.{name}").run(quick=True, out=tmp_path, seed=0)
    for p in summary["pictures"]:
        assert Path(p).parent == tmp_path
        assert Path(p).stat().st_size > 5_000, p
    return summary


def test_registry_lists_lecture2_demos_in_order():
    names = [n for n in available() if n.startswith("lecture2_")]
    assert names == ["lecture2_rnn_gradients", "lecture2_embeddings", "lecture2_music",
                     "lecture2_attention"]


def test_rnn_gradients(tmp_path):
    s = quick("lecture2_rnn_gradients", tmp_path)
    tanh, relu = s["tanh RNN, orthogonal init"], s["ReLU RNN, identity init"]
    lstm1, lstm3 = s["LSTM, forget bias 1 (Keras)"], s["LSTM, forget bias 3"]
    big, clipped = s["ReLU RNN, 1.087 I, SGD"], s["ReLU RNN, 1.087 I, SGD + clipping"]
    # at initialization the gradient reaching step 0 shrinks (tanh, LSTM), holds (identity)
    # or grows (1.087 I); an open forget gate carries it further back
    assert tanh["grad_first_over_last_init"] < 0.5
    assert lstm1["grad_first_over_last_init"] < 0.5 < lstm3["grad_first_over_last_init"]
    assert 0.5 < relu["grad_first_over_last_init"] < 2
    assert big["grad_first_over_last_init"] > 1.5
    assert clipped["grad_first_over_last_init"] == big["grad_first_over_last_init"]
    # clipping changes the steps, not the gradients; it lets SGD learn the task
    assert not clipped["diverged"] and clipped["test_accuracy"] > s["chance"] + 0.1
    for name in ("tanh RNN, orthogonal init", "ReLU RNN, identity init",
                 "LSTM, forget bias 1 (Keras)", "LSTM, forget bias 3"):
        assert 0 <= s[name]["test_accuracy"] <= 1 and not s[name]["diverged"]
    if shutil.which("dot"):  # the unrolled RNN coloured by its gradients
        assert any(p.endswith("lecture2_unrolled_gradients.png") for p in s["pictures"])


def test_music(tmp_path, capsys):
    s = run_one("lecture2_music", quick=True, out=tmp_path, seed=0)
    printed = capsys.readouterr().out
    for p in s["pictures"]:
        assert Path(p).parent == tmp_path and Path(p).stat().st_size > 5_000, p
    assert s["vocab_size"] == 83
    # the LSTM's and the causal Transformer's validation perplexities, both printed, finite
    # and below a uniform guess over the 83 characters
    lstm, trans = s["val_perplexity"], s["transformer"]["val_perplexity"]
    assert f"val_perplexity: {lstm}" in printed and f"'val_perplexity': {trans}" in printed
    assert np.isfinite(lstm) and np.isfinite(trans) and 1 < lstm < 83 and 1 < trans < 83
    assert s["transformer"]["blocks"] == 2
    assert len(s["pictures"]) == (2 if shutil.which("dot") else 1)
    # cross-entropy per character below a uniform guess over the 83 characters
    assert s["final_val_loss"] < 4.42 and s["perplexity"] < 83
    # by position: the windows' first 10 and the other 30 (quick windows are 40 long) make
    # up fit's validation loss; reading the validation text in order is scored too
    window = (10 * s["val_loss_first_10"] + 30 * s["val_loss_after_10"]) / 40
    assert abs(window - s["final_val_loss"]) < 2e-3
    assert 0 < s["val_loss_in_order"] < 4.42
    assert np.isclose(s["val_perplexity_in_order"], np.exp(s["val_loss_in_order"]), rtol=1e-3)
    abc = tmp_path / "lecture2_generated_songs.abc"
    assert str(abc) in s["files"]
    text = abc.read_text(encoding="utf-8")
    assert text.count("% temperature") == 4 and "\nX" in text  # songs start from "X:"
    assert all(0 <= v <= 1 for v in s["valid_fraction"].values())
    assert s["sample"].startswith("X:")


def test_attention(tmp_path):
    s = quick("lecture2_attention", tmp_path)
    with_pe, without = s["with positional encoding"], s["without positional encoding"]
    assert with_pe["token_accuracy"] > without["token_accuracy"] + 0.1
    assert with_pe["token_accuracy"] > 2 * s["chance"]
    # the trained head looks at the mirrored position more than uniform attention would
    assert with_pe["attention_on_mirror_position"] > 2 / s["length"]
    assert with_pe["final_val_loss"] < without["final_val_loss"]
    assert len(s["pictures"]) == (3 if shutil.which("dot") else 2)


def test_embeddings(tmp_path):
    s = quick("lecture2_embeddings", tmp_path)
    # learned vectors put each word next to a word of its topic; one-hot ties everywhere
    assert s["nearest_neighbour_agreement_learned"] >= 0.9
    assert s["nearest_neighbour_agreement_one_hot"] < 0.25
    assert s["one_hot_distance"] == pytest.approx(2 ** 0.5, rel=1e-3)
    assert 0 < s["pca_variance_explained"] <= 1
