"""The scoreboard: each training workload with ``model.fit`` beside the same model in PyTorch.

Each workload is trained with graphnet's public ``model.fit`` and with a plain PyTorch loop
(``zero_grad``, forward, loss, ``backward``, ``step``; ``torch.optim.Adam(fused=True)`` where
Adam is used; ``torch.set_num_threads(2)``) on the same random data (made once, outside the
timing), the same shapes, batch, loss and optimizer. The two take turns within one process
for several rounds (one round: a few training steps; each timed round follows a short pause
and an untimed round of the same engine, so that neither is timed beside the other's
still-spinning threads); the table gives the median samples/s
of each, their ratio (torch time / graphnet time: above 1, graphnet is faster) and both
parameter counts, which must be equal. PyTorch's recurrent layers carry two biases where
Keras has one: the second (``bias_hh``) is frozen at zero and not counted, the same model.

Below the table: the first training step of the lstm workload in a fresh process with a cold
Numba cache (``NUMBA_CACHE_DIR`` an empty temporary folder) and again in a second process
with the same folder (warm); those processes import graphnet, not PyTorch.

    python benchmarks/bench_workloads.py              # every row, then cold/warm first step
    python benchmarks/bench_workloads.py --quick      # tiny shapes, two rounds
    python benchmarks/bench_workloads.py --only lstm  # one row
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import table  # noqa: E402

import graphnet as gn  # noqa: E402

torch = None
# the cold/warm first step (a subprocess, below) runs in a process of graphnet alone, as a
# user's does: beside PyTorch's imported objects the garbage collections took 0.20-0.23 s of
# the warm first step instead of 0.07-0.08, and the step 0.95-0.98 s instead of 0.80-0.86
if "--first-step" not in sys.argv[1:]:
    try:
        import torch
    except ImportError:  # graphnet's rows only
        pass

NAMES = ("mlp", "mlp_small", "rnn_small", "lstm", "attention", "cnn", "embedding")


@dataclass
class Workload:
    """One row: graphnet's model (compiled), PyTorch's twin and the data both train on."""

    name: str
    batch: int
    x: np.ndarray
    y: np.ndarray
    model: gn.Model
    torch_net: Callable | None = None  # torch.nn.Module
    torch_loss: Callable | None = None  # (output, target) -> scalar
    torch_opt: Callable | None = None  # params -> optimizer
    torch_x: Callable[[np.ndarray], object] | None = None  # layout change of x, if any


def _sizes(quick: bool) -> dict:
    """The issue's shapes, or tiny ones for ``--quick`` (a smoke run)."""
    if quick:
        return dict(mlp=(32, 64, 32), mlp_small=32, rnn=(8, 16, 5, 8), lstm=(20, 8, 16, 6, 4),
                    attn=(4, 8, 16, 2, 8), cnn=(8, 4, 8, 16), emb=(200, 8, 6, 4), steps=2)
    return dict(mlp=(128, 784, 256), mlp_small=32, rnn=(8, 32, 20, 16),
                lstm=(83, 64, 256, 100, 32), attn=(32, 128, 128, 4, 32), cnn=(64, 32, 64, 128),
                emb=(20000, 128, 64, 64), steps=None)


def _adam() -> gn.optimizers.Adam:
    return gn.optimizers.Adam(1e-3)


def _torch_adam(params):
    return torch.optim.Adam(params, 1e-3, fused=True)


def _freeze_hh_bias(rnn) -> None:
    """Keras' recurrent layers have one bias; PyTorch's second is pinned at zero."""
    for name, p in rnn.named_parameters():
        if name.startswith("bias_hh"):
            with torch.no_grad():
                p.zero_()
            p.requires_grad_(False)


def build(name: str, quick: bool, rng: np.random.Generator, device: str = "cpu") -> Workload:
    """The workload ``name``: data, graphnet model compiled for ``device``, and (with torch)
    its twin (on the CPU; ``torch_round`` moves it)."""
    s = _sizes(quick)
    nn = torch.nn if torch is not None else None
    L = gn.layers
    if name == "mlp":
        b, d, u = s["mlp"]
        x = rng.normal(size=(b * (s["steps"] or 10), d)).astype(np.float32)
        y = rng.integers(0, 10, len(x))
        m = gn.Sequential([L.Dense(u, activation="relu"), L.Dense(u, activation="relu"),
                           L.Dense(10)], input_shape=(d,))
        m.compile(device=device, optimizer=_adam(), loss="sparse_softmax_cross_entropy")
        w = Workload(name, b, x, y, m)
        if nn:
            w.torch_net = nn.Sequential(nn.Linear(d, u), nn.ReLU(), nn.Linear(u, u), nn.ReLU(),
                                        nn.Linear(u, 10))
            w.torch_loss, w.torch_opt = nn.CrossEntropyLoss(), _torch_adam
        return w
    if name == "mlp_small":
        b = s["mlp_small"]
        x = rng.normal(size=(b * (s["steps"] or 100), 2)).astype(np.float32)
        y = (x[:, :1] * x[:, 1:] > 0).astype(np.float32)
        m = gn.Sequential([L.Dense(16, activation="relu"), L.Dense(1, activation="sigmoid")],
                          input_shape=(2,))
        m.compile(device=device, optimizer=gn.optimizers.SGD(0.1), loss="binary_crossentropy")
        w = Workload(name, b, x, y, m)
        if nn:
            # graphnet's BCE reads the logits under the sigmoid; PyTorch's stable twin
            w.torch_net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
            w.torch_loss = nn.BCEWithLogitsLoss()
            w.torch_opt = lambda p: torch.optim.SGD(p, 0.1)
        return w
    if name == "rnn_small":
        f, u, t, b = s["rnn"]
        x = rng.normal(size=(b * (s["steps"] or 50), t, f)).astype(np.float32)
        y = rng.normal(size=(len(x), 1)).astype(np.float32)
        m = gn.Sequential([L.SimpleRNN(u), L.Dense(1)], input_shape=(t, f))
        m.compile(device=device, optimizer=gn.optimizers.SGD(0.01), loss="mse")
        w = Workload(name, b, x, y, m)
        if nn:
            w.torch_net = _LastStep(nn.RNN(f, u, batch_first=True), nn.Linear(u, 1))
            _freeze_hh_bias(w.torch_net.rnn)
            w.torch_loss, w.torch_opt = nn.MSELoss(), lambda p: torch.optim.SGD(p, 0.01)
        return w
    if name == "lstm":
        v, e, u, t, b = s["lstm"]
        x = rng.integers(0, v, size=(b * (s["steps"] or 2), t))
        y = rng.integers(0, v, size=x.shape)
        m = _lstm_model(v, e, u, t, device)
        w = Workload(name, b, x, y, m)
        if nn:
            w.torch_net = _CharLSTM(v, e, u)
            _freeze_hh_bias(w.torch_net.lstm)
            ce = nn.CrossEntropyLoss()
            w.torch_loss = lambda out, tgt: ce(out.reshape(-1, v), tgt.reshape(-1))
            w.torch_opt = _torch_adam
        return w
    if name == "attention":
        b, t, d, h, kd = s["attn"]
        x = rng.normal(size=(b * (s["steps"] or 4), t, d)).astype(np.float32)
        y = rng.integers(0, 10, len(x))
        with gn.Graph("attention"):
            xi = gn.Input((t, d), name="x")
            p = L.PositionalEncoding()(xi)
            a = L.MultiHeadAttention(h, kd)(p)
            out = L.Dense(10)(gn.mean(p + a, axis=1))
            m = gn.Model(xi, out)
        m.compile(device=device, optimizer=_adam(), loss="sparse_softmax_cross_entropy")
        w = Workload(name, b, x, y, m)
        if nn:
            pe = gn.ops.positional_encoding(t, d, dtype="float32")
            w.torch_net = _Attention(d, h, pe)
            w.torch_loss, w.torch_opt = nn.CrossEntropyLoss(), _torch_adam
        return w
    if name == "cnn":
        b, c1, c2, u = s["cnn"]
        x = rng.normal(size=(b * (s["steps"] or 4), 28, 28, 1)).astype(np.float32)
        y = rng.integers(0, 10, len(x))
        m = gn.Sequential([L.Conv2D(c1, 3, padding="same", activation="relu"),
                           L.MaxPooling2D(2),
                           L.Conv2D(c2, 3, padding="same", activation="relu"),
                           L.MaxPooling2D(2), L.Flatten(), L.Dense(u, activation="relu"),
                           L.Dense(10)], input_shape=(28, 28, 1))
        m.compile(device=device, optimizer=_adam(), loss="sparse_softmax_cross_entropy")
        w = Workload(name, b, x, y, m)
        if nn:
            w.torch_net = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
                                        nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1),
                                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                        nn.Linear(7 * 7 * c2, u), nn.ReLU(), nn.Linear(u, 10))
            w.torch_loss, w.torch_opt = nn.CrossEntropyLoss(), _torch_adam
            w.torch_x = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # NCHW
        return w
    if name == "embedding":
        v, e, t, b = s["emb"]
        x = rng.integers(0, v, size=(b * (s["steps"] or 10), t))
        y = rng.integers(0, 2, len(x))
        with gn.Graph("embedding"):
            ids = gn.Input((t,), dtype="int64", name="ids")
            out = L.Dense(2)(gn.mean(L.Embedding(v, e)(ids), axis=1))
            m = gn.Model(ids, out)
        m.compile(device=device, optimizer=_adam(), loss="sparse_softmax_cross_entropy")
        w = Workload(name, b, x, y, m)
        if nn:
            w.torch_net = _MeanEmbedding(v, e)
            w.torch_loss, w.torch_opt = nn.CrossEntropyLoss(), _torch_adam
        return w
    raise ValueError(f"unknown workload {name!r}; choose from {NAMES}")


def _lstm_model(v: int, e: int, u: int, t: int, device: str = "cpu") -> gn.Sequential:
    """The music demo's shape: Embedding -> LSTM (every step) -> Dense logits."""
    L = gn.layers
    m = gn.Sequential([L.Embedding(v, e), L.LSTM(u, return_sequences=True), L.Dense(v)],
                      input_shape=(t,))
    m.compile(device=device, optimizer=_adam(), loss="sparse_softmax_cross_entropy")
    return m


if torch is not None:
    class _LastStep(torch.nn.Module):
        def __init__(self, rnn, head) -> None:
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    class _CharLSTM(torch.nn.Module):
        def __init__(self, v: int, e: int, u: int) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(v, e)
            self.lstm = torch.nn.LSTM(e, u, batch_first=True)
            self.head = torch.nn.Linear(u, v)

        def forward(self, ids):
            return self.head(self.lstm(self.emb(ids))[0])

    class _Attention(torch.nn.Module):
        def __init__(self, d: int, h: int, pe: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("pe", torch.from_numpy(pe))
            self.mha = torch.nn.MultiheadAttention(d, h, batch_first=True)
            self.head = torch.nn.Linear(d, 10)

        def forward(self, x):
            p = x + self.pe
            a = self.mha(p, p, p, need_weights=False)[0]
            return self.head((p + a).mean(1))

    class _MeanEmbedding(torch.nn.Module):
        def __init__(self, v: int, e: int) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(v, e)
            self.head = torch.nn.Linear(e, 2)

        def forward(self, ids):
            return self.head(self.emb(ids).mean(1))


def graphnet_round(w: Workload) -> Callable[[], None]:
    return lambda: w.model.fit(w.x, w.y, batch_size=w.batch, epochs=1, verbose=0,
                               shuffle=False)


def torch_round(w: Workload, device: str = "cpu") -> Callable[[], None]:
    """One epoch of the PyTorch twin on ``device`` (cuda: data moved there once, outside the
    timing, and the GPU waited for at the end of the round)."""
    net = w.torch_net.to(device)
    opt = w.torch_opt([p for p in net.parameters() if p.requires_grad])
    xt = torch.from_numpy(w.torch_x(w.x) if w.torch_x else w.x).to(device)
    yt = torch.from_numpy(w.y).to(device)
    lossf, b = w.torch_loss, w.batch
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run() -> None:
        for s in range(0, len(xt), b):
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xt[s:s + b]), yt[s:s + b])
            loss.backward()
            opt.step()
        sync()

    return run


def torch_params(net) -> int:
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


# Before each timed round: a pause and one untimed round of the same engine. The engine that
# ran just before leaves threads spinning (OpenBLAS's idle workers spin about 0.1 s after a
# GEMM, burning a core; OpenMP's spin too) and its data in the caches: timed straight after
# the other engine, PyTorch's rounds ran 1.2-2.3x slower than on their own (cnn 1,857
# against 3,972-4,513 samples/s, lstm 388 against 608) and graphnet's short mlp rounds 2x
# slower, which the scoreboards before 2026-12-04 (ninth round) took for graphnet's speed.
# With the settling round each engine times as it does alone in its own process.
SETTLE_S = 0.2


def measure(w: Workload, rounds: int, torch_device: str | None = "cpu",
            settle: bool = True) -> tuple[float, float | None]:
    """Median seconds per round of graphnet and of PyTorch (on ``torch_device``; None: not
    run), taking turns; each timed round follows a pause and an untimed round of the same
    engine (``settle``; off for smoke runs)."""
    cases = {"graphnet": graphnet_round(w)}
    if w.torch_net is not None and torch_device is not None:
        cases["torch"] = torch_round(w, torch_device)
    for fn in cases.values():  # warm-up: compile, allocate
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            if settle:
                time.sleep(SETTLE_S)
                fn()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return med["graphnet"], med.get("torch")


def first_step(quick: bool) -> float:
    """Seconds of the lstm workload's first training step, in this process (compiles)."""
    v, e, u, t, b = _sizes(quick)["lstm"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, v, size=(b, t))
    y = rng.integers(0, v, size=(b, t))
    t0 = time.perf_counter()
    m = _lstm_model(v, e, u, t)
    m.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - t0


def cold_warm(quick: bool) -> tuple[float, float]:
    """The first step in a process with an empty Numba cache, then one with it filled."""
    out = []
    with tempfile.TemporaryDirectory(prefix="graphnet-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cmd = [sys.executable, os.path.abspath(__file__), "--first-step"]
        if quick:
            cmd.append("--quick")
        for _ in range(2):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            out.append(float(r.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, two rounds")
    p.add_argument("--only", choices=NAMES, help="run this workload only")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5)")
    p.add_argument("--no-first-step", action="store_true",
                   help="skip the cold/warm Numba-cache first step of the lstm workload")
    p.add_argument("--torch-threads", type=int, default=2,
                   help="PyTorch's intra-op threads (default 2, the issue's setting)")
    p.add_argument("--first-step", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.first_step:  # the subprocess of cold_warm
        print(f"{first_step(args.quick):.6f}")
        return
    if torch is not None:
        torch.set_num_threads(args.torch_threads)
    rounds = args.rounds or (2 if args.quick else 5)
    rng = np.random.default_rng(0)
    rows = []
    for name in [args.only] if args.only else NAMES:
        w = build(name, args.quick, rng)
        tg, tt = measure(w, rounds, settle=not args.quick)
        n = len(w.x)
        tp = torch_params(w.torch_net) if w.torch_net is not None else None
        rows.append((name, f"{n / tg:,.0f}", "-" if tt is None else f"{n / tt:,.0f}",
                     "-" if tt is None else f"{tt / tg:.2f}", f"{w.model.count_params():,}",
                     "-" if tp is None else f"{tp:,}"))
        print(f"# {name} done", file=sys.stderr, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores, 1-minute load average {load:.1f} at the end; "
          f"{rounds} rounds, medians; torch on {args.torch_threads} threads")
    print(table(rows, ("workload", "graphnet samples/s", "torch samples/s",
                       "ratio (torch time / graphnet time)", "graphnet params",
                       "torch params")))
    if not args.no_first_step and args.only in (None, "lstm"):
        cold, warm = cold_warm(args.quick)
        print(f"\nlstm first training step: cold Numba cache {cold:.2f} s, warm {warm:.2f} s")


if __name__ == "__main__":
    main()
