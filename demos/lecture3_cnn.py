"""Convolutional networks: filters, feature maps, ReLU, max pooling; a CNN vs an MLP on digits.

First the convolution itself: hand-set Sobel edge filters slid over one digit by ``gn.conv2d``,
then ReLU and 2x2 max pooling (the lecture's "filters detect features"). Then the lecture's
CNN, conv -> pool -> conv -> pool -> dense softmax, against an MLP with as many weights, on
scikit-learn's digits drawn on a 16x16 canvas: centred (where both do well) and at random
places (where the CNN's shared, local filters still find the strokes and the MLP, which must
learn every position separately, falls behind).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import draw_layers, plt, progress, rounded, savefig

ORDER = 1  # place in Lecture 3's story (python -m demos lists in this order)

CANVAS = 16  # the 8x8 digits are drawn on a 16x16 canvas: centred or anywhere on it

# Sobel filters (kh, kw, in=1, out=2): brightness rising to the right (vertical edges) and
# rising downwards (horizontal edges); convolution layers compute cross-correlations, as here
SOBEL = np.stack([np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
                  np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])], axis=-1)[:, :, None, :]


def on_canvas(x: np.ndarray, rng: np.random.Generator | None, copies: int = 1) -> np.ndarray:
    """(n, 64) digits drawn on (n * copies, 16, 16, 1) canvases: centred when ``rng`` is None,
    else each copy at a uniformly random place (its own fresh offset)."""
    n, room = len(x), CANVAS - 8
    out = np.zeros((n * copies, CANVAS, CANVAS, 1), np.float32)
    for c in range(copies):
        off = np.full((n, 2), room // 2) if rng is None else rng.integers(0, room + 1, (n, 2))
        for i, (r, s) in enumerate(off):
            out[c * n + i, r:r + 8, s:s + 8, 0] = x[i].reshape(8, 8)
    return out


def cnn(seed: int) -> gn.Sequential:
    """The lecture's CNN: two conv(3x3, ReLU) + max-pool(2x2, stride 2) stages, then a dense
    layer to 10 class scores (softmax lives in the loss)."""
    L = gn.layers
    return gn.Sequential([
        L.Conv2D(16, 3, padding="same", activation="relu", seed=seed, name="conv1"),
        L.MaxPool2D(2, name="pool1"),
        L.Conv2D(32, 3, padding="same", activation="relu", seed=seed + 1, name="conv2"),
        L.MaxPool2D(2, name="pool2"),
        L.Flatten(name="flatten"),
        L.Dense(10, seed=seed + 2, name="scores"),
    ], input_shape=(CANVAS, CANVAS, 1), name="cnn")


def mlp(seed: int, hidden: int = 38) -> gn.Sequential:
    """A one-hidden-layer MLP on the 256 pixels, sized to the CNN's weight count."""
    L = gn.layers
    return gn.Sequential([L.Flatten(name="flatten"),
                          L.Dense(hidden, activation="relu", seed=seed, name="hidden"),
                          L.Dense(10, seed=seed + 1, name="scores")],
                         input_shape=(CANVAS, CANVAS, 1), name="mlp")


def train(model: gn.Sequential, data: tuple, epochs: int, seed: int, quick: bool) -> dict:
    """Adam on softmax cross-entropy; per-epoch training and held-out accuracy."""
    (x, y), (xt, yt) = data
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_softmax_cross_entropy", metrics=["accuracy"])
    hist: dict[str, list] = {"accuracy": [], "val_accuracy": [], "loss": []}
    rng = np.random.default_rng(seed)
    for _ in progress(range(epochs), desc=model.name, quick=quick):
        h = model.fit(x, y, batch_size=32, epochs=1, validation_data=(xt, yt), verbose=0,
                      seed=int(rng.integers(2**31))).history
        for k in hist:
            hist[k].append(h[k][-1])
    return hist


# -- pictures ---------------------------------------------------------------------------------

def convolution_picture(digit: np.ndarray, out: Path) -> Path:
    """One digit (a blank border added, enlarged 4x, bilinear) through the two Sobel filters,
    ReLU and 2x2 max pooling, all computed by graphnet ops."""
    digit = np.pad(digit.reshape(8, 8), 1)
    with gn.Graph("sobel"):
        img = gn.Input((10, 10, 1), name="digit")
        big = gn.upsample2d(img, 4, "bilinear")                        # 32x32, smooth strokes
        edges = gn.conv2d(big, gn.constant(SOBEL.astype(np.float32)), padding="same")
        rect = gn.relu(edges)                                          # keep the positive side
        pooled = gn.max_pool2d(rect, 2)                                # 2x2 windows, stride 2
    big_v, edges_v, rect_v, pooled_v = gn.compile([big, edges, rect, pooled])(
        {img: digit.reshape(1, 10, 10, 1).astype(np.float32)})

    fig, axes = plt.subplots(2, 5, figsize=(13, 6.4))
    names = ("Sobel x filter:\nvertical edges", "Sobel y filter:\nhorizontal edges")
    lim = np.abs(edges_v).max()
    for r in range(2):
        ax = axes[r]
        ax[0].imshow(big_v[0, :, :, 0], cmap="gray_r")
        ax[0].set_title("input: a digit,\n4x bilinear", fontsize=10)
        k = SOBEL[:, :, 0, r]
        ax[1].imshow(k, cmap="RdBu_r", vmin=-2, vmax=2)
        for (i, j), v in np.ndenumerate(k):
            ax[1].text(j, i, f"{v:+d}" if v else "0", ha="center", va="center", fontsize=12)
        ax[1].set_title(names[r], fontsize=10)
        ax[2].imshow(edges_v[0, :, :, r], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax[2].set_title("gn.conv2d: feature map\n(+ red, - blue)", fontsize=10)
        ax[3].imshow(rect_v[0, :, :, r], cmap="magma")
        ax[3].set_title("ReLU:\npositive responses only", fontsize=10)
        ax[4].imshow(pooled_v[0, :, :, r], cmap="magma")
        ax[4].set_title(f"2x2 max pool, stride 2:\n{pooled_v.shape[1]}x{pooled_v.shape[2]}",
                        fontsize=10)
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
            a.grid(False)
    fig.suptitle("A filter slid over the image: each output pixel is the dot product of the 3x3 "
                 "filter with the patch under it")
    fig.tight_layout()
    return savefig(fig, out, "lecture3_convolution")


def curves_picture(runs: dict, out: Path) -> Path:
    """Training and held-out accuracy per epoch, CNN vs MLP, on both canvases."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, where in zip(axes, ("centred", "shifted")):
        for name, color in (("CNN", "C0"), ("MLP", "C3")):
            h = runs[where][name]["history"]
            ep = np.arange(1, len(h["accuracy"]) + 1)
            ax.plot(ep, h["val_accuracy"], color=color, lw=2,
                    label=f"{name} held-out ({h['val_accuracy'][-1]:.1%})")
            ax.plot(ep, h["accuracy"], color=color, lw=1, ls="--", label=f"{name} training")
        ax.set(xlabel="epoch", title=f"digits {where} on a 16x16 canvas", ylim=(0, 1.02))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    return savefig(fig, out, "lecture3_cnn_training")


def tiles(maps: np.ndarray, cell: int = 48, gap: int = 6) -> np.ndarray:
    """(h, w, c) maps side by side in one image, each enlarged to ``cell`` pixels (nearest)
    and scaled to [0, 1] by its own largest magnitude; NaN gaps read as blank."""
    h, w, c = maps.shape
    row = np.full((cell, c * (cell + gap) - gap), np.nan)
    for j in range(c):
        m = np.kron(maps[:, :, j], np.ones((cell // h, cell // w)))
        top = np.abs(m).max()
        row[:, j * (cell + gap):j * (cell + gap) + cell] = m / top if top > 0 else m
    return row


def feature_maps_picture(model: gn.Sequential, image: np.ndarray, label: int,
                         out: Path) -> Path:
    """The learned conv1 filters and one digit's feature maps after each conv and pool layer
    (one tiled image per row: a grid of small axes would take seconds to draw)."""
    stages = ["conv1", "pool1", "conv2", "pool2"]
    taps = [model.get_layer(s).calls[0][1][0] for s in stages]
    maps = gn.Model(model.inputs, taps, name="taps").predict(image[None])
    filters = model.get_layer("conv1").get_weights()[0][:, :, 0, :]    # (3, 3, 16)
    cols = filters.shape[-1]
    fig, axes = plt.subplots(len(stages) + 1, 2, figsize=(13, 5.4),
                             gridspec_kw={"width_ratios": [1, cols]})
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
        a.grid(False)
        a.set_frame_on(False)
    axes[0, 1].imshow(tiles(filters), cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0, 1].set_ylabel("conv1\nfilters", rotation=0, ha="right", va="center")
    axes[0, 1].set_title(f"filters and channels 0-{cols - 1}, each scaled to its own maximum "
                         "(red +, blue -; feature maps black = 0)", fontsize=10)
    axes[1, 0].imshow(image[:, :, 0], cmap="gray_r")
    axes[1, 0].set_frame_on(True)
    axes[1, 0].set_title(f"input: a {label}", fontsize=9)
    for r, (stage, m) in enumerate(zip(stages, maps), start=1):
        axes[r, 1].imshow(tiles(m[0, :, :, :cols]), cmap="magma", vmin=0, vmax=1)
        axes[r, 1].set_ylabel(f"{stage}\n{m.shape[1]}x{m.shape[2]}x{m.shape[3]}",
                              rotation=0, ha="right", va="center")
    fig.tight_layout()
    return savefig(fig, out, "lecture3_feature_maps")


def predictions_picture(x: np.ndarray, y: np.ndarray, preds: dict, out: Path) -> Path:
    """A few shifted test digits with the CNN's and the MLP's guesses (red when wrong)."""
    n = len(x)
    fig, axes = plt.subplots(1, n, figsize=(1.3 * n, 1.9))
    for i, a in enumerate(np.atleast_1d(axes)):
        a.imshow(x[i, :, :, 0], cmap="gray_r")
        a.set_xticks([])
        a.set_yticks([])
        a.grid(False)
        a.set_title(f"{y[i]}", fontsize=10)
        lines = [(f"{k} {p[i]}", "k" if p[i] == y[i] else "r") for k, p in preds.items()]
        for t, (text, color) in enumerate(lines):
            a.text(0.5, -0.12 - 0.2 * t, text, transform=a.transAxes, ha="center", va="top",
                   color=color, fontsize=9)
    fig.suptitle("shifted test digits (label above; predictions below, red = wrong)", y=1.04)
    return savefig(fig, out, "lecture3_cnn_predictions")


# -- the demo ---------------------------------------------------------------------------------

def run(quick: bool, out: Path, seed: int) -> dict:
    (x_train, y_train), (x_test, y_test) = gn.datasets.digits()
    rng = np.random.default_rng(seed)
    # quick: a slice of the data, few epochs; the same code paths and pictures
    n_train, epochs, copies = (400, 5, 2) if quick else (len(x_train), 15, 6)
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    sets = {
        "centred": ((on_canvas(x_train, None), y_train), (on_canvas(x_test, None), y_test)),
        "shifted": ((on_canvas(x_train, rng, copies), np.tile(y_train, copies)),
                    (on_canvas(x_test, rng), y_test)),
    }
    pictures = [convolution_picture(x_test[0], out)]

    runs: dict = {}
    for where, data in sets.items():
        runs[where] = {}
        for name, make in (("CNN", cnn), ("MLP", mlp)):
            model = make(seed)
            hist = train(model, data, epochs, seed, quick)
            runs[where][name] = {"model": model, "history": hist, "params": model.count_params()}
    pictures.append(curves_picture(runs, out))

    best = runs["shifted"]["CNN"]["model"]
    (xs, ys) = sets["shifted"][1]
    pictures.append(feature_maps_picture(best, xs[0], int(ys[0]), out))
    show = slice(0, 10)
    preds = {name: runs["shifted"][name]["model"].predict(xs[show]).argmax(-1)
             for name in ("CNN", "MLP")}
    pictures.append(predictions_picture(xs[show], ys[show], preds, out))
    drawing = draw_layers(best, out, "lecture3_cnn_model")
    if not drawing.startswith("no drawing"):
        pictures.append(Path(drawing))

    summary: dict = {"training_images": {k: len(v[0][1]) for k, v in sets.items()},
                     "test_images": len(y_test), "epochs": epochs}
    for where in sets:
        summary[where] = {name: {"test_accuracy": r["history"]["val_accuracy"][-1],
                                 "train_accuracy": r["history"]["accuracy"][-1],
                                 "params": r["params"]}
                          for name, r in runs[where].items()}
    if drawing.startswith("no drawing"):
        summary["drawing"] = drawing
    summary["pictures"] = [str(p) for p in pictures]
    return rounded(summary)
