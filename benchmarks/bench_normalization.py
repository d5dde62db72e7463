"""Normalization speed beside PyTorch on the CPU, in one process, alternating; and whether
folding batch norm into the convolution before it pays at inference.

(a) batch norm, training (batch statistics + moving update), forward and forward + backward,
    on (64, 28, 28, 32): after a CNN's first convolution;
(b) layer norm over the last axis, forward and forward + backward, on (32, 64, 128): a
    Transformer block's activations;
(c) inference of conv 3x3 same (64, 28, 28, 16) -> 32, batch norm, ReLU: three nodes
    (conv, batch_norm, relu) against one conv node whose kernel and bias have the batch norm
    folded in (``W' = W gamma rstd``, ``b' = (b - moving_mean) gamma rstd + beta``) with the
    ReLU fused; the difference is what a fused conv + batch-norm + relu path could save.

Measured 2026-12-02 on the 2-core machine under load (other jobs running, load 4-5), torch
2.13 on one thread (``--torch-threads 1``): batch norm fwd 3.2 ms (torch NCHW 5.9, channels
last 2.4), fwd+bwd 7.7 ms (10.5, 7.2); layer norm fwd 0.12 ms (0.17), fwd+bwd 0.66 ms (1.3).
Folding batch norm into the conv at inference saved -5 to 6 % (30-37 ms either way): the
convolution's GEMM dominates, so graphnet has no fused conv + batch-norm + relu path.

Run: ``python benchmarks/bench_normalization.py`` (``--quick`` for fewer rounds).
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
    import torch.nn.functional as F
except ImportError:  # the graphnet rows still print
    torch = None


def _bn_params(C, rng):
    return (rng.normal(size=C).astype(np.float32), rng.normal(size=C).astype(np.float32),
            rng.normal(size=C).astype(np.float32), rng.uniform(0.5, 2, C).astype(np.float32))


def gn_norm(kind: str, x: np.ndarray, backward: bool):
    rng = np.random.default_rng(1)
    C = x.shape[-1]
    with gn.Graph("bench"):
        xp = gn.Parameter(x, name="x")
        g, b, m, v = (gn.Parameter(a, trainable=i < 2) for i, a in enumerate(_bn_params(C, rng)))
        y = gn.batch_norm(xp, g, b, m, v) if kind == "batch" else gn.layer_norm(xp, g, b)
    prog = gn.compile(y, wrt=[xp, g, b] if backward else (), training=True)
    return lambda: prog.run({}, to_host=False)


def torch_norm(kind: str, x: np.ndarray, backward: bool, layout: str = "nchw"):
    rng = np.random.default_rng(1)
    C = x.shape[-1]
    g, b, m, v = (torch.from_numpy(a) for a in _bn_params(C, rng))
    g.requires_grad_(backward)
    b.requires_grad_(backward)
    if kind == "batch":
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)

        def fn(t):
            return F.batch_norm(t, m, v, g, b, training=True, momentum=0.01, eps=1e-3)
    else:
        xt = torch.from_numpy(x).clone()

        def fn(t):
            return F.layer_norm(t, (C,), g, b, eps=1e-3)
    xt.requires_grad_(backward)
    seed = torch.ones_like(fn(xt.detach()))

    def step():
        if not backward:
            with torch.no_grad():
                return fn(xt)
        xt.grad = g.grad = b.grad = None
        out = fn(xt)
        out.backward(seed)
        return out

    return step


def conv_bn_relu(x: np.ndarray, folded: bool):
    """Inference of conv -> batch norm -> relu as three nodes, or as one folded conv node."""
    rng = np.random.default_rng(2)
    W = rng.normal(scale=0.1, size=(3, 3, x.shape[-1], 32)).astype(np.float32)
    bias = rng.normal(size=32).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(32, rng)
    with gn.Graph("bench"):
        xi = gn.Input(x.shape[1:], name="x")
        if folded:
            s = gamma / np.sqrt(mv + np.float32(1e-3))
            y = gn.conv2d(xi, gn.Parameter(W * s), gn.Parameter((bias - mm) * s + beta),
                          padding="same", activation="relu")
        else:
            h = gn.conv2d(xi, gn.Parameter(W), gn.Parameter(bias), padding="same")
            ps = [gn.Parameter(a, trainable=False) for a in (gamma, beta, mm, mv)]
            y = gn.relu(gn.batch_norm(h, *ps))
    prog = gn.compile(y)
    return lambda: prog.run({xi: x}, to_host=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--torch-threads", type=int, default=0)
    args = p.parse_args(argv)
    number, rounds = (3, 3) if args.quick else (10, 7)
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if torch is not None:
        print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    rng = np.random.default_rng(0)
    rows = []
    for kind, shape in (("batch", (64, 28, 28, 32)), ("layer", (32, 64, 128))):
        x = rng.normal(size=shape).astype(np.float32)
        for backward in (False, True):
            cases = {"graphnet": gn_norm(kind, x, backward)}
            if torch is not None:
                cases["torch"] = torch_norm(kind, x, backward)
                if kind == "batch":
                    cases["torch_cl"] = torch_norm(kind, x, backward, "channels_last")
            t = alternate(cases, number, rounds)
            ratio = f"{t['torch'] / t['graphnet']:.2f}x" if torch is not None else "-"
            rows.append((f"{kind} norm {shape} {'fwd+bwd' if backward else 'fwd'}",
                         f"{t['graphnet'] * 1e3:.2f} ms",
                         f"{t['torch'] * 1e3:.2f} ms" if "torch" in t else "-", ratio,
                         f"{t['torch_cl'] * 1e3:.2f} ms" if "torch_cl" in t else "-"))
    print(table(rows, ("workload", "graphnet", "torch", "torch/graphnet (>1: faster)",
                       "torch channels_last")))
    x = rng.normal(size=(64, 28, 28, 16)).astype(np.float32)
    t = alternate({"three nodes": conv_bn_relu(x, False), "folded": conv_bn_relu(x, True)},
                  number, rounds)
    print()
    print(table([(k, f"{v * 1e3:.2f} ms") for k, v in t.items()],
                ("inference conv 3x3 (64, 28, 28, 16) -> 32 + batch norm + relu", "time")))
    print(f"folding saves {(1 - t['folded'] / t['three nodes']) * 100:.0f} %")


if __name__ == "__main__":
    main()
