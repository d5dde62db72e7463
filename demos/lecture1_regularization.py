"""Regularization: an over-parameterised MLP on digits, with and without dropout, early stopping.

A 64-512-512-10 MLP has ~300k weights for ~1150 training images, so it can memorise them:
training loss keeps falling while validation loss turns up (overfitting). Dropout (random
units zeroed in training) and EarlyStopping on val_loss (keep the weights of the best epoch)
are Lecture 1's two remedies; the demo trains both models with gn.Sequential / model.fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import plt, rounded, savefig

ORDER = 4  # place in Lecture 1's story (python -m demos lists in this order)


def make_model(hidden: int, dropout: float, seed: int, lr: float = 3e-3) -> gn.Sequential:
    """Two wide ReLU layers, each followed by Dropout when ``dropout`` > 0."""
    layers = []
    for i in range(2):
        layers.append(gn.layers.Dense(hidden, activation="relu", seed=seed + i))
        if dropout:
            layers.append(gn.layers.Dropout(dropout, seed=seed + 10 + i))
    layers.append(gn.layers.Dense(10, seed=seed + 2))
    model = gn.Sequential(layers, input_shape=(64,))
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=lr),
                  loss="sparse_softmax_cross_entropy", metrics=["accuracy"])
    return model


def draw(model: gn.Model, x: np.ndarray, y: np.ndarray, out: Path) -> list[str] | str:
    """The network at layer level, training vs inference (dropout), and its gradient norms."""
    import graphnet.visualize as viz
    paths = [out / "model_layers.png", out / "model_train_vs_infer.png",
             out / "model_gradients.png"]
    try:
        viz.render(model, paths[0], level="layer", show_shapes=True)
        viz.render_modes(model, paths[1])
        viz.render_gradients(model, (x, y), paths[2], level="layer",
                             title="gradient norms of one batch (dropout on)")
    except viz.GraphvizNotFound as e:  # the DOT sources are written; say how to get pictures
        return f"no drawings: {e}"
    return [str(p) for p in paths]


def run(quick: bool, out: Path, seed: int) -> dict:
    (x_train, y_train), (x_test, y_test) = gn.datasets.digits()
    hidden, epochs, patience = (64, 12, 2) if quick else (512, 200, 20)
    variants = {"no dropout": 0.0, "dropout 0.5": 0.5}

    summary: dict = {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, (label, rate) in zip(axes, variants.items()):
        model = make_model(hidden, rate, seed)
        stop = gn.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                          restore_best_weights=True)
        hist = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.2,
                         callbacks=[stop], verbose=0, seed=seed).history
        loss, val = np.array(hist["loss"]), np.array(hist["val_loss"])
        best = int(np.argmin(val))               # the epoch whose weights were restored
        ep = np.arange(1, len(loss) + 1)
        test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)[:2]

        ax.plot(ep, loss, color="C0", label="training loss")
        ax.plot(ep, val, color="C3", label="validation loss")
        ax.axvline(best + 1, color="k", ls="--", lw=1)
        ax.plot(best + 1, val[best], "k*", ms=12,
                label=f"best val_loss, epoch {best + 1} (weights kept)")
        if len(loss) < epochs:
            ax.plot(ep[-1], val[-1], "kx", ms=9, mew=2,
                    label=f"stopped at epoch {len(loss)} (patience {patience})")
        ax.set(xlabel="epoch", yscale="log", title=f"{label}: test accuracy {test_acc:.1%}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
        summary[label] = {"test_accuracy": test_acc, "test_loss": test_loss,
                          "best_epoch": best + 1, "epochs_run": len(loss),
                          "train_loss_at_best": loss[best], "val_loss_at_best": val[best]}
        if rate:
            summary["drawings"] = draw(model, x_train[:64], y_train[:64], out)
    axes[0].set_ylabel("cross-entropy")
    fig.suptitle(f"64-{hidden}-{hidden}-10 MLP on digits ({len(x_train)} training images, 20% of "
                 "them held out for validation), Adam 3e-3, EarlyStopping on val_loss")
    fig.tight_layout()
    summary["picture"] = str(savefig(fig, out, "lecture1_regularization"))
    return rounded(summary)
