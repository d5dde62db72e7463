"""Core engine speed beside PyTorch on the CPU, in one process, alternating.

(a) a 784-256-256-10 ReLU MLP, forward + backward at batch 128, through gn.compile;
(b) the executor's overhead per node on a tiny 2-16-1 MLP at batch 32, in microseconds;
(c) the threading guard: a parallel loop right after a GEMM (the OpenMP-vs-BLAS fight).

Run: ``python benchmarks/bench_core.py`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import alternate, table  # noqa: E402

import graphnet as gn  # noqa: E402

try:
    import torch
except ImportError:  # the graphnet rows still print
    torch = None


def mlp_graph(sizes: list[int], batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    with gn.Graph("bench"):
        x = gn.Input((sizes[0],), name="x")
        regression = sizes[-1] == 1
        y = gn.Input((1,) if regression else (), dtype="float32" if regression else "int64",
                     name="y")
        h, params = x, []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = gn.Parameter(rng.normal(0, np.sqrt(2 / a), (a, b)), name=f"W{i}")
            bias = gn.Parameter(np.zeros(b), name=f"b{i}")
            last = i == len(sizes) - 2
            h = gn.dense(h, W, bias, activation=None if last else "relu")
            params += [W, bias]
        loss = gn.mse(h, y) if regression else gn.softmax_cross_entropy(h, y)
    xb = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    yb = rng.normal(size=(batch, 1)).astype(np.float32) if regression \
        else rng.integers(0, sizes[-1], batch)
    prog = gn.compile(loss, wrt=params)
    return prog, {x: xb, y: yb}, params


def torch_mlp(sizes: list[int], batch: int, seed: int = 0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    rng = np.random.default_rng(seed)
    xb = torch.from_numpy(rng.normal(size=(batch, sizes[0])).astype(np.float32))
    if sizes[-1] == 1:
        yb = torch.from_numpy(rng.normal(size=(batch, 1)).astype(np.float32))
        lossf = torch.nn.MSELoss()
    else:
        yb = torch.from_numpy(rng.integers(0, sizes[-1], batch))
        lossf = torch.nn.CrossEntropyLoss()

    def step():
        net.zero_grad(set_to_none=True)
        loss = lossf(net(xb), yb)
        loss.backward()
        return loss

    return step


def replay(prog, feeds):
    """The same op calls a step makes, with the executor taken away: each node's forward
    and backward called on the arrays it saw. step time - replay time = executor cost."""
    vals = prog._feed(feeds)
    calls = []
    for op, ctx, ins, o in prog._fwd:
        xs = [vals[i] for i in ins]
        vals[o] = op.forward(ctx, *xs)
        calls.append((op.forward, (ctx, *xs)))
    grads = {prog._loss_idx: np.ones_like(vals[prog._loss_idx])}
    for op, ctx, ins, o, _ in prog._bwd:
        xs = [vals[i] for i in ins]
        args = (ctx, grads[o], vals[o], *xs)
        for i, gi in zip(ins, op.backward(*args)):
            grads[i] = gi
        calls.append((op.backward, args))

    def run():
        for f, a in calls:
            f(*a)

    return run


def gemm_then_loop_ms(number: int) -> float:
    """A parallel elementwise kernel fed by a GEMM: slow when the thread pools fight."""
    a = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    be = gn.core.backend.get_backend("cpu")

    exp, mul = be.exp.parallel, be.mul.parallel  # the parallel twins, whatever the size

    def step():
        c = a @ a
        return exp(mul(c, c))

    return alternate({"x": step}, number, rounds=5)["x"] * 1e3


def layer_ms(layer: str, number: int) -> str:
    """gemm_then_loop_ms in a subprocess under one threading layer (chosen at import)."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import bench_core; "
            f"print(bench_core.gemm_then_loop_ms({number}))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if r.returncode:
        return f"unavailable ({r.stderr.strip().splitlines()[-1][:40]})"
    return f"{float(r.stdout.split()[-1]):.3f} ms"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    number, rounds = (5, 3) if args.quick else (30, 7)
    import numba

    import graphnet.kernels.jit  # noqa: F401 - picks the threading layer
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads; torch "
          f"{torch.__version__ if torch else 'not installed'} "
          f"({torch.get_num_threads() if torch else '-'} threads)")

    rows = []
    big, feeds, _ = mlp_graph([784, 256, 256, 10], 128)
    cases = {"graphnet": lambda: big(feeds)}
    if torch is not None:
        cases["torch"] = torch_mlp([784, 256, 256, 10], 128)
    t = alternate(cases, number, rounds)
    ratio = f"{t['torch'] / t['graphnet']:.2f}x" if torch else "-"
    rows.append(("MLP 784-256-256-10 fwd+bwd, batch 128", f"{t['graphnet'] * 1e3:.3f} ms",
                 f"{t['torch'] * 1e3:.3f} ms" if torch else "-", ratio))

    tiny, tfeeds, _ = mlp_graph([2, 16, 1], 32)
    steps = len(tiny._fwd) + len(tiny._bwd)
    cases = {"graphnet": lambda: tiny(tfeeds), "ops alone": replay(tiny, tfeeds)}
    if torch is not None:
        cases["torch"] = torch_mlp([2, 16, 1], 32)
    t = alternate(cases, number * 20, rounds)
    ratio = f"{t['torch'] / t['graphnet']:.2f}x" if torch else "-"
    rows.append(("MLP 2-16-1 fwd+bwd (MSE), batch 32", f"{t['graphnet'] * 1e6:.1f} us",
                 f"{t['torch'] * 1e6:.1f} us" if torch else "-", ratio))
    rows.append((f"  the same op calls without the executor ({steps} fwd+bwd steps)",
                 f"{t['ops alone'] * 1e6:.1f} us", "-", "-"))
    rows.append(("  executor overhead per node: (step - ops alone) / steps",
                 f"{(t['graphnet'] - t['ops alone']) * 1e6 / steps:.2f} us", "-", "-"))
    rows.append((f"GEMM 256^3 then parallel exp(c*c), {numba.config.THREADING_LAYER} layer",
                 f"{gemm_then_loop_ms(number):.3f} ms", "-", "-"))
    for layer in ("omp", "workqueue"):
        rows.append((f"  the same in a fresh process, NUMBA_THREADING_LAYER={layer}",
                     layer_ms(layer, number), "-", "-"))
    print(table(rows, ("workload", "graphnet", "torch", "torch/graphnet (>1: faster)")))


if __name__ == "__main__":
    main()
