"""One perceptron y = g(w0 + X^T W) with a sigmoid, trained by hand-written gradient descent.

Lecture 1's first model, written with the low-level graph API: two Inputs, two Parameters,
``gn.compile(loss, wrt=[w0, W])`` for the loss and its gradients, and the update
``w.value -= lr * g`` spelled out in a Python loop. Pictures: the learned decision boundary
over the data, and the loss per step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import decision_map, plt, progress, rounded, savefig

ORDER = 1  # place in Lecture 1's story (python -m demos lists in this order)


def build() -> tuple:
    """The perceptron's graph: inputs x, y; parameters w0, W; output y_hat; loss J."""
    with gn.Graph("perceptron"):
        x = gn.Input((2,), name="x")                          # one row per sample: (None, 2)
        y = gn.Input((1,), name="y")                          # labels 0 / 1 as floats
        w0 = gn.Parameter(np.zeros(1), name="w0")             # bias
        W = gn.Parameter(np.zeros((2, 1)), name="W")          # weights
        z = w0 + x @ W                                        # w0 + X^T W, shape (None, 1)
        y_hat = gn.sigmoid(z)                                 # g(z) = 1 / (1 + e^-z)
        loss = gn.binary_cross_entropy(y_hat, y)              # empirical loss J(W)
    return x, y, w0, W, y_hat, loss


def run(quick: bool, out: Path, seed: int) -> dict:
    n, steps, lr = (200, 150, 1.0) if quick else (400, 500, 1.0)
    X, labels = gn.datasets.linear(n, noise=0.7, seed=seed)
    Y = labels.astype(np.float32)[:, None]

    x, y, w0, W, y_hat, loss = build()
    train = gn.compile(loss, wrt=[w0, W])   # calls return (J, [dJ/dw0, dJ/dW])
    predict = gn.compile(y_hat)             # forward only
    losses = []
    for _ in progress(range(steps), "gradient descent", quick=quick):
        J, (g0, gW) = train({x: X, y: Y})
        w0.value -= lr * g0                 # gradient descent: w <- w - lr * dJ/dw
        W.value -= lr * gW
        losses.append(float(J))
    final_loss = float(train({x: X, y: Y})[0])
    p = predict({x: X})[:, 0]
    acc = float(np.mean((p > 0.5) == (labels == 1)))

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"width_ratios": [1.2, 1]})
    decision_map(a0, lambda g: predict({x: g}), X, labels)
    w = W.value[:, 0]
    a0.set_title(f"perceptron $g(w_0 + X^T W)$: accuracy {acc:.1%}\n"
                 f"$w_0$ = {w0.value[0]:.2f}, $W$ = ({w[0]:.2f}, {w[1]:.2f}); "
                 "black line: $\\hat y$ = 0.5")
    a1.plot(np.arange(1, steps + 1), losses, color="C0")
    a1.set(xlabel="gradient-descent step", ylabel="binary cross-entropy $J(W)$",
           title=f"empirical loss, learning rate {lr}", yscale="log")
    fig.tight_layout()
    pic = savefig(fig, out, "lecture1_perceptron")

    return rounded({"accuracy": acc, "final_loss": final_loss, "w0": float(w0.value[0]),
                    "W": w, "steps": steps, "samples": n, "picture": str(pic)})
