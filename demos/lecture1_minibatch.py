"""Full batch vs mini-batches vs single samples: gradient noise, and time to reach a loss.

An MLP 64-32-10 on the digits, trained by SGD with one learning rate three ways: one step per
epoch on the whole training set, steps on mini-batches of 100, and steps on single samples.
We measure how far a batch's gradient lies from the full gradient (its noise, which shrinks
like 1/sqrt(B)), and the wall-clock time, steps and epochs each needs to reach a target loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import Stopwatch, plt, progress, rounded, savefig

ORDER = 3  # place in Lecture 1's story (python -m demos lists in this order)

LR = 0.1
TARGET = 0.25              # training cross-entropy each method races to


def build(seed: int) -> tuple:
    """Logits of a 64-32-10 ReLU MLP, its mean softmax cross-entropy, and its Parameters."""
    with gn.Graph("mlp"):
        x = gn.Input((64,), name="x")
        y = gn.Input((), dtype="int64", name="y")
        W1 = gn.Parameter(shape=(64, 32), init="glorot_uniform", seed=seed, name="W1")
        b1 = gn.Parameter(np.zeros(32), name="b1")
        W2 = gn.Parameter(shape=(32, 10), init="glorot_uniform", seed=seed + 1, name="W2")
        b2 = gn.Parameter(np.zeros(10), name="b2")
        h = gn.dense(x, W1, b1, activation="relu")
        loss = gn.softmax_cross_entropy(gn.dense(h, W2, b2), y)
    return x, y, [W1, b1, W2, b2], loss


def flat(grads: list) -> np.ndarray:
    return np.concatenate([np.ravel(g) for g in grads]).astype(np.float64)


def gradient_noise(prog, x, y, X, Y, sizes: list[int], draws: int, seed: int) -> dict:
    """Mean relative distance ||g_B - g|| / ||g|| of B-sample gradients from the full one."""
    rng = np.random.default_rng(seed)
    g_full = flat(prog({x: X, y: Y})[1])
    noise = {}
    for B in sizes:
        errs = []
        for _ in range(draws):
            idx = rng.choice(len(X), B, replace=False)
            errs.append(np.linalg.norm(flat(prog({x: X[idx], y: Y[idx]})[1]) - g_full))
        noise[B] = float(np.mean(errs) / np.linalg.norm(g_full))
    return noise


def race(prog, loss_prog, x, y, X, Y, params, init, batch: int, budget_s: float,
         max_epochs: int, seed: int, quick: bool) -> dict:
    """SGD with batches of ``batch`` for ``budget_s`` seconds of training (evaluation excluded).

    The full training loss is measured at log-spaced steps (2% apart), so each
    method's curve costs the same few evaluations; returns the curve and the first time, step
    and epoch at which the loss fell below TARGET.
    """
    for p, v in zip(params, init):
        p.value = v
    opt = gn.optimizers.SGD(learning_rate=LR)
    n = len(X)
    clock, step, next_eval = Stopwatch(), 0, 1
    curve = {"time": [0.0], "epoch": [0.0], "loss": [float(loss_prog({x: X, y: Y}))]}
    hit = None
    bar = progress(range(max_epochs), f"batch {batch}", quick=quick)
    for epoch in bar:
        for xb, yb in gn.batches(X, Y, batch_size=batch, shuffle=True, seed=seed + epoch):
            with clock:
                _, grads = prog({x: xb, y: yb})
                opt.apply(grads, params)
            step += 1
            if step >= next_eval:
                next_eval = max(step + 1, int(step * 1.02))
                L = float(loss_prog({x: X, y: Y}))
                curve["time"].append(clock.elapsed)
                curve["epoch"].append(step * batch / n)
                curve["loss"].append(L)
                if hit is None and L <= TARGET:
                    hit = {"seconds": clock.elapsed, "steps": step, "epochs": step * batch / n}
            if clock.elapsed > budget_s:
                break
        if clock.elapsed > budget_s:
            break
    return {"curve": curve, "hit": hit, "steps": step, "seconds": clock.elapsed,
            "final_loss": curve["loss"][-1]}


def run(quick: bool, out: Path, seed: int) -> dict:
    (X, Y), _ = gn.datasets.digits()
    budget, draws = (0.5, 10) if quick else (4.0, 200)
    x, y, params, loss = build(seed)
    prog = gn.compile(loss, wrt=params)
    loss_prog = gn.compile(loss)
    init = [p.value.copy() for p in params]

    sizes = [1, 4, 16, 64, 256]
    noise = gradient_noise(prog, x, y, X, Y, sizes, draws, seed)

    methods = {"full batch": len(X), "mini-batch 100": 100, "single sample": 1}
    results = {label: race(prog, loss_prog, x, y, X, Y, params, init, B, budget,
                           max_epochs=100_000 if B == len(X) else 2_000, seed=seed,
                           quick=quick)
               for label, B in methods.items()}

    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(15, 4.4))
    for i, (label, r) in enumerate(results.items()):
        c = r["curve"]
        a0.plot(c["time"][1:], c["loss"][1:], color=f"C{i}", label=label)  # log axis: no t=0
        a1.plot(c["epoch"], c["loss"], color=f"C{i}", label=label)
        if r["hit"]:
            a0.plot(r["hit"]["seconds"], TARGET, "o", color=f"C{i}", ms=8, mec="k", zorder=5)
            a1.plot(r["hit"]["epochs"], TARGET, "o", color=f"C{i}", ms=8, mec="k", zorder=5)
    for ax, xl in ((a0, "training time (s), evaluation excluded"),
                   (a1, "epochs (passes over the data)")):
        ax.axhline(TARGET, color="k", ls="--", lw=1, label=f"target loss {TARGET}")
        ax.set(xlabel=xl, ylabel="training loss (cross-entropy)", yscale="log")
        ax.legend()
    a0.set_title(f"SGD, learning rate {LR}: loss vs wall-clock (dots: target)")
    a0.set_xscale("log")
    a1.set_xscale("log")
    a1.set_title("loss vs epochs (dots: target reached)")
    Bs = np.array(sizes)
    a2.loglog(Bs, [noise[B] for B in sizes], "o-", label="measured")
    a2.loglog(Bs, noise[1] / np.sqrt(Bs), "k--", lw=1, label=r"$\propto 1/\sqrt{B}$")
    a2.set(xlabel="batch size B", ylabel=r"$\|g_B - g\| \,/\, \|g\|$",
           title=f"gradient noise at the start ({len(X)} samples)")
    a2.legend()
    fig.tight_layout()
    pic = savefig(fig, out, "lecture1_minibatch")

    summary: dict = {"target_loss": TARGET, "train_samples": len(X),
                     "gradient_noise": {f"B={B}": v for B, v in noise.items()}}
    for label, r in results.items():
        summary[label] = {"reached_target": r["hit"], "final_loss": r["final_loss"],
                          "steps": r["steps"], "train_seconds": r["seconds"]}
    summary["picture"] = str(pic)
    return rounded(summary, 3)
