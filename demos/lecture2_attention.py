"""Self-attention with learned Q, K, V reverses a sequence, but only with positional encoding.

The task: given 8 random digits, output them in reverse order. One attention layer,
``softmax(Q K^T / sqrt(d)) V`` with Q, K, V learned projections of the token embeddings,
reads the answer for position i from position T-1-i. Attention itself sees a SET of tokens
(permute the inputs and its outputs permute the same way), so without positional encoding
position i cannot know where to look; adding ``PositionalEncoding`` (Vaswani et al.'s
sinusoids) to the embeddings fixes that. The heat maps show a trained head's weights: the
anti-diagonal of reversal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import draw_layers, plt, progress, rounded, savefig

ORDER = 3  # after RNNs: attention, which needs no recurrence but needs positions

DIGITS = 10


def reverse_task(n: int, length: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """x (n, length) random digits; y (n, length) the same digits in reverse order."""
    x = rng.integers(0, DIGITS, (n, length))
    return x, x[:, ::-1].copy()


def make_model(length: int, dim: int, positional: bool, seed: int
               ) -> tuple[gn.Model, gn.Tensor, gn.Tensor]:
    """ids -> Embedding (+ positional encoding) -> one-head self-attention -> Dense logits.

    Returns the model and the tensors of its input and attention weights (batch, 1, T, T)."""
    with gn.Graph("reverse" + ("_pe" if positional else "")):
        ids = gn.Input((length,), dtype="int64", name="digits")
        h = gn.layers.Embedding(DIGITS, dim, seed=seed, name="embedding")(ids)
        if positional:
            h = gn.layers.PositionalEncoding(name="positional_encoding")(h)
        att, scores = gn.layers.MultiHeadAttention(
            num_heads=1, key_dim=dim, seed=seed + 1, name="self_attention")(
                h, return_attention_scores=True)
        logits = gn.layers.Dense(DIGITS, seed=seed + 5, name="logits")(att)
    model = gn.Model(ids, logits, name="reverser")
    model.compile(optimizer=gn.optimizers.Adam(1e-2), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"])
    return model, ids, scores


def draw_maps(ax_row, weights: np.ndarray, x: np.ndarray, title: str):
    """One heat map per example: query position (the output) down, key position across."""
    t = x.shape[1]
    for ax, w, digits in zip(ax_row, weights, x):
        im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
        labels = [f"{i}:{d}" for i, d in enumerate(digits)]
        ax.set_xticks(range(t), labels, fontsize=7, rotation=90)
        ax.set_yticks(range(t), [f"out {i} ({d})" for i, d in enumerate(digits[::-1])],
                      fontsize=7)
        ax.grid(False)
    ax_row[0].set_ylabel(title, fontsize=10)
    return im


def run(quick: bool, out: Path, seed: int) -> dict:
    length, dim, n_train, epochs = (8, 16, 512, 6) if quick else (8, 32, 2000, 15)
    rng = np.random.default_rng(seed)
    x_train, y_train = reverse_task(n_train, length, rng)
    x_test, y_test = reverse_task(1000, length, rng)

    summary: dict = {"length": length, "chance": 1 / DIGITS}
    curves, maps, graph_model = {}, {}, None
    for positional in progress((False, True), "models", quick=quick):
        label = "with positional encoding" if positional else "without positional encoding"
        model, ids, scores = make_model(length, dim, positional, seed)
        hist = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0,
                         validation_data=(x_test, y_test), seed=seed).history
        pred = np.argmax(model.predict(x_test), axis=-1)
        token_acc = float((pred == y_test).mean())
        seq_acc = float((pred == y_test).all(axis=1).mean())
        weights = gn.compile(scores)({ids: x_test[:4]})[:, 0]  # head 0: (4, T, T)
        # how much of each query's weight lands on the key it should read, T-1-i
        on_target = float(weights[:, np.arange(length), np.arange(length)[::-1]].mean())
        summary[label] = {"token_accuracy": token_acc, "sequence_accuracy": seq_acc,
                          "attention_on_mirror_position": on_target,
                          "final_loss": hist["loss"][-1], "final_val_loss": hist["val_loss"][-1]}
        curves[label] = hist
        maps[label] = weights
        if positional:
            graph_model = model

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for (label, hist), c in zip(curves.items(), ("C3", "C0")):
        ep = np.arange(1, len(hist["loss"]) + 1)
        axes[0].plot(ep, hist["loss"], color=c, label=f"{label}: training")
        axes[0].plot(ep, hist["val_loss"], "--", color=c, label=f"{label}: test")
        axes[1].plot(ep, hist["val_accuracy"], color=c, label=label)
    axes[1].axhline(1 / DIGITS, color="gray", ls=":", label="chance (1/10)")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy per digit", ylim=(0, 1.02),
                title="reversing 8 digits: accuracy")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    pictures = [str(savefig(fig, out, "lecture2_attention_training"))]

    n_show = 4
    fig, axes = plt.subplots(2, n_show, figsize=(3.4 * n_show, 6.6))
    fig.subplots_adjust(wspace=0.55, hspace=0.4)
    for row, (label, w) in zip(axes, maps.items()):
        acc = summary[label]["token_accuracy"]
        im = draw_maps(row, w[:n_show], x_test[:n_show], f"{label}\n(accuracy {acc:.0%})")
        fig.colorbar(im, ax=list(row), fraction=0.02, pad=0.02, label="weight")
    fig.suptitle("attention weights softmax(QKᵀ/√d) of the trained head: each row is one "
                 "output position (query), each column an input position i:digit (key)",
                 fontsize=10)
    pictures.append(str(savefig(fig, out, "lecture2_attention_maps")))

    drawn = draw_layers(graph_model, out, "lecture2_attention_graph")  # ids -> ... -> logits
    if drawn.startswith("no drawing"):
        summary["drawing"] = drawn
    else:
        pictures.append(drawn)
    summary["pictures"] = pictures
    return rounded(summary)
