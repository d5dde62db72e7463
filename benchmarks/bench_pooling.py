"""Pooling and up-sampling speed beside PyTorch on the CPU, in one process, alternating.

(a) max-pool 2x2 stride 2, forward + backward, on (64, 28, 28, 32): a CNN's first pooling;
(b) up-sampling x2 (nearest and bilinear), forward + backward, on (16, 32, 32, 16): the
    decoder of a segmentation network.
graphnet runs channels-last (NHWC) through gn.compile, gradients kept on the device side
(``to_host=False``); PyTorch runs its default NCHW layout and, for reference, channels_last.

Run: ``python benchmarks/bench_pooling.py`` (``--quick`` for fewer rounds).
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


def graphnet_step(build, x: np.ndarray, backward: bool = True):
    """One fwd (+bwd) of ``build(x)`` as a compiled program; x is a Parameter so that its
    gradient (of the sum of the output) is computed."""
    with gn.Graph("bench"):
        xp = gn.Parameter(x, name="x")
        y = build(xp)
        loss = gn.sum(y)  # the differentiated output must be a scalar
    prog = gn.compile(loss, wrt=[xp]) if backward else gn.compile(y)
    return lambda: prog.run({}, to_host=False)


def torch_step(fn, x: np.ndarray, layout: str, backward: bool = True):
    """The same in PyTorch: NHWC data permuted to NCHW, stored NCHW or channels_last."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    xt.requires_grad_(backward)
    seed = torch.ones_like(fn(xt.detach()))

    def step():
        if not backward:
            with torch.no_grad():
                return fn(xt)
        xt.grad = None
        out = fn(xt)
        out.backward(seed)
        return out

    return step


def workloads():
    rng = np.random.default_rng(0)
    x_pool = rng.normal(size=(64, 28, 28, 32)).astype(np.float32)
    x_up = rng.normal(size=(16, 32, 32, 16)).astype(np.float32)
    yield ("max-pool 2x2/2 (64, 28, 28, 32)", x_pool, lambda t: gn.max_pool2d(t, 2),
           lambda t: F.max_pool2d(t, 2))
    yield ("avg-pool 2x2/2 (64, 28, 28, 32)", x_pool, lambda t: gn.avg_pool2d(t, 2),
           lambda t: F.avg_pool2d(t, 2))
    for mode in ("nearest", "bilinear"):
        kw = {} if mode == "nearest" else {"align_corners": False}
        yield (f"upsample x2 {mode} (16, 32, 32, 16)", x_up,
               lambda t, m=mode: gn.upsample2d(t, 2, m),
               lambda t, m=mode, kw=kw: F.interpolate(t, scale_factor=2, mode=m, **kw))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="PyTorch's intra-op threads (default: its own choice); 1 keeps its "
                        "OpenMP workers from fighting other load on a small shared machine")
    args = p.parse_args(argv)
    number, rounds = (3, 3) if args.quick else (10, 7)
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if torch is not None:
        print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    rows = []
    for name, x, gfn, tfn in workloads():
        for backward in (False, True):
            cases = {"graphnet": graphnet_step(gfn, x, backward)}
            if torch is not None:
                cases["torch"] = torch_step(tfn, x, "nchw", backward)
                cases["torch_cl"] = torch_step(tfn, x, "channels_last", backward)
            t = alternate(cases, number, rounds)
            ms = {k: f"{v * 1e3:.2f} ms" for k, v in t.items()}
            ratio = f"{t['torch'] / t['graphnet']:.2f}x" if torch is not None else "-"
            rows.append((f"{name} {'fwd+bwd' if backward else 'fwd'}", ms["graphnet"],
                         ms.get("torch", "-"), ratio, ms.get("torch_cl", "-")))
    print(table(rows, ("workload", "graphnet NHWC", "torch NCHW",
                       "torch/graphnet (>1: faster)", "torch channels_last")))


if __name__ == "__main__":
    main()
