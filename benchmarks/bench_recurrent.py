"""Fused recurrent ops beside PyTorch on the CPU, in one process, alternating.

One training step's forward + backward through time of an LSTM and a SimpleRNN over a
batch of 32 sequences of 50 steps, 64 features, 128 units (``mean(h^2)`` over every step as
the loss, gradients of the weights; x is data). graphnet runs one fused node through
``gn.compile``; PyTorch runs ``nn.LSTM`` / ``nn.RNN`` (batch_first) and ``loss.backward()``.

Run: ``python benchmarks/bench_recurrent.py`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import alternate, table  # noqa: E402

import graphnet as gn  # noqa: E402

try:
    import torch
except ImportError:  # the graphnet rows still print
    torch = None

BATCH, STEPS, FEATURES, UNITS = 32, 50, 64, 128


def graphnet_step(cell: str, x: np.ndarray, weights: list[np.ndarray]):
    with gn.Graph("bench"):
        xi = gn.Input((STEPS, FEATURES), name="x")
        W, U, b = (gn.Parameter(w, name=n) for w, n in zip(weights, ("W", "U", "b")))
        y = gn.lstm(xi, W, U, b) if cell == "lstm" else gn.simple_rnn(xi, W, U, b)
        loss = gn.mean(y * y)
    prog = gn.compile(loss, wrt=[W, U, b])
    return lambda: prog({xi: x})


def torch_step(cell: str, x: np.ndarray, weights: list[np.ndarray]):
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.RNN
    net = cls(FEATURES, UNITS, batch_first=True)
    with torch.no_grad():  # Keras layouts -> PyTorch: transposed kernels, one bias
        net.weight_ih_l0.copy_(torch.from_numpy(weights[0].T))
        net.weight_hh_l0.copy_(torch.from_numpy(weights[1].T))
        net.bias_ih_l0.copy_(torch.from_numpy(weights[2]))
        net.bias_hh_l0.zero_()
    return train_step(net, torch.from_numpy(x))


def train_step(net, xt):
    """PyTorch's forward + backward of the benchmark's loss, ``mean(h^2)`` over every step."""
    def step():
        net.zero_grad(set_to_none=True)
        out, _ = net(xt)
        loss = (out * out).mean()
        loss.backward()
        return loss
    return step


def one_thread(step):
    """``step`` with PyTorch on one thread, as graphnet's time loop runs its BLAS."""
    def run():
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return step()
        finally:
            torch.set_num_threads(n)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    rows = []
    for cell, gates in (("lstm", 4), ("simple_rnn", 1)):
        n = gates * UNITS
        weights = [rng.normal(0, 1 / np.sqrt(FEATURES), (FEATURES, n)).astype(np.float32),
                   rng.normal(0, 1 / np.sqrt(UNITS), (UNITS, n)).astype(np.float32),
                   np.zeros(n, np.float32)]
        cases = {"graphnet": graphnet_step(cell, x, weights)}
        if torch is not None:
            cases["torch"] = torch_step(cell, x, weights)
            cases["torch 1 thread"] = one_thread(torch_step(cell, x, weights))
        t = alternate(cases, number=3 if args.quick else 10, rounds=3 if args.quick else 7)
        for case, secs in t.items():
            rows.append((cell, case, f"{secs * 1e3:.2f}", f"{secs / t['graphnet']:.2f}"))
    print(f"forward + backward, batch {BATCH}, {STEPS} steps, {FEATURES} features, {UNITS} "
          f"units, float32, CPU ({os.cpu_count()} cores)")
    print(table(rows, ("cell", "engine", "ms per step", "time / graphnet's")))


if __name__ == "__main__":
    main()
