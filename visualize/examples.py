"""Small example graphs for the drawings in docs/visualize.md and the tests.

``python -m graphnet.visualize.examples docs/img`` regenerates the committed pictures. The
RNNs are unrolled by hand from graphnet ops, one name scope ``t<k>`` per time step, which is
the naming ``render(..., roll=...)`` understands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import graphnet as gn


def mlp(hidden: int = 16, classes: int = 3, features: int = 4, seed: int = 0):
    """A two-layer perceptron as a compiled Sequential model with dropout."""
    model = gn.Sequential([gn.layers.Dense(hidden, activation="relu"),
                           gn.layers.Dropout(0.5),
                           gn.layers.Dense(classes)], input_shape=(features,), name="mlp")
    model.compile(optimizer=gn.optimizers.SGD(0.1),
                  loss="sparse_softmax_cross_entropy")
    return model


def rnn(steps: int = 4, features: int = 3, units: int = 4, scale: float = 1.0,
        seed: int = 0) -> tuple[gn.Graph, gn.Tensor, gn.Tensor, gn.Tensor]:
    """``h_t = tanh(x_t Wx + h_{t-1} Wh + b)`` unrolled over ``steps``, then ``y = h_T Wy``
    and an MSE loss. Returns (graph, x, target, loss); ``scale`` multiplies ``Wh``."""
    rng = np.random.default_rng(seed)
    with gn.Graph("rnn") as g:
        x = gn.Input((steps, features), name="x")
        target = gn.Input((1,), name="target")
        with g.name_scope("rnn"):
            Wx = gn.Parameter(rng.normal(0, 0.5, (features, units)), name="Wx")
            Wh = gn.Parameter(scale * rng.normal(0, 0.5, (units, units)), name="Wh")
            b = gn.Parameter(np.zeros(units), name="b")
            h = gn.constant(np.zeros((1, units), np.float32), name="h0")
            for t in range(steps):
                with g.name_scope(f"t{t}", unique=False):
                    h = gn.tanh(x[:, t] @ Wx + h @ Wh + b)
        with g.name_scope("head"):
            Wy = gn.Parameter(rng.normal(0, 0.5, (units, 1)), name="Wy")
            y = h @ Wy
        loss = gn.mse(y, target)
    return g, x, target, loss


def cnn(seed: int = 0) -> tuple[gn.Graph, gn.Tensor, gn.Tensor, gn.Tensor]:
    """A small CNN from the Lecture 3 layers: a stride-2 2x2 convolution with ReLU, 2x2 max
    pooling, a flatten and a dense softmax classifier. Returns (graph, images, labels, loss)."""
    L = gn.layers
    with gn.Graph("cnn") as g:
        img = gn.Input((8, 8, 1), name="images")
        labels = gn.Input((), dtype="int64", name="labels")
        fmap = L.Conv2D(6, 2, strides=2, activation="relu", seed=seed, name="conv")(img)
        pooled = L.MaxPool2D(name="maxpool")(fmap)           # (N, 2, 2, 6)
        flat = L.Flatten(name="flatten")(pooled)
        logits = L.Dense(10, use_bias=False, seed=seed, name="dense")(flat)
        loss = gn.softmax_cross_entropy(logits, labels)
    return g, img, labels, loss


def _bad_mlp() -> gn.Tensor:
    """A dense layer whose kernel was given the wrong input size (4 features, kernel 3 x 2)."""
    g = gn.Graph.current()
    x = gn.Input((4,), name="x")
    with g.name_scope("dense"):
        h = gn.relu(x @ gn.Parameter(shape=(4, 3), name="kernel", seed=0))
    with g.name_scope("dense_1"):
        return h @ gn.Parameter(shape=(4, 2), name="kernel", seed=1)


def main(out: str = "docs/img") -> None:
    """Regenerate the pictures of docs/visualize.md."""
    from . import render, render_error, render_gradients, render_modes
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    model = mlp()
    render(model, d / "mlp_layers.png", level="layer", dpi=96)
    render(model, d / "mlp_ops.png", level="op", dpi=110)
    render_modes(model, d / "mlp_modes.png", dpi=110)
    render_error(_bad_mlp, d / "shape_error.png", dpi=72)
    _, x, target, loss = rnn(steps=3)
    render(loss, d / "rnn_unrolled.png", level="op", roll=False, dpi=72)
    render(loss, d / "rnn_rolled.png", level="op", roll=True, dpi=72)
    _, img, labels, closs = cnn()
    render(closs, d / "cnn.png", level="layer", dpi=96)
    steps = 8
    _, x, target, loss = rnn(steps=steps, scale=0.25)
    rng = np.random.default_rng(1)
    feeds = {x: rng.normal(size=(4, steps, 3)), target: rng.normal(size=(4, 1))}
    render_gradients(loss, feeds, d / "rnn_vanishing_gradients.png", level="layer",
                     dpi=72, vanish=1e-4, show_shapes=False,
                     title="An RNN whose gradients vanish through time (|Wh| small)")


if __name__ == "__main__":
    main(*sys.argv[1:])
