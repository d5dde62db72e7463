"""Encoding language: word indices, one-hot vectors, and learned embeddings where meaning shows.

Lecture 2 turns words into numbers in three steps: a vocabulary gives each word an index;
one-hot encoding turns index i into the unit vector e_i, which keeps words apart but puts
every pair at the same distance (sqrt 2), so "rain" is as far from "storm" as from "fiddle";
an Embedding layer instead learns a dense vector per word from a task, and words used alike
end up near each other. The task here is the skip-gram one (word2vec's): from a word, predict
the words around it, in sentences generated from four topics (music, sea, farm, weather) with
some noise. The number to check: for how many words the nearest other word (cosine) in the
learned space belongs to the same topic, against one-hot's chance level (a tie everywhere).
The picture: the distance matrices side by side and the learned vectors in 2-D (PCA by SVD).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import plt, rounded, savefig

ORDER = 1.5  # after the RNN intro, before the music lab's Embedding -> LSTM model

TOPICS = {
    "music": ["fiddle", "reel", "jig", "tune", "dance", "piper"],
    "sea": ["boat", "wave", "sailor", "harbour", "tide", "shore"],
    "farm": ["cow", "field", "plough", "barley", "hay", "farmer"],
    "weather": ["rain", "wind", "storm", "cloud", "snow", "sun"],
}
WORDS = [w for ws in TOPICS.values() for w in ws]             # index -> word (the vocabulary)
TOPIC_OF = np.array([t for t, ws in enumerate(TOPICS.values()) for _ in ws])


def sentences(n: int, length: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """n sentences of word ids: each from one topic, a word of any topic with prob. noise."""
    size = len(WORDS) // len(TOPICS)
    topic = rng.integers(0, len(TOPICS), (n, 1))
    ids = topic * size + rng.integers(0, size, (n, length))
    stray = rng.random((n, length)) < noise
    return np.where(stray, rng.integers(0, len(WORDS), (n, length)), ids)


def skipgram_pairs(sents: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(center, context) id pairs: every word with each word up to ``window`` away."""
    centers, contexts = [], []
    for off in range(1, window + 1):
        for a, b in ((sents[:, :-off], sents[:, off:]), (sents[:, off:], sents[:, :-off])):
            centers.append(a.ravel())
            contexts.append(b.ravel())
    return np.concatenate(centers), np.concatenate(contexts)


def nearest_neighbour_agreement(vectors: np.ndarray) -> float:
    """The fraction of words whose nearest other word (cosine similarity) shares its topic."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(TOPIC_OF[np.argmax(sim, axis=1)] == TOPIC_OF))


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """The vectors projected on their first two principal axes (NumPy SVD) and the share of
    the variance those two axes hold."""
    centred = vectors - vectors.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, float((s[:2] ** 2).sum() / (s ** 2).sum())


def make_model(dim: int, seed: int) -> gn.Model:
    """word id -> Embedding(vocabulary, dim) -> Dense logits over the context word."""
    model = gn.Sequential([gn.layers.Embedding(len(WORDS), dim, seed=seed, name="embedding"),
                           gn.layers.Dense(len(WORDS), seed=seed + 1, name="context_logits")],
                          input_shape=(1,), name="skipgram")  # (batch, 1) ids
    model.compile(optimizer=gn.optimizers.Adam(2e-2), loss="sparse_softmax_cross_entropy")
    return model


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return 1.0 - v @ v.T


def run(quick: bool, out: Path, seed: int) -> dict:
    n_sents, epochs, dim = (800, 4, 8) if quick else (4000, 8, 8)
    rng = np.random.default_rng(seed)
    centers, contexts = skipgram_pairs(sentences(n_sents, 6, 0.15, rng), window=2)
    model = make_model(dim, seed)
    hist = model.fit(centers[:, None], contexts[:, None], batch_size=256, epochs=epochs, verbose=0,
                     seed=seed).history
    learned = model.get_layer("embedding").get_weights()[0]            # (vocabulary, dim)
    one_hot = np.eye(len(WORDS))
    size = len(WORDS) // len(TOPICS)
    chance = (size - 1) / (len(WORDS) - 1)   # one-hot: all distances tie, any word is nearest
    agreement = nearest_neighbour_agreement(learned)
    points, explained = pca_2d(learned)
    d_one_hot = cosine_distances(one_hot)

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2),
                             gridspec_kw={"width_ratios": [1, 1, 1.25]})
    for ax, d, title in ((axes[0], d_one_hot, "one-hot: every pair equally far\n"
                                              "(cosine distance 1, Euclidean √2)"),
                         (axes[1], cosine_distances(learned),
                          f"learned embeddings (dim {dim}):\ncosine distance")):
        im = ax.imshow(d, cmap="magma", vmin=0, vmax=2)
        ax.set_xticks(range(len(WORDS)), WORDS, rotation=90, fontsize=7)
        ax.set_yticks(range(len(WORDS)), WORDS, fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax = axes[2]
    for t, (name, _) in enumerate(TOPICS.items()):
        sel = TOPIC_OF == t
        ax.scatter(points[sel, 0], points[sel, 1], s=40, color=f"C{t}", label=name)
        for (px, py), w in zip(points[sel], np.array(WORDS)[sel]):
            ax.annotate(w, (px, py), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_title(f"learned embeddings in 2-D (PCA: {explained:.0%} of the variance)\n"
                 f"nearest neighbour in the same topic: {agreement:.0%} of the words "
                 f"(one-hot: a tie, chance {chance:.0%})", fontsize=10)
    ax.set(xlabel="principal axis 1", ylabel="principal axis 2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    picture = savefig(fig, out, "lecture2_embeddings")
    return rounded({"vocabulary": len(WORDS), "topics": len(TOPICS), "embedding_dim": dim,
                    "training_pairs": len(centers), "final_loss": hist["loss"][-1],
                    "nearest_neighbour_agreement_learned": agreement,
                    "nearest_neighbour_agreement_one_hot": chance,
                    "pca_variance_explained": explained,
                    "one_hot_distance": float(np.sqrt(2.0)),
                    "pictures": [str(picture)]})
