"""Regularizing SimpleRNN, LSTM and GRU: dropout and recurrent_dropout (one mask per sequence,
the same at every step, as Keras) against NumPy loops that apply the masks the program drew,
off at inference, a fresh draw each training step; kernel, recurrent and bias regularizers;
both saved with the model."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from tests.ops.test_gru import sig

pytestmark = pytest.mark.lecture2

B, T, F, U = 3, 4, 3, 5


def _masks(prog, x_shape_f=F):
    """The dropout masks the last training call drew: (input mask, recurrent mask)."""
    ms = {v.shape[-1]: v for t, v in prog.values().items() if t.op is not None
          and t.op.name == "dropout"}
    return ms.get(x_shape_f), ms.get(U)


def _train_run(layer, rng):
    with gn.Graph():
        x = gn.Input((T, F), dtype="float64", name="x")
        out = layer(x)
    ws = [rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    xb = rng.normal(size=(B, T, F))
    prog = gn.compile(out, training=True)
    return prog({x: xb}), prog, ws, xb, (x, out)


@pytest.mark.parametrize("rates", [(0.4, 0.0), (0.0, 0.5), (0.4, 0.5)])
def test_simple_rnn_masks_are_one_per_sequence(rng, rates):
    got, prog, (W, Uk, b), xb, _ = _train_run(
        SimpleRNN(U, return_sequences=True, dropout=rates[0], recurrent_dropout=rates[1],
                  dtype="float64"), rng)
    mx, mh = _masks(prog)
    mx = np.ones((B, F)) if mx is None else mx
    mh = np.ones((B, U)) if mh is None else mh
    assert set(np.unique(mx)) <= {0, 1 / (1 - rates[0])} and (mx == 0).any() == bool(rates[0])
    h, want = np.zeros((B, U)), []
    for t in range(T):
        h = np.tanh((xb[:, t] * mx) @ W + (h * mh) @ Uk + b)
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_masks_only_the_recurrent_products(rng, reset_after):
    got, prog, (W, Uk, b), xb, _ = _train_run(
        GRU(U, return_sequences=True, dropout=0.3, recurrent_dropout=0.5,
            reset_after=reset_after, dtype="float64"), rng)
    mx, mh = _masks(prog)
    bi, br = (b[0], b[1]) if reset_after else (b, np.zeros(3 * U))
    h, want = np.zeros((B, U)), []
    for t in range(T):
        xz = (xb[:, t] * mx) @ W + bi
        rec = (h * mh) @ Uk + br
        z, r = sig(xz[:, :U] + rec[:, :U]), sig(xz[:, U:2 * U] + rec[:, U:2 * U])
        inner = r * rec[:, 2 * U:] if reset_after else (r * h * mh) @ Uk[:, 2 * U:]
        h = z * h + (1 - z) * np.tanh(xz[:, 2 * U:] + inner)  # the unmasked h_{t-1} here
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


def test_lstm_recurrent_dropout(rng):
    got, prog, (W, Uk, b), xb, _ = _train_run(
        LSTM(U, return_sequences=True, recurrent_dropout=0.5, dtype="float64"), rng)
    _, mh = _masks(prog)
    h, c, want = np.zeros((B, U)), np.zeros((B, U)), []
    for t in range(T):
        zz = xb[:, t] @ W + (h * mh) @ Uk + b
        i, f, o = sig(zz[:, :U]), sig(zz[:, U:2 * U]), sig(zz[:, 3 * U:])
        c = f * c + i * np.tanh(zz[:, 2 * U:3 * U])
        h = o * np.tanh(c)
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_off_at_inference_and_fresh_each_training_step(cls, rng):
    got, prog, ws, xb, (x, out) = _train_run(cls(U, dropout=0.3, recurrent_dropout=0.3,
                                                 dtype="float64"), rng)
    assert not np.allclose(prog({x: xb}), got)  # a new mask in the next step
    with gn.Graph():
        x2 = gn.Input((T, F), dtype="float64")
        plain = cls(U, dtype="float64")
        out2 = plain(x2)
    plain.set_weights(ws)
    np.testing.assert_allclose(gn.compile(out)({x: xb}), gn.compile(out2)({x2: xb}),
                               rtol=1e-12)


def test_errors_and_saving(tmp_path, rng):
    with pytest.raises(gn.GraphError, match=r"GRU dropout must be in \[0, 1\), got 1.0"):
        GRU(3, dropout=1.0)
    with pytest.raises(gn.GraphError, match="LSTM recurrent_dropout must be in"):
        LSTM(3, recurrent_dropout=-0.1)
    model = gn.Sequential([Bidirectional(GRU(U, dropout=0.2, recurrent_dropout=0.2, seed=1)),
                           Dense(1, seed=2)], input_shape=(T, F))
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="mse")
    xb = rng.normal(size=(8, T, F)).astype(np.float32)
    model.fit(xb, np.zeros((8, 1), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "drop.graphnet")
    loaded = gn.load_model(tmp_path / "drop.graphnet")
    sub = loaded.layers[0].forward_layer
    assert (sub.dropout, sub.recurrent_dropout) == (0.2, 0.2)
    np.testing.assert_array_equal(loaded.predict(xb), model.predict(xb))


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_weight_regularizers(cls):
    with gn.Graph():
        layer = cls(U, kernel_regularizer=gn.regularizers.L2(0.1), recurrent_regularizer="l1",
                    bias_regularizer=gn.regularizers.L2(0.5), seed=1)
        layer(gn.Input((T, F)))
    assert len(layer.losses) == 3
    k, rk, b = (w.astype(np.float64) for w in layer.get_weights())
    b = b + 1.0  # a bias away from zero
    layer.set_weights([k, rk, b])
    got = gn.compile(layer.losses)({})
    np.testing.assert_allclose(got, [0.1 * np.sum(k ** 2), 0.01 * np.sum(np.abs(rk)),
                                     0.5 * np.sum(b ** 2)], rtol=1e-5)
    again = gn.layers.deserialize(gn.layers.serialize(layer))
    assert isinstance(again.recurrent_regularizer, gn.regularizers.L1)
    assert isinstance(again.bias_regularizer, gn.regularizers.L2)
