"""graphnet's CUDA backend beside PyTorch on the same GPU, plus a parity check on the real card.

    python benchmarks/gpu.py            # on a machine with an NVIDIA GPU
    python benchmarks/gpu.py --smoke    # tiny sizes, runs on the simulator (NUMBA_ENABLE_CUDASIM=1)

Workloads: a 784-256-256-10 ReLU MLP forward + backward at batch 128 through
``gn.compile(device="cuda")``, a large elementwise add, a 1024^3 GEMM, ``model.fit``
throughput, one graph per Lecture 2/3 family (a conv-pool-conv stack, a fused LSTM,
causal attention), each beside its PyTorch twin, and the CPU scoreboard's workloads (mlp,
cnn, lstm, attention, rnn_small, mlp_small of ``bench_workloads.py``) trained with
``model.fit`` on the GPU beside PyTorch CUDA, with issue 15's target ratios. Times are
medians of synchronized repeats after a warm-up call (which pays Numba's compilation).
Each section reports its own failure and the next one still runs; with ``--json PATH``
the figures are also written as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback

import numpy as np

SMOKE = "--smoke" in sys.argv
if SMOKE:
    import os

    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from numba import cuda  # noqa: E402

import graphnet as gn  # noqa: E402

try:
    import torch  # noqa: E402

    HAVE_TORCH = torch.cuda.is_available()
except Exception:  # pragma: no cover - torch is optional
    torch, HAVE_TORCH = None, False

ROWS: list[dict] = []
FIT_ROWS: list[dict] = []  # the scoreboard's workloads trained with model.fit (issue 15)
PARITY: list[dict] = []
PROGRAMS: list[tuple] = []  # (label, program, device feeds) for --profile


def _torch_mlp(sizes):
    """PyTorch's twin of the ReLU MLP, on the GPU."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).cuda()


def _sync() -> None:
    cuda.synchronize()


def timeit(fn, sync, repeat: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeat`` synchronized runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(workload: str, unit: str, gn_s: float | None, torch_s: float | None,
        work: float | None = None) -> None:
    """One table row: times in ms, and ``work / time`` (GFLOP/s, GB/s, samples/s) if given."""
    ROWS.append({"workload": workload, "unit": unit, "graphnet_ms": _ms(gn_s),
                 "torch_ms": _ms(torch_s),
                 "graphnet_rate": work / gn_s if work and gn_s else None,
                 "torch_rate": work / torch_s if work and torch_s else None})


def _ms(s):
    return None if s is None else s * 1e3


def _torch_sync() -> None:
    torch.cuda.synchronize()


# -- workloads -------------------------------------------------------------------------

def bench_mlp(batch: int, sizes: tuple, repeat: int) -> None:
    rng = np.random.default_rng(0)
    with gn.Graph("mlp"):
        x = gn.Input((sizes[0],), name="x")
        y = gn.Input((), dtype="int64", name="y")
        params, h = [], x
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = gn.Parameter(shape=(a, b), init="glorot_uniform", name=f"W{i}")
            bb = gn.Parameter(np.zeros(b, np.float32), name=f"b{i}")
            params += [W, bb]
            h = gn.dense(h, W, bb, activation="relu" if i < len(sizes) - 2 else None)
        loss = gn.softmax_cross_entropy(h, y)
    prog = gn.compile(loss, wrt=params, device="cuda")
    xb = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    yb = rng.integers(0, sizes[-1], batch)
    be = prog.be
    feeds = {x: be.asarray(xb), y: be.asarray(yb)}  # data already on the device
    t_gn = timeit(lambda: prog(feeds, to_host=False), _sync, repeat)
    t_th = None
    if HAVE_TORCH:
        net = _torch_mlp(sizes)
        xt, yt = torch.tensor(xb, device="cuda"), torch.tensor(yb, device="cuda")

        def step():
            net.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(xt), yt).backward()

        t_th = timeit(step, _torch_sync, repeat)
    name = "-".join(map(str, sizes))
    row(f"MLP {name} fwd+bwd, batch {batch}", "samples/s", t_gn, t_th, batch)


def bench_elementwise(n: int, repeat: int) -> None:
    from graphnet.kernels import cuda as K

    a = K.asarray(np.random.default_rng(0).normal(size=n).astype(np.float32))
    b = K.asarray(np.ones(n, np.float32))
    t_gn = timeit(lambda: K.add(a, b), _sync, repeat)
    t_th = None
    if HAVE_TORCH:
        at = torch.randn(n, device="cuda")
        bt = torch.ones(n, device="cuda")
        t_th = timeit(lambda: at + bt, _torch_sync, repeat)
    row(f"elementwise add, {n:,} float32", "GB/s", t_gn, t_th, 12 * n / 1e9)


def bench_gemm(n: int, repeat: int) -> None:
    from graphnet.kernels import cuda as K

    rng = np.random.default_rng(0)
    a = K.asarray(rng.normal(size=(n, n)).astype(np.float32))
    b = K.asarray(rng.normal(size=(n, n)).astype(np.float32))
    t_gn = timeit(lambda: K.matmul(a, b), _sync, repeat)
    t_th = None
    if HAVE_TORCH:
        at, bt = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 against float32
        t_th = timeit(lambda: at @ bt, _torch_sync, repeat)
    row(f"GEMM {n}x{n}x{n} float32", "GFLOP/s", t_gn, t_th, 2 * n ** 3 / 1e9)


def bench_fit(n: int, batch: int, sizes: tuple) -> None:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(n, sizes[0])).astype(np.float32)
    ys = rng.integers(0, sizes[-1], n)
    with gn.Graph("fit"):
        model = gn.Sequential([gn.layers.Dense(s, activation="relu") for s in sizes[1:-1]]
                              + [gn.layers.Dense(sizes[-1])], input_shape=(sizes[0],))
    model.compile(optimizer=gn.optimizers.Adam(1e-3), loss="sparse_softmax_cross_entropy",
                  device="cuda")
    model.fit(xs[: batch * 2], ys[: batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    _sync()
    t0 = time.perf_counter()
    model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0)
    _sync()
    t_gn = time.perf_counter() - t0
    t_th = None
    if HAVE_TORCH:
        net = _torch_mlp(sizes)
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        xt, yt = torch.from_numpy(xs).cuda(), torch.from_numpy(ys).cuda()

        def epoch(m):
            # the data on the GPU, each batch gathered there, as model.fit does (_Resident)
            perm = torch.from_numpy(np.random.default_rng(1).permutation(m)).cuda()
            for i in range(0, m, batch):
                idx = perm[i:i + batch]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(xb), yb).backward()
                opt.step()

        epoch(batch * 2)
        _torch_sync()
        t0 = time.perf_counter()
        epoch(n)
        _torch_sync()
        t_th = time.perf_counter() - t0
    row(f"model.fit 1 epoch, {n} samples, batch {batch} (Adam)", "samples/s", t_gn, t_th, n)


def bench_graph(label: str, build, torch_step, repeat: int) -> None:
    """One node family's forward + backward through ``gn.compile(device="cuda")`` beside
    ``torch_step`` (PyTorch's twin, or None). ``build()`` returns ``(loss, params, feeds)``."""
    with gn.Graph(label):
        loss, params, feeds = build()
    prog = gn.compile(loss, wrt=params, device="cuda")
    dev = {k: prog.be.asarray(v) for k, v in feeds.items()}  # data already on the device
    t_gn = timeit(lambda: prog(dev, to_host=False), _sync, repeat)
    PROGRAMS.append((label, prog, dev))
    t_th = timeit(torch_step, _torch_sync, repeat) if HAVE_TORCH and torch_step else None
    batch = next(iter(feeds.values())).shape[0]
    row(label, "samples/s", t_gn, t_th, batch)


def _param(rng, *shape):
    return gn.Parameter((rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32))


def _torch_params(*arrays):
    return [torch.tensor(a, device="cuda", requires_grad=True) for a in arrays]


def bench_cnn(batch: int, hw: int, c1: int, c2: int, repeat: int) -> None:
    """conv 3x3 same + relu, max-pool 2, conv 3x3 same + relu: a LeNet-like feature stack."""
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(batch, hw, hw, 1)).astype(np.float32)

    def build():
        x = gn.Input((hw, hw, 1), name="x")
        k1, k2 = _param(rng, 3, 3, 1, c1), _param(rng, 3, 3, c1, c2)
        h = gn.max_pool2d(gn.conv2d(x, k1, padding="same", activation="relu"), 2)
        y = gn.conv2d(h, k2, padding="same", activation="relu")
        return gn.mean(y), [k1, k2], {x: xb}

    step = None
    if HAVE_TORCH:
        F = torch.nn.functional
        w1, w2 = _torch_params(rng.normal(size=(c1, 1, 3, 3)).astype(np.float32),
                               rng.normal(size=(c2, c1, 3, 3)).astype(np.float32))
        xt = torch.tensor(xb.transpose(0, 3, 1, 2).copy(), device="cuda")

        def step():
            h = F.max_pool2d(F.relu(F.conv2d(xt, w1, padding=1)), 2)
            F.relu(F.conv2d(h, w2, padding=1)).mean().backward()

    bench_graph(f"CNN conv{c1}-pool-conv{c2} {hw}x{hw}, batch {batch}", build, step, repeat)


def bench_lstm(batch: int, steps: int, n_in: int, units: int, repeat: int) -> None:
    """A fused LSTM over the whole sequence (one node), forward + backward through time."""
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(batch, steps, n_in)).astype(np.float32)

    def build():
        x = gn.Input((steps, n_in), name="x")
        W, U = _param(rng, n_in, 4 * units), _param(rng, units, 4 * units)
        b = gn.Parameter(np.zeros(4 * units, np.float32))
        return gn.mean(gn.lstm(x, W, U, b)), [W, U, b], {x: xb}

    step = None
    if HAVE_TORCH:
        net = torch.nn.LSTM(n_in, units, batch_first=True).cuda()
        xt = torch.tensor(xb, device="cuda")

        def step():
            net.zero_grad(set_to_none=True)
            net(xt)[0].mean().backward()

    bench_graph(f"LSTM T={steps} in={n_in} units={units}, batch {batch}", build, step, repeat)


def bench_attention(batch: int, heads: int, steps: int, depth: int, repeat: int) -> None:
    """Fused causal scaled dot-product attention, gradients for q, k and v."""
    rng = np.random.default_rng(0)
    shape = (batch, heads, steps, depth)
    qkv = [rng.normal(size=shape).astype(np.float32) for _ in range(3)]

    def build():
        q, k, v = (gn.Parameter(a, name=n) for a, n in zip(qkv, "qkv"))
        x = gn.Input((), name="scale")  # a fed scalar, so the batch size can be reported
        return gn.mean(gn.attention(q, k, v, causal=True)) * gn.mean(x), [q, k, v], \
            {x: np.ones(batch, np.float32)}

    step = None
    if HAVE_TORCH:
        q, k, v = _torch_params(*qkv)

        def step():
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True) \
                .mean().backward()

    bench_graph(f"attention B={batch} heads={heads} T={steps} d={depth}", build, step, repeat)


# -- parity on the real device -----------------------------------------------------------

# issue 15's targets: torch time / graphnet time on the GPU, per workload of the CPU scoreboard
TARGETS = {"mlp": 0.5, "cnn": 0.5, "lstm": 0.5, "attention": 0.5, "rnn_small": 1.0,
           "mlp_small": 1.0}


def bench_workloads(names: tuple, quick: bool, rounds: int) -> None:
    """Each workload of ``benchmarks/bench_workloads.py`` (same models, data and optimizers)
    trained with ``model.fit(device="cuda")`` beside its PyTorch twin on the same GPU,
    taking turns; samples/s from the median epoch of each."""
    import os

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_workloads as bw

    rng = np.random.default_rng(0)
    for name in names:
        w = bw.build(name, quick, rng, device="cuda")
        tg, tt = bw.measure(w, rounds, "cuda" if HAVE_TORCH else None, settle=not quick)
        n = len(w.x)
        FIT_ROWS.append({"workload": name, "graphnet_samples_s": n / tg,
                         "torch_samples_s": n / tt if tt else None,
                         "ratio": tt / tg if tt else None, "target": TARGETS[name]})
        print(f"  fit {name}: {n / tg:,.0f} samples/s", flush=True)


def parity() -> None:
    """A few kernels on this GPU against the CPU backend."""
    from graphnet.kernels import cpu as C
    from graphnet.kernels import cuda as K

    rng = np.random.default_rng(0)
    a = rng.normal(size=(67, 45)).astype(np.float32)
    b = rng.normal(size=(45, 33)).astype(np.float32)
    x = rng.normal(size=(8, 5, 10)).astype(np.float32)
    W, bias = rng.normal(size=(10, 7)).astype(np.float32), rng.normal(size=7).astype(np.float32)
    cases = [
        ("matmul", (a, b), {}, 1e-4),
        ("matmul", (x, W), {}, 1e-4),
        ("add", (x, bias[:5, None] * 0 + 1), {}, 0),
        ("sum", (x, (0, 2)), {}, 1e-5),
        ("max", (x, (1,)), {}, 0),
        ("softmax", (x, -1, True), {}, 1e-5),
        ("dropout", (x, 0.3, 42), {}, 0),
        ("dense", (x, W, bias, "gelu", 0.0, True), {}, 1e-4),
        ("softmax_cross_entropy", (x.reshape(40, 10), rng.integers(0, 10, 40)), {}, 1e-5),
        ("transpose", (x, (2, 0, 1)), {}, 0),
    ]
    for name, args, kw, tol in cases:
        try:
            want = getattr(C, name)(*args, **kw)
            got = getattr(K, name)(*[K.asarray(v) if isinstance(v, np.ndarray) else v
                                     for v in args], **kw)
            want = want if isinstance(want, tuple) else (want,)
            got = got if isinstance(got, tuple) else (got,)
            err = max(float(np.max(np.abs(K.to_host(g).astype(np.float64) - w)
                                   / (1 + np.abs(w)))) if np.size(w) else 0.0
                      for g, w in zip(got, want))
            PARITY.append({"kernel": name, "max_rel_err": err, "ok": err <= tol})
        except Exception as e:
            PARITY.append({"kernel": name, "error": f"{type(e).__name__}: {e}", "ok": False})


# -- report ------------------------------------------------------------------------------

def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def report(device: str, torch_device: str | None) -> str:
    lines = [f"graphnet CUDA backend on: {device}",
             f"PyTorch {torch.__version__ if torch else '(absent)'} on: {torch_device or '-'}",
             "",
             f"{'workload':<52} {'graphnet ms':>12} {'torch ms':>10} {'unit':>10} "
             f"{'graphnet':>12} {'torch':>12}"]
    for r in ROWS:
        lines.append(f"{r['workload']:<52} {_fmt(r['graphnet_ms']):>12} {_fmt(r['torch_ms']):>10}"
                     f" {r['unit']:>10} {_fmt(r['graphnet_rate'], ',.0f'):>12} "
                     f"{_fmt(r['torch_rate'], ',.0f'):>12}")
    if FIT_ROWS:
        lines += ["", "model.fit on the GPU, the scoreboard's workloads (ratio = torch time / "
                  "graphnet time):",
                  f"{'workload':<12} {'graphnet samples/s':>19} {'torch samples/s':>16} "
                  f"{'ratio':>7} {'target':>7}"]
        for r in FIT_ROWS:
            lines.append(f"{r['workload']:<12} {_fmt(r['graphnet_samples_s'], ',.0f'):>19} "
                         f"{_fmt(r['torch_samples_s'], ',.0f'):>16} "
                         f"{_fmt(r['ratio'], '.2f'):>7} {r['target']:>7.1f}")
    lines += ["", "parity on this device (graphnet.kernels.cuda vs graphnet.kernels.cpu):"]
    for p in PARITY:
        status = "ok" if p["ok"] else "FAIL"
        detail = p.get("error") or f"max rel err {p['max_rel_err']:.2e}"
        lines.append(f"  {p['kernel']:<24} {status:<5} {detail}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (simulator smoke test)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--profile", action="store_true",
                    help="also time every node of the family graphs (benchmarks/node_profile.py)")
    args = ap.parse_args()
    from graphnet.kernels import cuda as K

    if not (cuda.is_available() or K.SIMULATOR):
        print("no CUDA GPU visible: nothing to benchmark (try --smoke on the simulator)")
        return 2
    device = K.device_name()
    torch_device = torch.cuda.get_device_name(0) if HAVE_TORCH else None
    print(f"device: {device}; torch on cuda: {HAVE_TORCH}", flush=True)
    small = args.smoke
    sections = [
        ("mlp", lambda: bench_mlp(4 if small else 128, (6, 5, 5, 3) if small else
                                  (784, 256, 256, 10), 2 if small else 50)),
        ("elementwise", lambda: bench_elementwise(64 if small else 1 << 24, 2 if small else 50)),
        ("gemm", lambda: bench_gemm(8 if small else 1024, 1 if small else 20)),
        ("fit", lambda: bench_fit(16 if small else 12800, 4 if small else 128,
                                  (6, 5, 3) if small else (784, 256, 256, 10))),
        ("cnn", lambda: bench_cnn(2 if small else 64, 6 if small else 28, 2 if small else 32,
                                  3 if small else 64, 1 if small else 20)),
        ("lstm", lambda: bench_lstm(2 if small else 32, 3 if small else 50, 2 if small else 64,
                                    3 if small else 128, 1 if small else 10)),
        ("attention", lambda: bench_attention(2 if small else 32, 1 if small else 4,
                                              3 if small else 64, 2 if small else 32,
                                              1 if small else 20)),
        ("workloads", lambda: bench_workloads(("mlp_small",) if small else tuple(TARGETS),
                                              small, 1 if small else 5)),
        ("parity", parity),
    ]
    for name, fn in sections:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            print(f"[{name}] failed:", flush=True)
            traceback.print_exc()
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    text = report(device, torch_device)
    print(text)
    if args.profile:
        from node_profile import profile, table

        for label, prog, dev in PROGRAMS:
            print(f"\n== per node: {label}")
            print(table(profile(prog, dev, _sync, 3 if small else 5), top=8))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "torch_device": torch_device, "rows": ROWS,
                       "fit": FIT_ROWS, "parity": PARITY}, f, indent=1)
    return 0 if PARITY and all(p["ok"] for p in PARITY) else 1


if __name__ == "__main__":
    sys.exit(main())
