"""Where a step's time goes: each node's forward and backward timed on their own.

    python benchmarks/node_profile.py              # the CNN and LSTM graphs of gpu.py, CPU
    python benchmarks/gpu.py --profile             # the same on the GPU (synchronized)

Replays a compiled Program's schedule (``prog._fwd`` / ``prog._bwd``) node by node after one
ordinary call, synchronizing the device around each node, and prints the slowest nodes.
The sum of the parts exceeds the step time by the synchronizations: read it as a share.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def profile(prog, feeds: dict, sync: Callable[[], None] = lambda: None,
            repeat: int = 5) -> list[tuple[str, str, str, float]]:
    """``(phase, node, op, ms)`` per node (median of ``repeat``), slowest first."""
    prog(feeds, to_host=False)  # warm-up: compile, allocate, fill the state backward reads
    vals = prog._feed(feeds)
    rows = []
    for op, ctx, ins, o in prog._fwd:
        ms, vals[o] = _median(op.forward, (ctx, *[vals[i] for i in ins]), sync, repeat)
        rows.append(("forward", prog.order[o].name, op.name, ms))
    if prog.wrt:
        be = prog.be
        import numpy as np

        from graphnet.core.rows import dense, taken_by

        grads: list = [None] * len(vals)
        y = vals[prog._loss_idx]
        grads[prog._loss_idx] = be.asarray(np.ones(y.shape, y.dtype))
        for op, ctx, ins, o, need in prog._bwd:
            g = grads[o]
            if g is None:
                continue
            # as the executor hands it over (core/rows.py): a reduction's gradient is written
            # out here, once, and charged to this node
            t0 = time.perf_counter()
            g = taken_by(op, g)
            sync()
            spent = (time.perf_counter() - t0) * 1e3
            ms, gs = _median(op.backward, (ctx, g, vals[o], *[vals[i] for i in ins]), sync,
                             repeat)
            for i, gi, nd in zip(ins, gs, need):
                if nd and gi is not None:
                    grads[i] = gi if grads[i] is None else be.add(dense(grads[i]),
                                                                     dense(gi))
            rows.append(("backward", prog.order[o].name, op.name, ms + spent))
    return sorted(rows, key=lambda r: -r[3])


def _median(fn, args: tuple, sync, repeat: int) -> tuple[float, object]:
    """Median milliseconds of ``fn(*args)`` and its last result."""
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        out = fn(*args)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2], out


def table(rows, top: int = 12) -> str:
    total = sum(r[3] for r in rows) or 1.0
    lines = [f"{'phase':<9} {'node':<36} {'op':<16} {'ms':>9} {'share':>6}"]
    for phase, node, op, ms in rows[:top]:
        lines.append(f"{phase:<9} {node[:36]:<36} {op:<16} {ms:>9.3f} {ms / total:>6.1%}")
    lines.append(f"{'':<9} {'(all nodes)':<36} {'':<16} {total:>9.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    import numpy as np

    import graphnet as gn

    rng = np.random.default_rng(0)
    with gn.Graph("cnn"):
        x = gn.Input((28, 28, 1), name="x")
        k1 = gn.Parameter(rng.normal(size=(3, 3, 1, 32)).astype(np.float32) / 3, name="k1")
        k2 = gn.Parameter(rng.normal(size=(3, 3, 32, 64)).astype(np.float32) / 17, name="k2")
        h = gn.max_pool2d(gn.conv2d(x, k1, padding="same", activation="relu"), 2)
        loss = gn.mean(gn.conv2d(h, k2, padding="same", activation="relu"))
    prog = gn.compile(loss, wrt=[k1, k2])
    print(table(profile(prog, {x: rng.normal(size=(64, 28, 28, 1)).astype(np.float32)})))
