"""model.fit throughput (samples/s) beside PyTorch's equivalent training loop on the CPU.

(a) the 784-256-256-10 ReLU MLP, batch 128, Adam (PyTorch: default Adam and fused Adam);
(b) a 2-16-1 MLP, batch 32, SGD, where per-step overhead dominates.
Each case trains one epoch per round; cases alternate within one process.

Run: ``python benchmarks/bench_fit.py`` (``--quick`` for fewer rounds).
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
except ImportError:
    torch = None


def data(n: int, d: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, n) if classes > 1 else rng.normal(size=(n, 1)).astype(
        np.float32)
    return x, y


def graphnet_epoch(sizes, batch, opt, x, y):
    layers = [gn.layers.Dense(s, activation="relu") for s in sizes[1:-1]]
    model = gn.Sequential([*layers, gn.layers.Dense(sizes[-1])], input_shape=(sizes[0],))
    loss = "mse" if sizes[-1] == 1 else "sparse_softmax_cross_entropy"
    model.compile(optimizer=opt, loss=loss)
    return lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)


def torch_epoch(sizes, batch, make_opt, x, y):
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt = make_opt(net.parameters())
    lossf = torch.nn.MSELoss() if sizes[-1] == 1 else torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        for s in range(0, len(xt), batch):
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xt[s:s + batch]), yt[s:s + batch])
            loss.backward()
            opt.step()

    return epoch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    rounds = 3 if args.quick else 7
    rows = []

    n = 2560 if args.quick else 12800
    x, y = data(n, 784, 10)
    sizes = [784, 256, 256, 10]
    cases = {"graphnet": graphnet_epoch(sizes, 128, gn.optimizers.Adam(1e-3), x, y)}
    if torch is not None:
        cases["torch Adam"] = torch_epoch(sizes, 128, lambda p: torch.optim.Adam(p, 1e-3), x, y)
        cases["torch Adam(fused)"] = torch_epoch(
            sizes, 128, lambda p: torch.optim.Adam(p, 1e-3, fused=True), x, y)
    t = alternate(cases, 1, rounds, warmup=1)
    for k, v in t.items():
        rows.append(("MLP 784-256-256-10, batch 128, Adam", k, f"{n / v:,.0f}",
                     f"{v / t['graphnet']:.2f}"))

    n = 3200 if args.quick else 16000
    x, y = data(n, 2, 1)
    sizes = [2, 16, 1]
    cases = {"graphnet": graphnet_epoch(sizes, 32, gn.optimizers.SGD(0.01), x, y)}
    if torch is not None:
        cases["torch SGD"] = torch_epoch(sizes, 32, lambda p: torch.optim.SGD(p, 0.01), x, y)
    t = alternate(cases, 1, rounds, warmup=1)
    for k, v in t.items():
        rows.append(("MLP 2-16-1, batch 32, SGD", k, f"{n / v:,.0f}", f"{v / t['graphnet']:.2f}"))
    print(table(rows, ("workload", "engine", "samples/s", "graphnet speed-up")))


if __name__ == "__main__":
    main()
