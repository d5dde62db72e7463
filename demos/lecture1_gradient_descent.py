"""Gradient descent on the loss surface J(w0, w1): learning rates; SGD, momentum, RMSProp, Adam.

A one-feature least-squares problem y ~ w0 + w1 x has a bowl-shaped loss over the plane of
its two weights, so every step of an optimizer is a point we can draw on the contour map.
First plain gradient descent (``w.value -= lr * g``) with a too small, a good and a too large
learning rate; then gn.optimizers stepping the same two Parameters from the same start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import plt, rounded, savefig

ORDER = 2  # place in Lecture 1's story (python -m demos lists in this order)

START = (3.5, -1.5)       # (w0, w1) where every optimizer starts: down the long valley
TRUE = (-1.0, 2.0)         # the line the data come from


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(1, 1), y = -1 + 2 x + noise: an off-centre x makes the bowl a tilted ellipse."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 1.0, n).astype(np.float32)
    y = (TRUE[0] + TRUE[1] * x + rng.normal(0, 0.5, n)).astype(np.float32)
    return x, y


def build() -> tuple:
    """y_hat = w0 + w1 x, J = mean squared error; the two Parameters are what we move."""
    with gn.Graph("least_squares"):
        x = gn.Input((), name="x")
        y = gn.Input((), name="y")
        w0 = gn.Parameter(np.array([START[0]]), name="w0")
        w1 = gn.Parameter(np.array([START[1]]), name="w1")
        loss = gn.mse(w0 + w1 * x, y)
    return x, y, w0, w1, gn.compile(loss, wrt=[w0, w1])


def loss_surface(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """J at every grid point (a[i], b[i]) in one run of a graph: rows are weights, columns data."""
    with gn.Graph("surface"):
        w0 = gn.Input((1,), name="w0")                       # (G, 1): one row per grid point
        w1 = gn.Input((1,), name="w1")
        r = w0 + w1 * gn.constant(x[None, :]) - gn.constant(y[None, :])   # residuals (G, n)
        J = gn.mean(r * r, axis=1)
    return gn.compile(J)({w0: a.reshape(-1, 1), w1: b.reshape(-1, 1)}).reshape(a.shape)


def descend(prog, feeds: dict, w0, w1, step, steps: int) -> tuple[np.ndarray, list]:
    """Run ``steps`` updates from START; returns the (w0, w1) path and the loss before each."""
    w0.value = np.array([START[0]], np.float32)
    w1.value = np.array([START[1]], np.float32)
    path, losses = [START], []
    for _ in range(steps):
        J, grads = prog(feeds)
        losses.append(float(J))
        step(grads)
        path.append((float(w0.value[0]), float(w1.value[0])))
    losses.append(float(prog(feeds)[0]))
    return np.array(path), losses


def contour(ax, grid, title: str) -> None:
    """The loss surface as log-spaced contour lines, with the minimum marked."""
    a, b, J, best = grid
    levels = np.geomspace(J.min() + 0.05, J.max(), 14)
    ax.contour(a, b, J, levels=levels, cmap="viridis", linewidths=0.8)
    ax.plot(*best, "*", color="gold", mec="k", ms=15, zorder=10, label="minimum")
    ax.plot(*START, "ko", ms=6, zorder=10, label="start")
    ax.set(xlabel="$w_0$ (bias)", ylabel="$w_1$ (weight)", title=title,
           xlim=(a.min(), a.max()), ylim=(b.min(), b.max()))
    ax.set_aspect("equal", adjustable="box")


def run(quick: bool, out: Path, seed: int) -> dict:
    n = 100
    steps_lr, steps_opt = 20, 60
    xs, ys = make_data(n, seed)
    x, y, w0, w1, prog = build()
    feeds = {x: xs, y: ys}

    # The bowl's steepest curvature L (largest eigenvalue of the Hessian 2 [[1, m], [m, s]])
    # sets the scale: gradient descent converges for lr < 2 / L and diverges above.
    m, s = float(xs.mean()), float((xs * xs).mean())
    L = float(np.linalg.eigvalsh(2 * np.array([[1, m], [m, s]])).max())
    rates = {"too small": 0.05 / L, "good": 1.0 / L, "too large": 2.08 / L}

    k = 61 if quick else 121                                # grid points per axis
    a, b = np.meshgrid(np.linspace(-5, 5, k), np.linspace(-4, 6, k))
    J = loss_surface(xs, ys, a.astype(np.float32), b.astype(np.float32))
    A = np.stack([np.ones(n), xs], 1)
    best = np.linalg.lstsq(A, ys, rcond=None)[0]
    grid = (a, b, J, best)

    summary: dict = {"minimum_loss": float(np.mean((A @ best - ys) ** 2)),
                     "minimum_w": best, "max_curvature_L": L}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, (label, lr) in zip(axes, rates.items()):
        def gd(grads, lr=lr):
            w0.value -= lr * grads[0]               # w <- w - lr * dJ/dw
            w1.value -= lr * grads[1]
        path, losses = descend(prog, feeds, w0, w1, gd, steps_lr)
        contour(ax, grid, f"learning rate {lr:.3f} ({label})\n"
                          f"loss after {steps_lr} steps: {losses[-1]:.3g}")
        ax.plot(path[:, 0], path[:, 1], ".-", color="C3", ms=4, lw=1, label="gradient descent")
        ax.legend(loc="lower left", framealpha=0.9)
        summary[f"gd_{label.replace(' ', '_')}"] = {"lr": lr, "final_loss": losses[-1]}
    fig.tight_layout()
    pics = [savefig(fig, out, "lecture1_learning_rates")]

    optimizers = {
        "SGD": gn.optimizers.SGD(learning_rate=0.05),
        "SGD + momentum 0.9": gn.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        "RMSProp": gn.optimizers.RMSProp(learning_rate=0.1),
        "Adam": gn.optimizers.Adam(learning_rate=0.3),
    }
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.8))
    contour(a0, grid, f"{steps_opt} steps of each optimizer from the same start")
    for i, (label, opt) in enumerate(optimizers.items()):
        path, losses = descend(prog, feeds, w0, w1,
                               lambda grads, opt=opt: opt.apply(grads, [w0, w1]), steps_opt)
        a0.plot(path[:, 0], path[:, 1], ".-", color=f"C{i}", ms=3, lw=1, label=label)
        a1.plot(np.arange(steps_opt + 1), losses, color=f"C{i}", label=label)
        summary[label] = {"final_loss": losses[-1]}
    a0.legend(loc="lower left", framealpha=0.9)
    a1.axhline(summary["minimum_loss"], color="k", ls="--", lw=1, label="least-squares minimum")
    a1.set(xlabel="step", ylabel="loss $J(w_0, w_1)$ (MSE)", yscale="log",
           title="loss per step")
    a1.legend()
    fig.tight_layout()
    pics.append(savefig(fig, out, "lecture1_optimizers"))
    summary["pictures"] = [str(p) for p in pics]
    return rounded(summary)
