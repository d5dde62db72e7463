"""The fused GRU beside PyTorch's nn.GRU on the CPU, in one process, alternating.

The sizes and loss of ``bench_recurrent.py`` (batch 32, 50 steps, 64 features, 128 units,
``mean(h^2)`` over every step, gradients of the weights; x is data), for Keras 3's default
``reset_after=True`` (PyTorch's form) and ``reset_after=False``. PyTorch's weights are the
same numbers with its gate order (r, z, n) and transposed kernels.

Run: ``python benchmarks/bench_gru.py`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_recurrent import (  # noqa: E402
    BATCH,
    FEATURES,
    STEPS,
    UNITS,
    one_thread,
    torch,
    train_step,
)
from common import alternate, table  # noqa: E402

import graphnet as gn  # noqa: E402


def graphnet_step(x: np.ndarray, weights: list[np.ndarray], reset_after: bool):
    with gn.Graph("bench"):
        xi = gn.Input((STEPS, FEATURES), name="x")
        W, U, b = (gn.Parameter(w, name=n) for w, n in zip(weights, ("W", "U", "b")))
        y = gn.gru(xi, W, U, b, reset_after=reset_after)
        loss = gn.mean(y * y)
    prog = gn.compile(loss, wrt=[W, U, b])
    return lambda: prog({xi: x})


def torch_step(x: np.ndarray, weights: list[np.ndarray]):
    net = torch.nn.GRU(FEATURES, UNITS, batch_first=True)
    u = UNITS

    def order(m):  # Keras' z, r, h -> PyTorch's r, z, n along the gate axis
        return np.ascontiguousarray(np.concatenate([m[..., u:2 * u], m[..., :u],
                                                    m[..., 2 * u:]], -1))
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(order(weights[0]).T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(order(weights[1]).T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(order(weights[2][0])))
        net.bias_hh_l0.copy_(torch.from_numpy(order(weights[2][1])))
    return train_step(net, torch.from_numpy(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    n = 3 * UNITS
    weights = [rng.normal(0, 1 / np.sqrt(FEATURES), (FEATURES, n)).astype(np.float32),
               rng.normal(0, 1 / np.sqrt(UNITS), (UNITS, n)).astype(np.float32),
               np.zeros((2, n), np.float32)]
    cases = {"graphnet": graphnet_step(x, weights, True),
             "graphnet reset_after=False": graphnet_step(x, weights[:2] + [weights[2][0]],
                                                         False)}
    if torch is not None:
        cases["torch"] = torch_step(x, weights)
        cases["torch 1 thread"] = one_thread(torch_step(x, weights))
    t = alternate(cases, number=3 if args.quick else 10, rounds=3 if args.quick else 7)
    rows = [(case, f"{secs * 1e3:.2f}", f"{secs / t['graphnet']:.2f}")
            for case, secs in t.items()]
    print(f"GRU forward + backward, batch {BATCH}, {STEPS} steps, {FEATURES} features, "
          f"{UNITS} units, float32, CPU ({os.cpu_count()} cores)")
    print(table(rows, ("engine", "ms per step", "time / graphnet's")))


if __name__ == "__main__":
    main()
