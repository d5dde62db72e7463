"""Backprop through time: vanishing and exploding gradients in RNNs, and their remedies.

The task needs a long memory: a sequence of T random tokens (one-hot, 4 symbols, the first
flagged), and the label is the FIRST token, read only after the last step. The gradient that
teaches the network to keep it must travel back through all T steps of h_t = f_W(x_t,
h_{t-1}), multiplied at each by the step's Jacobian. The demo measures ||dL/dx_t|| for every
step (the program is compiled with the input in ``wrt``) and trains six networks: a tanh RNN
(orthogonal init; its gradient vanishes), a ReLU RNN started at the identity, two LSTMs (the
gated cell; its forget gate sets how far the gradient reaches), and a ReLU RNN with large
recurrent weights (its gradient explodes) trained by SGD without and with gradient clipping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphnet as gn
from demos.common import plt, progress, rounded, savefig

ORDER = 1  # first in Lecture 2's story: the RNN and backprop through time

SYMBOLS = 4  # tokens 0..3; chance accuracy is 1/4


def first_token_task(n: int, steps: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """x (n, steps, SYMBOLS + 1): one-hot random tokens plus a start flag on step 0;
    y (n,): the first token. Later tokens come from the same symbols, so a network that
    merely adds up its inputs cannot tell the first one apart: it must latch and hold it."""
    tokens = rng.integers(0, SYMBOLS, (n, steps))
    x = np.zeros((n, steps, SYMBOLS + 1), np.float32)
    x[np.arange(n)[:, None], np.arange(steps)[None], tokens] = 1
    x[:, 0, SYMBOLS] = 1
    return x, tokens[:, 0].astype(np.int64)


def scaled_identity(scale: float):
    """A recurrent initializer ``scale * I``: above 1, signals and gradients grow each step."""
    return lambda shape: (scale * np.eye(*shape)).astype(np.float32)


def forget_bias(value: float):
    """An LSTM bias initializer: 0 for the gates i, c, o and ``value`` for the forget gate f.

    Through the cell state the gradient is multiplied by f_t at each step, so sigmoid(value)
    is its per-step decay at initialization: 0.73 for Keras' 1, 0.95 for 3."""
    def init(shape: tuple) -> np.ndarray:
        u = shape[0] // 4
        return np.concatenate([np.zeros(u), np.full(u, value), np.zeros(2 * u)]).astype(
            np.float32)
    return init


GROWTH = 1.087  # recurrent weights GROWTH * I: signals and gradients grow ~GROWTH^T

# name -> layer kwargs and optimizer; the exploding pair differs only in clipping
VARIANTS = {
    "tanh RNN, orthogonal init": dict(cell="rnn", activation="tanh", opt="adam"),
    "ReLU RNN, identity init": dict(cell="rnn", activation="relu",
                                    recurrent_initializer="identity", opt="adam"),
    "LSTM, forget bias 1 (Keras)": dict(cell="lstm", opt="adam"),
    "LSTM, forget bias 3": dict(cell="lstm", opt="adam", unit_forget_bias=False,
                                bias_initializer=forget_bias(3.0)),
    f"ReLU RNN, {GROWTH} I, SGD": dict(cell="rnn", activation="relu", opt="sgd",
                                       recurrent_initializer=scaled_identity(GROWTH)),
    f"ReLU RNN, {GROWTH} I, SGD + clipping": dict(
        cell="rnn", activation="relu", opt="sgd", clip=1.0,
        recurrent_initializer=scaled_identity(GROWTH)),
}
COLORS = {name: f"C{i}" for i, name in enumerate(VARIANTS)}


def make_model(spec: dict, steps: int, units: int, seed: int, unroll: bool = False
               ) -> gn.Sequential:
    """RNN or LSTM over (steps, SYMBOLS + 1), its last h_T -> Dense(SYMBOLS) logits."""
    kw = {k: v for k, v in spec.items() if k not in ("cell", "opt", "clip")}
    cell = gn.layers.LSTM if spec["cell"] == "lstm" else gn.layers.SimpleRNN
    model = gn.Sequential([cell(units, seed=seed, unroll=unroll, name="rnn", **kw),
                           gn.layers.Dense(SYMBOLS, seed=seed + 2, name="readout")],
                          input_shape=(steps, SYMBOLS + 1))
    # Adam divides each step by a running RMS of the gradient, which hides exploding
    # gradients; plain SGD (+ momentum) takes steps proportional to them, so it shows them
    opt = (gn.optimizers.Adam(3e-3) if spec["opt"] == "adam" else
           gn.optimizers.SGD(0.01, momentum=0.9, global_clipnorm=spec.get("clip")))
    model.compile(optimizer=opt, loss="sparse_softmax_cross_entropy", metrics=["accuracy"])
    return model


def gradient_through_time(model: gn.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """||dL_i/dx_t|| for every step t, averaged over the examples i (saliency through time).

    The loss is the batch mean, so one example's gradient is B times its share of dL/dx."""
    prog = gn.compile(model.loss_tensor, wrt=[model.inputs[0]])
    _, (dx,) = prog({model.inputs[0]: x, model.targets[0]: y})
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(dx.astype(np.float64) * len(x), axis=2).mean(axis=0)


def draw_unrolled(out: Path, seed: int) -> list[str] | str:
    """A tanh RNN unrolled over 4 steps (one scope t<k> per step), coloured by ||dL/dx||."""
    import graphnet.visualize as viz
    rng = np.random.default_rng(seed)
    x, y = first_token_task(16, 4, rng)
    spec = dict(cell="rnn", activation="tanh", opt="adam",
                recurrent_initializer=scaled_identity(0.3))  # small weights: fast fading
    model = make_model(spec, 4, 8, seed, unroll=True)
    path = out / "lecture2_unrolled_gradients.png"
    try:
        viz.render_gradients(model, (x, y), path, level="layer", roll=False,
                             vanish=1e-4, show_shapes=False,
                             title="tanh RNN (recurrent 0.3 I) unrolled over 4 steps: "
                                   "||dL/dx|| fades back through time")
    except viz.GraphvizNotFound as e:  # the DOT source is written; say how to get pictures
        return f"no drawing: {e}"
    return [str(path)]


def run(quick: bool, out: Path, seed: int) -> dict:
    steps, units, n_train, epochs = (12, 16, 512, 3) if quick else (50, 32, 3000, 12)
    rng = np.random.default_rng(seed)
    x_train, y_train = first_token_task(n_train, steps, rng)
    x_test, y_test = first_token_task(500, steps, rng)
    probe = slice(0, 256)  # the examples whose gradients are measured

    summary: dict = {"steps": steps, "chance": 1 / SYMBOLS}
    grads: dict = {}
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(17, 4.8))
    t = np.arange(steps)
    for name, spec in progress(VARIANTS.items(), "variants", quick=quick):
        model = make_model(spec, steps, units, seed)
        g0 = gradient_through_time(model, x_test[probe], y_test[probe])
        hist = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0,
                         seed=seed).history
        with np.errstate(all="ignore"):
            _, acc = model.evaluate(x_test, y_test, verbose=0)[:2]
            g1 = gradient_through_time(model, x_test[probe], y_test[probe])
        loss = np.asarray(hist["loss"], np.float64)
        diverged = not np.all(np.isfinite(loss))
        c = COLORS[name]
        if "clipping" not in name:  # same weights at init as its unclipped twin
            ax0.semilogy(t, g0, color=c, label=name.replace(", SGD", ""))
        if np.all(np.isfinite(g1)):
            ax1.semilogy(t, g1, color=c, label=f"{name}: {acc:.0%}")
        ep = np.arange(1, len(loss) + 1)
        ok = np.isfinite(loss)
        if ok.any():
            ax2.semilogy(ep[ok], loss[ok], "o-", ms=3, color=c, label=f"{name}: {acc:.0%}")
        if diverged:
            first_bad = int(np.argmin(ok))
            ax2.semilogy(ep[first_bad], loss[ok].max() if ok.any() else np.log(SYMBOLS), "x",
                         color=c, ms=10, mew=2,
                         label=f"{name}: loss NaN from epoch {first_bad + 1}, {acc:.0%}")
        summary[name] = {"test_accuracy": acc, "diverged": diverged,
                         "final_loss": None if diverged else loss[-1]}
        # gradients span many decades: three significant digits, not four decimals
        grads[name] = {k: float(f"{v:.3g}") for k, v in (
            ("grad_first_over_last_init", g0[0] / g0[-1]),
            ("grad_first_step_init", g0[0]), ("grad_last_step_init", g0[-1]))}
    ax0.set(xlabel="time step t of the input", ylabel="||dL/dx_t|| (mean over examples)",
            title="at initialization: gradient reaching each step")
    ax1.set(xlabel="time step t of the input", title="after training (label: test accuracy)")
    ax2.set(xlabel="epoch", ylabel="training cross-entropy",
            title="training loss (label: test accuracy)")
    ax2.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax0, ax1):
        ax.legend(loc="best", fontsize=8)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)
    fig.suptitle(f"Remember the first of {steps} tokens ({SYMBOLS} symbols, chance "
                 f"{1 / SYMBOLS:.0%}): backprop through {steps} steps, {units} units")
    fig.tight_layout()
    pictures = [str(savefig(fig, out, "lecture2_rnn_gradients"))]
    drawn = draw_unrolled(out, seed)
    if isinstance(drawn, str):
        summary["drawing"] = drawn
    else:
        pictures += drawn
    summary["pictures"] = pictures
    summary = rounded(summary)
    for name, g in grads.items():
        summary[name].update(g)
    return summary
