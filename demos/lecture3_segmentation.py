"""Semantic segmentation: a small U-Net labels every pixel of generated shape scenes.

Each 32x32 scene holds one to three circles, squares and triangles of random size, place and
brightness on a textured, noisy background; the label of every pixel is its class
(background, circle, square, triangle). The network is fully convolutional: an encoder of
conv + 2x2 max-pool stages shrinks the image while its features grow, a decoder of 2x2
transposed convolutions (learned up-sampling) grows it back, and U-Net's skip connections
concatenate each encoder stage's features into the decoder, so the output keeps sharp edges.
The loss is softmax cross-entropy per pixel; we report pixel accuracy and IoU per class on
held-out scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import CLASS_COLORS, draw_layers, plt, progress, rounded, savefig

ORDER = 2  # place in Lecture 3's story (python -m demos lists in this order)

CLASSES = ("background", "circle", "square", "triangle")
SIZE = 32


def scenes(n: int, seed: int, size: int = SIZE, max_shapes: int = 3
           ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes: images (n, size, size, 1) float32 (centred on 0) and per-pixel class ids
    (n, size, size) int64. Later shapes cover earlier ones, so labels follow what is seen."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    X = np.empty((n, size, size, 1), np.float32)
    Y = np.zeros((n, size, size), np.int64)
    s = size / 32  # shapes keep their proportions at other sizes
    for i in range(n):
        # texture: three plane waves of random direction and frequency, then pixel noise
        waves = sum(np.sin(f[0] * xx / s + f[1] * yy / s + ph) for f, ph in
                    zip(rng.uniform(0.1, 0.5, (3, 2)), rng.uniform(0, 2 * np.pi, 3)))
        img = 0.35 + 0.1 * waves / 3
        for _ in range(rng.integers(1, max_shapes + 1)):
            k = int(rng.integers(1, len(CLASSES)))
            r = rng.uniform(4, 8) * s
            dx, dy = xx - rng.uniform(r, size - r), yy - rng.uniform(r, size - r)
            # three shapes of about the same area (2.5 r^2)
            if k == 1:
                inside = dx * dx + dy * dy <= (0.9 * r) ** 2
            elif k == 2:
                inside = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
            else:  # an upright equilateral triangle: three half-planes, inradius 0.7 r
                inside = np.ones_like(dx, bool)
                for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
                    inside &= np.sin(a) * dx + np.cos(a) * dy <= 0.7 * r
            img = np.where(inside, rng.uniform(0.6, 1.0), img)
            Y[i][inside] = k
        X[i, :, :, 0] = img + rng.normal(0, 0.06, img.shape) - 0.5
    return X, Y


def unet(width: int, seed: int, skips: bool = True, size: int = SIZE) -> gn.Model:
    """A two-level U-Net: (conv, conv, pool) x 2, a bottleneck conv, then (transposed conv,
    concatenate the encoder's features, conv) x 2 and a 1x1 conv to per-pixel class scores.
    ``skips=False`` leaves out the concatenations: a plain encoder-decoder."""
    L = gn.layers
    seeds = iter(range(seed, seed + 100))  # each layer its own initial weights

    def conv(filters: int, name: str, k: int = 3, act: str | None = "relu") -> gn.layers.Conv2D:
        return L.Conv2D(filters, k, padding="same", activation=act, name=name, seed=next(seeds))

    with gn.Graph("unet"):
        image = gn.Input((size, size, 1), name="image")
        e1 = conv(width, "enc1b")(conv(width, "enc1a")(image))                 # size
        e2 = L.MaxPool2D(2, name="pool1")(e1)                                  # size / 2
        e2 = conv(2 * width, "enc2b")(conv(2 * width, "enc2a")(e2))
        b = conv(4 * width, "bottleneck")(L.MaxPool2D(2, name="pool2")(e2))    # size / 4
        u2 = L.Conv2DTranspose(2 * width, 2, strides=2, activation="relu", name="up2",
                               seed=next(seeds))(b)                               # size / 2
        d2 = conv(2 * width, "dec2")(L.Concatenate(name="skip2")([u2, e2]) if skips else u2)
        u1 = L.Conv2DTranspose(width, 2, strides=2, activation="relu", name="up1",
                               seed=next(seeds))(d2)                              # size
        d1 = conv(width, "dec1")(L.Concatenate(name="skip1")([u1, e1]) if skips else u1)
        scores = conv(len(CLASSES), "scores", k=1, act=None)(d1)               # (size, size, 4)
    return gn.Model(image, scores, name="unet" if skips else "encoder_decoder")


def scores_of(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel accuracy and intersection over union per class (|P and T| / |P or T|)."""
    iou = {}
    for k, name in enumerate(CLASSES):
        p, t = pred == k, truth == k
        union = np.count_nonzero(p | t)
        iou[name] = np.count_nonzero(p & t) / union if union else 1.0
    return {"pixel_accuracy": float(np.mean(pred == truth)), "iou": iou,
            "mean_iou": float(np.mean(list(iou.values())))}


# -- pictures ---------------------------------------------------------------------------------

MASK_COLORS = ("#303030", *CLASS_COLORS[:3])  # background dark, shapes in the demos' colours


def masks_picture(x: np.ndarray, truth: np.ndarray, preds: dict, out: Path) -> Path:
    """Inputs, ground-truth masks and each model's predicted masks, one column per scene."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    cmap = ListedColormap(MASK_COLORS)
    n = len(x)
    fig, axes = plt.subplots(2 + len(preds), n, figsize=(1.7 * n, 2.0 * (2 + len(preds))))
    for j in range(n):
        rows = ((x[j, :, :, 0], {"cmap": "gray"}), (truth[j], {"cmap": cmap}),
                *((p[j], {"cmap": cmap}) for p in preds.values()))
        for r, (img, kw) in enumerate(rows):
            a = axes[r, j]
            a.imshow(img, interpolation="nearest", vmin=None if r == 0 else 0,
                     vmax=None if r == 0 else len(CLASSES) - 1, **kw)
            a.set_xticks([])
            a.set_yticks([])
            a.grid(False)
        for r, p in enumerate(preds.values(), start=2):
            axes[r, j].set_title(f"{np.mean(p[j] == truth[j]):.0%} right", fontsize=9)
    for r, label in enumerate(("input", "ground truth", *preds)):
        axes[r, 0].set_ylabel(label, fontsize=10)
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(MASK_COLORS, CLASSES)],
               loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("held-out scenes: the input, every pixel's class, and each network's per-pixel "
                 "argmax (share of pixels right)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return savefig(fig, out, "lecture3_segmentation")


def curves_picture(hists: dict, baseline: float, out: Path) -> Path:
    """Training loss, and held-out pixel accuracy and mean IoU, per epoch, for each model."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.0))
    for (name, hist), color in zip(hists.items(), ("C0", "C3")):
        ep = np.arange(1, len(hist["loss"]) + 1)
        a0.plot(ep, hist["loss"], "o-", color=color, label=name)
        a1.plot(ep, hist["pixel_accuracy"], "o-", color=color, label=f"{name}: pixel accuracy")
        a1.plot(ep, hist["mean_iou"], "s--", color=color, label=f"{name}: mean IoU")
    a0.set(xlabel="epoch", ylabel="per-pixel cross-entropy", yscale="log",
           title="training loss")
    a0.legend()
    a1.axhline(baseline, color="k", ls="--", lw=1,
               label=f"all background: accuracy {baseline:.1%}")
    a1.set(xlabel="epoch", ylim=(0, 1.02), title="held-out scenes")
    a1.legend(loc="lower right", fontsize=8)
    for a in (a0, a1):
        a.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return savefig(fig, out, "lecture3_segmentation_training")


# -- the demo ---------------------------------------------------------------------------------

def train(model: gn.Model, data: tuple, epochs: int, seed: int, quick: bool) -> dict:
    """Adam on per-pixel softmax cross-entropy; held-out pixel accuracy and mean IoU per epoch."""
    (x, y), (xt, yt) = data
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_softmax_cross_entropy")   # (B, H, W, 4) logits, (B, H, W) ids
    hist: dict[str, list] = {"loss": [], "pixel_accuracy": [], "mean_iou": []}
    rng = np.random.default_rng(seed)
    for _ in progress(range(epochs), desc=model.name, quick=quick):
        h = model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                      seed=int(rng.integers(2**31))).history
        s = scores_of(model.predict(xt).argmax(-1), yt)
        hist["loss"].append(h["loss"][-1])
        hist["pixel_accuracy"].append(s["pixel_accuracy"])
        hist["mean_iou"].append(s["mean_iou"])
    return hist


def run(quick: bool, out: Path, seed: int) -> dict:
    n_train, n_test, width, epochs = (160, 48, 8, 5) if quick else (1500, 300, 8, 15)
    data = scenes(n_train, seed), scenes(n_test, seed + 1)
    xt, yt = data[1]
    baseline = float(np.mean(yt == 0))                   # always answering "background"

    hists, preds, results = {}, {}, {}
    for label, skips in (("U-Net", True), ("no skips", False)):
        model = unet(width, seed, skips)
        hists[label] = train(model, data, epochs, seed, quick)
        preds[label] = model.predict(xt).argmax(-1)
        results[label] = {"params": model.count_params(), **scores_of(preds[label], yt),
                          "final_training_loss": hists[label]["loss"][-1]}
        if skips:
            drawing = draw_layers(model, out, "lecture3_unet_model")  # skips visible
    pictures = [masks_picture(xt[:8], yt[:8], {k: p[:8] for k, p in preds.items()}, out),
                curves_picture(hists, baseline, out)]
    summary = {"training_scenes": n_train, "test_scenes": n_test, "epochs": epochs,
               "background_only_accuracy": baseline, **results["U-Net"],
               "without_skips": results["no skips"]}
    if drawing.startswith("no drawing"):
        summary["drawing"] = drawing
    else:
        pictures.append(Path(drawing))
    summary["pictures"] = [str(p) for p in pictures]
    return rounded(summary)
