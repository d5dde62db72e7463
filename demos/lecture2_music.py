"""The MIT lab: a character-level LSTM learns Irish folk songs in ABC notation and writes new ones.

Each character of the 804 songs becomes an id (``gn.text.Vocabulary``), a learned
``Embedding`` turns ids into vectors, an ``LSTM`` reads them (``h_t = f_W(x_t, h_{t-1})``,
with gates) and a ``Dense`` layer predicts the next character at every step, trained with
cross-entropy over all steps. A second graph, sharing the trained weights, runs the LSTM
ONE step at a time with ``initial_state`` to sample songs with a temperature; they are written
as ``.abc`` files and the first playable one as a ``.wav``.

Beside it, the same next-character task for a small causal Transformer: ``Embedding`` +
``PositionalEncoding`` + ``TransformerEncoder`` blocks with ``use_causal_mask`` (step t sees
steps <= t only, as the LSTM does) + ``Dense``, trained on the same windows; the validation
perplexity of each is reported and both loss curves drawn.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import Stopwatch, draw_layers, plt, progress, rounded, savefig

ORDER = 2  # after the RNN gradients: the lab that puts the LSTM to work

START = "X:"  # every song begins with its X: header, so generation starts there too


def make_model(vocab: int, length: int, embed: int, units: int, seed: int,
               decay_steps: int | None = None, dropout: float = 0.0,
               recurrent_dropout: float = 0.0) -> gn.Sequential:
    """Embedding -> LSTM (every step) -> [Dropout] -> Dense: next-character logits
    (batch, length, vocab); with ``decay_steps`` the learning rate follows a cosine from
    5e-3 down to 5e-4. ``recurrent_dropout`` masks h_{t-1} inside the fused LSTM node."""
    layers = [gn.layers.Embedding(vocab, embed, seed=seed, name="embedding"),
              gn.layers.LSTM(units, return_sequences=True, recurrent_dropout=recurrent_dropout,
                             seed=seed + 1, name="lstm"),
              gn.layers.Dense(vocab, seed=seed + 3, name="logits")]
    if dropout:  # between the LSTM and the logits: no weights, so the sampler's match
        layers.insert(2, gn.layers.Dropout(dropout, seed=seed + 2, name="dropout"))
    model = gn.Sequential(layers, input_shape=(length,))
    # (B, T, vocab) logits against (B, T) ids: the mean cross-entropy over every step
    lr = 5e-3 if decay_steps is None else gn.schedules.CosineDecay(5e-3, decay_steps, alpha=0.1)
    model.compile(optimizer=gn.optimizers.Adam(lr, global_clipnorm=5.0),
                  loss="sparse_softmax_cross_entropy")
    return model


def make_transformer(vocab: int, length: int, d_model: int, heads: int, blocks: int,
                     seed: int, lr: float = 5e-3) -> gn.Model:
    """Embedding + positions -> ``blocks`` causal pre-norm Transformer blocks -> Dense."""
    with gn.Graph("transformer"):
        ids = gn.Input((length,), dtype="int64", name="ids")
        h = gn.layers.Embedding(vocab, d_model, seed=seed, name="embedding")(ids)
        h = gn.layers.PositionalEncoding(name="positions")(h)
        for i in range(blocks):
            h = gn.layers.TransformerEncoder(4 * d_model, heads, normalize_first=True,
                                             seed=seed + 10 * (i + 1),
                                             name=f"block_{i}")(h, use_causal_mask=True)
        logits = gn.layers.Dense(vocab, seed=seed + 5, name="logits")(h)
    model = gn.Model(ids, logits, name="transformer")
    model.compile(optimizer=gn.optimizers.Adam(lr, global_clipnorm=5.0),
                  loss="sparse_softmax_cross_entropy")
    return model


class Sampler:
    """The trained network as a stateful graph: (ids of ``length`` steps, h, c) -> (logits,
    h, c) after them; one step to sample, a whole window to read text in order.

    Carrying the states between calls costs one LSTM step per character, instead of
    re-running the whole growing prefix through the fused sequence node (quadratic).
    """

    def __init__(self, trained: gn.Model, vocab: int, embed: int, units: int,
                 length: int = 1) -> None:
        with gn.Graph("sampler"):
            ids = gn.Input((length,), dtype="int64", name="id")
            h0, c0 = gn.Input((units,), name="h0"), gn.Input((units,), name="c0")
            e = gn.layers.Embedding(vocab, embed, name="embedding")(ids)
            seq, h, c = gn.layers.LSTM(units, return_sequences=True, return_state=True,
                                       name="lstm")(e, initial_state=[h0, c0])
            logits = gn.layers.Dense(vocab, name="logits")(seq)
        self.model = gn.Model([ids, h0, c0], [logits, h, c], name="sampler")
        self.model.set_weights(trained.get_weights())  # same layers, same Keras layouts
        self.step = gn.compile([logits, h, c])
        self.inputs, self.units, self.length = (ids, h0, c0), units, length

    def read(self, ids: np.ndarray, start: int) -> float:
        """Mean cross-entropy of each character of ``ids[start + 1:]`` given ALL the text
        before it: one sequence read in order, the states carried from window to window
        (what a language model's held-out loss means; from ``ids[0]`` on as context)."""
        i, h0, c0 = self.inputs
        h = np.zeros((1, self.units), np.float32)
        c = np.zeros_like(h)
        n = self.length
        total, count = 0.0, 0
        for p in range(0, len(ids) - n, n):  # the last partial window is left out
            logits, h, c = self.step({i: ids[None, p:p + n], h0: h, c0: c})
            nll = _nll(logits[0], ids[p + 1:p + n + 1])
            keep = np.arange(p, p + n) >= start  # targets ids[start + 1:] only
            total, count = total + nll[keep].sum(), count + keep.sum()
        return total / count

    def generate(self, vocab: gn.text.Vocabulary, n: int, length: int, temperature: float,
                 rng: np.random.Generator, quick: bool = False) -> list[str]:
        """``n`` songs sampled side by side, each cut at its first blank line (the separator
        between songs in the corpus) or after ``length`` characters."""
        ids, h0, c0 = self.inputs
        h = np.zeros((n, self.units), np.float32)
        c = np.zeros_like(h)
        prime = vocab.encode(START)
        out = np.zeros((n, length), np.int64)
        cur = np.full(n, prime[0])
        for t in progress(range(length), "sampling", quick=quick):
            logits, h, c = self.step({ids: cur[:, None], h0: h, c0: c})
            if t + 1 < len(prime):  # still reading the prompt: feed its next character
                cur = np.full(n, prime[t + 1])
            else:
                cur = gn.text.sample(logits[:, 0, :], temperature, rng)
            out[:, t] = cur
        songs = []
        for row in out:
            text = START[0] + vocab.decode(row)
            songs.append(text.split("\n\n")[0].strip())
        return songs


def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per position (float64): the cross-entropy of each step."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], -1)[..., 0]


def run(quick: bool, out: Path, seed: int) -> dict:
    if quick:
        length, embed, units, epochs, windows, n_songs, gen_len = 40, 16, 32, 3, 96, 4, 120
        d_model, heads, blocks, stride = 16, 2, 2, 40
    else:  # the MIT lab's size of model (embedding 256, LSTM 512-1024), about 15 minutes
        length, embed, units, epochs, windows, n_songs, gen_len = 100, 256, 512, 12, None, 16, 600
        d_model, heads, blocks, stride = 128, 4, 2, 50
    songs = gn.datasets.irish_songs()
    vocab = gn.text.Vocabulary.fit(songs)
    # the songs in a fixed random order, so that the validation windows (the last 5 %) are
    # songs from all over the corpus, not its last collection (which ran 0.35 nats harder)
    order = np.random.default_rng(seed).permutation(len(songs))
    ids = vocab.encode("\n\n".join(songs[i] for i in order))
    # windows of `length` characters every `stride` (half-overlapping in the full run: twice
    # the distinct contexts per epoch); y is x one character later
    x, y = gn.text.sequences(ids, length, stride=stride)
    if windows:
        x, y = x[:windows], y[:windows]

    steps = epochs * -(-int(len(x) * 0.95) // 32)
    # (the full run without dropout: validation 1.12 nats from epoch 5 on while training
    # went on down to 0.81: 1.6M parameters learn the 800 songs by heart; dropout after the
    # LSTM alone: 1.06 at best, 1.12 at the end. Recurrent dropout, one mask of h_{t-1} per
    # sequence inside the fused node, keeps validation falling to the last epoch)
    model = make_model(vocab.size, length, embed, units, seed, None if quick else steps,
                       dropout=0.0 if quick else 0.3, recurrent_dropout=0.3)
    with Stopwatch() as train_time:
        hist = model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.05, seed=seed,
                         verbose=0 if quick else 1).history
    loss, val = np.array(hist["loss"]), np.array(hist["val_loss"])

    # the same windows, the same validation split, for a causal Transformer
    tmodel = make_transformer(vocab.size, length, d_model, heads, blocks, seed)
    with Stopwatch() as t_time:
        thist = tmodel.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.05,
                           seed=seed, verbose=0 if quick else 1).history
    tloss, tval = np.array(thist["loss"]), np.array(thist["val_loss"])

    # validation by position in the window: every window starts from h = 0, so its first
    # characters are guessed blind; read in order, each character gets all the song before
    cut = int(len(x) * 0.95)  # fit's validation_split: the last 5 % of the windows
    by_pos = _nll(model.predict(x[cut:], batch_size=32), y[cut:]).mean(0)
    t_by_pos = _nll(tmodel.predict(x[cut:], batch_size=32), y[cut:]).mean(0)
    text = ids[:(len(x) - 1) * stride + length + 1]  # the characters the windows cover
    warm = max(0, cut * stride - 20 * length)  # context: the text just before
    in_order = Sampler(model, vocab.size, embed, units, length).read(text[warm:],
                                                                     cut * stride - warm)

    sampler = Sampler(model, vocab.size, embed, units)
    rng = np.random.default_rng(seed)
    temperatures = (0.8,) if quick else (0.6, 0.8, 1.0)
    generated: dict[float, list[str]] = {}
    for temp in temperatures:
        generated[temp] = sampler.generate(vocab, n_songs, gen_len, temp, rng, quick)
    valid = {temp: [s for s in gen if gn.music.is_valid_song(s)]
             for temp, gen in generated.items()}

    files = []
    abc = out / "lecture2_generated_songs.abc"
    abc.parent.mkdir(parents=True, exist_ok=True)
    abc.write_text("\n\n".join(f"% temperature {temp}\n{s}" for temp, gen in generated.items()
                               for s in gen) + "\n", encoding="utf-8")
    files.append(str(abc))
    playable = [s for temp in temperatures for s in valid[temp]]
    with warnings.catch_warnings():  # generated ABC has symbols the reader skips
        warnings.simplefilter("ignore", gn.music.ABCWarning)
        for song in playable:  # the first that plays within two minutes
            try:
                files.append(str(gn.music.abc_to_wav(song, out / "lecture2_song.wav",
                                                     max_seconds=120)))
                break
            except ValueError:  # longer than that (a 600-character song can last 124 s)
                continue

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.4), width_ratios=(1.3, 1))
    ep = np.arange(1, len(loss) + 1)
    ax.plot(ep, loss, "o--", color="C0", alpha=0.6, label="LSTM, training")
    ax.plot(ep, val, "o-", color="C0", label=f"LSTM, validation (perplexity {np.exp(val[-1]):.2f})")
    ax.plot(ep, tloss, "s--", color="C3", alpha=0.6, label="Transformer, training")
    ax.plot(ep, tval, "s-", color="C3",
            label=f"Transformer, validation (perplexity {np.exp(tval[-1]):.2f})")
    ax.axhline(np.log(vocab.size), color="gray", ls=":", label=f"uniform guess, log {vocab.size}")
    ax.set(xlabel="epoch", ylabel="cross-entropy per character (nats)",
           title=f"next character, sequences of {length} (validation: last 5% of windows)\n"
                 f"LSTM {units} ({model.count_params():,} params) vs {blocks} causal "
                 f"Transformer blocks, d={d_model} ({tmodel.count_params():,} params)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    pos = np.arange(1, length + 1)
    ax2.plot(pos, by_pos, color="C0", label=f"LSTM (window mean {by_pos.mean():.3f})")
    ax2.plot(pos, t_by_pos, color="C3", label=f"Transformer (window mean {t_by_pos.mean():.3f})")
    ax2.axhline(in_order, color="C0", ls="--",
                label=f"LSTM reading the songs in order, state carried: {in_order:.3f}")
    ax2.set(xlabel="position in the window", ylabel="validation cross-entropy (nats)",
            ylim=(0, min(4.5, 1.2 * max(by_pos[0], t_by_pos[0]))),
            title="a window starts from h = 0: its first characters are guessed blind")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    pictures = [str(savefig(fig, out, "lecture2_music_loss"))]
    # the Transformer layer by layer, each block opened into its sub-blocks
    drawn = draw_layers(tmodel, out, "lecture2_transformer_graph", expand_nested=True)
    if not drawn.startswith("no drawing"):
        pictures.append(drawn)

    return rounded({
        "vocab_size": vocab.size, "windows": len(x), "parameters": model.count_params(),
        "train_seconds": train_time.elapsed,
        "epochs": len(loss), "loss_curve": list(loss), "val_loss_curve": list(val),
        "final_loss": loss[-1], "final_val_loss": val[-1],
        "perplexity": float(np.exp(loss[-1])), "val_perplexity": float(np.exp(val[-1])),
        # the validation text read in order (state carried), and by position in the windows
        "val_loss_in_order": in_order, "val_perplexity_in_order": float(np.exp(in_order)),
        "val_loss_first_10": float(by_pos[:10].mean()),
        "val_loss_after_10": float(by_pos[10:].mean()),
        "transformer": {"parameters": tmodel.count_params(), "blocks": blocks,
                        "d_model": d_model, "heads": heads, "train_seconds": t_time.elapsed,
                        "final_loss": tloss[-1], "final_val_loss": tval[-1],
                        "val_loss_first_10": float(t_by_pos[:10].mean()),
                        "val_perplexity": float(np.exp(tval[-1]))},
        "valid_fraction": {f"T={t}": len(valid[t]) / len(generated[t]) for t in temperatures},
        "sample": (playable or generated[temperatures[0]])[0][:300],
        "files": files, "pictures": pictures})
