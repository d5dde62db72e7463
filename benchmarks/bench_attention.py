"""Embedding and attention speed beside PyTorch on the CPU, in one process, alternating.

(a) an embedding lookup and its scatter-add gradient: vocab 10k, dim 128, ids (64, 50);
(b) fused scaled dot-product attention forward + backward: B=32, 4 heads, T=64, d=32,
    against ``F.scaled_dot_product_attention``, with and without the causal mask.
Both sides compute ``sum(out * R)`` for a fixed R and its gradients, through gn.compile and
torch autograd. The MultiHeadAttention layer (projections included) closes the table.

Run: ``python benchmarks/bench_attention.py`` (``--quick`` for fewer rounds).
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


def embedding_case(vocab=10_000, dim=128, shape=(64, 50), seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, shape)
    table0 = rng.uniform(-0.05, 0.05, (vocab, dim)).astype(np.float32)
    R = rng.normal(size=shape + (dim,)).astype(np.float32)
    with gn.Graph("emb"):
        x = gn.Input(shape[1:], dtype="int64", name="ids")
        t = gn.Parameter(table0, name="table")
        loss = gn.sum(gn.embedding(x, t) * gn.constant(R))
    prog = gn.compile(loss, wrt=[t])
    cases = {"graphnet": lambda: prog({x: ids})}
    if torch is not None:
        tt = torch.tensor(table0, requires_grad=True)
        it, Rt = torch.from_numpy(ids), torch.from_numpy(R)

        def step():
            tt.grad = None
            (F.embedding(it, tt) * Rt).sum().backward()
        cases["torch"] = step
    return cases


def attention_case(B=32, H=4, T=64, d=32, causal=False, seed=0):
    rng = np.random.default_rng(seed)
    q0, k0, v0, R = (rng.normal(size=(B, H, T, d)).astype(np.float32) for _ in range(4))
    with gn.Graph("attn"):
        q, k, v = (gn.Parameter(a, name=n) for a, n in ((q0, "q"), (k0, "k"), (v0, "v")))
        loss = gn.sum(gn.attention(q, k, v, causal=causal) * gn.constant(R))
    prog = gn.compile(loss, wrt=[q, k, v])
    cases = {"graphnet": lambda: prog({})}
    if torch is not None:
        qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q0, k0, v0))
        Rt = torch.from_numpy(R)

        def step():
            qt.grad = kt.grad = vt.grad = None
            (F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal) * Rt).sum().backward()
        cases["torch"] = step
    return cases


def mha_case(B=32, T=64, E=128, H=4, seed=0):
    rng = np.random.default_rng(seed)
    xb = rng.normal(size=(B, T, E)).astype(np.float32)
    with gn.Graph("mha"):
        x = gn.Input((T, E), name="x")
        layer = gn.layers.MultiHeadAttention(H, E // H, seed=seed)
        y = layer(x, use_causal_mask=True)
        loss = gn.mean(y * y)
    prog = gn.compile(loss, wrt=layer.weights)
    cases = {"graphnet": lambda: prog({x: xb})}
    if torch is not None:
        ref = torch.nn.MultiheadAttention(E, H, batch_first=True)
        xt = torch.from_numpy(xb)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)

        def step():
            ref.zero_grad(set_to_none=True)
            out, _ = ref(xt, xt, xt, attn_mask=mask, need_weights=False)
            (out * out).mean().backward()
        cases["torch"] = step
    return cases


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    number, rounds = (3, 3) if args.quick else (10, 7)
    import numba
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads; torch "
          f"{torch.__version__ if torch else 'not installed'} "
          f"({torch.get_num_threads() if torch else '-'} threads)")
    rows = []
    workloads = [
        ("embedding 10k x 128, ids 64x50: gather + scatter-add", embedding_case()),
        ("attention B32 H4 T64 d32 fwd+bwd", attention_case()),
        ("attention B32 H4 T64 d32 fwd+bwd, causal", attention_case(causal=True)),
        ("MultiHeadAttention E128 H4 T64 B32 fwd+bwd, causal", mha_case()),
    ]
    for label, cases in workloads:
        t = alternate(cases, number, rounds)
        ratio = f"{t['torch'] / t['graphnet']:.2f}x" if torch else "-"
        rows.append((label, f"{t['graphnet'] * 1e3:.3f} ms",
                     f"{t['torch'] * 1e3:.3f} ms" if torch else "-", ratio))
    print(table(rows, ("workload", "graphnet", "torch", "torch/graphnet (>1: faster)")))


if __name__ == "__main__":
    main()
