"""Convolution speed beside PyTorch on the CPU, in one process, alternating.

LeNet-ish layers, forward + backward (the gradient of the output's sum), batch 64:
(a) 28x28x1 -> 32 filters 3x3, same, ReLU: a first layer on data (no input gradient);
(b) 14x14x32 -> 64 filters 3x3, same, ReLU, with the input gradient (a hidden layer);
(c) 7x7x64 -> 14x14x32 transposed 3x3 stride 2 (a segmentation decoder's up-sampling).
graphnet runs each as a compiled one-node program (NHWC); PyTorch runs
``torch.nn.functional.conv2d`` / ``conv_transpose2d`` on NCHW tensors (the same arithmetic).

Run: ``python benchmarks/bench_conv.py`` (``--quick`` for fewer rounds).
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

BATCH = 64
# name, (H, W, Cin), kernel, filters, strides, transpose, input gradient
LAYERS = [
    ("conv 28x28x1 -> 32, 3x3 same, relu (first layer)", (28, 28, 1), 3, 32, 1, False, False),
    ("conv 14x14x32 -> 64, 3x3 same, relu (dx too)", (14, 14, 32), 3, 64, 1, False, True),
    ("conv_transpose 7x7x64 -> 14x14x32, 3x3 stride 2", (7, 7, 64), 3, 32, 2, True, True),
]


def graphnet_step(hwc, k, filters, strides, transpose, need_dx, seed=0):
    """A compiled program: the conv node's forward and its backward to the weights (and x)."""
    rng = np.random.default_rng(seed)
    xb = rng.normal(size=(BATCH, *hwc)).astype(np.float32)
    kshape = (k, k, filters, hwc[2]) if transpose else (k, k, hwc[2], filters)
    with gn.Graph("bench"):
        x = gn.Parameter(xb, name="x") if need_dx else gn.Input(hwc, name="x")
        kern = gn.Parameter(rng.normal(0, 0.1, kshape), name="kernel")
        bias = gn.Parameter(np.zeros(filters), name="bias")
        fn = gn.conv2d_transpose if transpose else gn.conv2d
        y = fn(x, kern, bias, strides=strides, padding="same",
               activation=None if transpose else "relu")
        loss = gn.sum(y)  # the differentiated output must be a scalar: d sum(y) = ones
    prog = gn.compile(loss, wrt=[kern, bias] + ([x] if need_dx else []))
    feeds = {} if need_dx else {x: xb}
    return lambda: prog(feeds)


def torch_step(hwc, k, filters, strides, transpose, need_dx, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(BATCH, hwc[2], hwc[0], hwc[1])).astype(np.float32))
    x.requires_grad_(need_dx)
    wshape = (hwc[2], filters, k, k) if transpose else (filters, hwc[2], k, k)
    w = torch.from_numpy(rng.normal(0, 0.1, wshape).astype(np.float32)).requires_grad_()
    b = torch.zeros(filters, requires_grad=True)

    def step():
        for t in (x, w, b):
            t.grad = None
        if transpose:
            y = F.conv_transpose2d(x, w, b, stride=strides, padding=1, output_padding=1)
        else:
            y = F.relu(F.conv2d(x, w, b, padding=k // 2))
        y.backward(torch.ones_like(y))
        return y

    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    number, rounds = (3, 3) if args.quick else (10, 7)
    import numba

    import graphnet.kernels.jit  # noqa: F401 - picks the threading layer
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads; torch "
          f"{torch.__version__ if torch else 'not installed'} "
          f"({torch.get_num_threads() if torch else '-'} threads); batch {BATCH}, fwd+bwd")
    rows = []
    for name, *spec in LAYERS:
        cases = {"graphnet": graphnet_step(*spec)}
        if torch is not None:
            cases["torch"] = torch_step(*spec)
        t = alternate(cases, number, rounds)
        rows.append((name, f"{t['graphnet'] * 1e3:.2f} ms",
                     f"{t['torch'] * 1e3:.2f} ms" if torch else "-",
                     f"{t['torch'] / t['graphnet']:.2f}x" if torch else "-"))
    print(table(rows, ("workload", "graphnet", "torch", "torch/graphnet (>1: faster)")))


if __name__ == "__main__":
    main()
