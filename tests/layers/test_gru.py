"""The GRU layer (and go_backwards on every recurrent layer): Keras' arguments and layouts,
return conventions, unrolled == fused (forward and every gradient), Keras 3 itself where
installed, training, and save/load."""

import os

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import GRU, LSTM, Dense, SimpleRNN
from tests.layers.test_recurrent import _both_forms
from tests.ops.test_gru import gru_ref

pytestmark = pytest.mark.lecture2

B, T, F, U = 2, 4, 3, 5


def _build(cls, **kw):
    with gn.Graph():
        x = gn.Input((T, F), name="x", dtype=kw.get("dtype", "float32"))
        layer = cls(U, seed=1, **kw)
        out = layer(x)
    return layer, x, out


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_names_and_layouts(reset_after):
    layer, _, out = _build(GRU, reset_after=reset_after)
    assert layer.name == "gru" and out.shape == (None, U)
    assert layer.weight_names == ["gru/kernel", "gru/recurrent_kernel", "gru/bias"]
    kernel, rec, bias = layer.get_weights()
    assert kernel.shape == (F, 3 * U) and rec.shape == (U, 3 * U)
    assert bias.shape == ((2, 3 * U) if reset_after else (3 * U,))
    np.testing.assert_array_equal(bias, 0)
    np.testing.assert_allclose(rec @ rec.T, np.eye(U), atol=1e-5)
    layer, _, _ = _build(GRU, use_bias=False)
    assert [w.shape for w in layer.get_weights()] == [(F, 3 * U), (U, 3 * U)]


@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_forward_matches_numpy(rng, unroll, go_backwards, reset_after):
    with gn.Graph():
        x, h0 = gn.Input((T, F), dtype="float64", name="x"), gn.Input((U,), dtype="float64")
        layer = GRU(U, return_sequences=True, return_state=True, unroll=unroll,
                    go_backwards=go_backwards, reset_after=reset_after, dtype="float64")
        seq, hT = layer(x, initial_state=h0)
    ws = [rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    xb, hb = rng.normal(size=(B, T, F)), rng.normal(size=(B, U))
    # Keras: go_backwards reads the sequence reversed and returns it in that (reversed) order
    want = gru_ref(xb[:, ::-1] if go_backwards else xb, *ws, hb, reset_after)
    got_seq, got_h = gn.compile([seq, hT])({x: xb, h0: hb})
    np.testing.assert_allclose(got_seq, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got_h, got_seq[:, -1])


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_go_backwards_is_the_reversed_sequence(cls, rng):
    xb = rng.normal(size=(B, T, F))
    outs = []
    for go_backwards in (False, True):
        with gn.Graph():
            x = gn.Input((T, F), name="x")
            layer = cls(U, return_sequences=True, go_backwards=go_backwards, seed=7)
            outs.append((layer, x, layer(x)))
    (_, x0, y0), (_, x1, y1) = outs
    fwd_on_reversed = gn.compile(y0)({x0: xb[:, ::-1]})
    np.testing.assert_allclose(gn.compile(y1)({x1: xb}), fwd_on_reversed, rtol=1e-6)


@pytest.mark.parametrize("cls, kw", [
    (SimpleRNN, dict(go_backwards=True)), (LSTM, dict(go_backwards=True)),
    (GRU, dict(go_backwards=True)), (GRU, dict(reset_after=False)), (GRU, dict())])
def test_unrolled_equals_fused_forward_and_every_gradient(cls, kw, rng):
    (v1, g1, _, _), (v2, g2, prog, g) = _both_forms(cls, rng, **kw)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    name = {SimpleRNN: "simple_rnn", LSTM: "lstm", GRU: "gru"}[cls]
    steps = {t.name.split("/")[1] for t in g.nodes if t.name.startswith(f"{name}/t")}
    assert steps == {f"t{k}" for k in range(T)}
    grads = prog.gradients()
    assert all(any(t.name.startswith(f"{name}/t{k}/") for t in grads) for k in range(T))


def test_unrolled_without_bias_or_state_equals_fused(rng):
    xb = rng.normal(size=(B, T, F))
    for reset_after in (True, False):
        vals = []
        for unroll in (False, True):
            layer, x, out = _build(GRU, unroll=unroll, use_bias=False, dtype="float64",
                                   reset_after=reset_after, return_sequences=True)
            vals.append(gn.compile(out)({x: xb}))
        np.testing.assert_allclose(vals[1], vals[0], rtol=1e-12)


def test_errors_are_clear():
    with gn.Graph():
        with pytest.raises(gn.GraphError, match=r"GRU layer 'gru' needs inputs of shape"):
            GRU(4)(gn.Input((3,)))
        x = gn.Input((T, F))
        with pytest.raises(gn.GraphError, match=r"initial_state as a list of 1 tensors"):
            GRU(U)(x, initial_state=[gn.Input((U,)), gn.Input((U,))])
        with pytest.raises(gn.GraphError, match=r"initial state h0 must be \(batch, 5\)"):
            GRU(U, unroll=True)(x, initial_state=gn.Input((3,)))
    with pytest.raises(gn.GraphError, match="recurrent_activation"):
        GRU(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(gn.GraphError, match="positive number of units"):
        GRU(0)


# -- Keras 3 itself (optional) ------------------------------------------------------------

def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def keras_run(keras, klayer, xb, states=None):
    out = klayer(xb, initial_state=states) if states is not None else klayer(xb)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in outs]


@pytest.mark.parametrize("name, kw", [
    ("GRU", dict(reset_after=True)), ("GRU", dict(reset_after=False)),
    ("GRU", dict(go_backwards=True)), ("GRU", dict(go_backwards=True, reset_after=False)),
    ("LSTM", dict(go_backwards=True)), ("SimpleRNN", dict(go_backwards=True)),
    ("LSTM", dict()), ("SimpleRNN", dict())])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own, under NumPy 2
def test_matches_keras(rng, name, kw, return_sequences):
    keras = keras_or_skip()
    klayer = getattr(keras.layers, name)(U, return_sequences=return_sequences,
                                         return_state=True, **kw)
    xb = rng.normal(size=(B, T, F)).astype(np.float32)
    hb = [rng.normal(size=(B, U)).astype(np.float32) for _ in range(2 if name == "LSTM" else 1)]
    keras_run(keras, klayer, xb)  # builds it
    # random weights (Keras' biases start at zero)
    weights = [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in klayer.get_weights()]
    klayer.set_weights(weights)
    want = keras_run(keras, klayer, xb, hb)
    cls = {"GRU": GRU, "LSTM": LSTM, "SimpleRNN": SimpleRNN}[name]
    for unroll in (False, True):
        with gn.Graph():
            x = gn.Input((T, F), name="x")
            states = [gn.Input((U,)) for _ in hb]
            layer = cls(U, return_sequences=return_sequences, return_state=True,
                        unroll=unroll, **kw)
            outs = layer(x, initial_state=states)
        layer.set_weights(klayer.get_weights())
        got = gn.compile(outs)({x: xb, **dict(zip(states, hb))})
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# -- training and saving ------------------------------------------------------------------

def test_model_learns_a_sequence_sum():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 6, 1)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32)
    model = gn.Sequential([GRU(8, seed=1), Dense(1, seed=2)], input_shape=(6, 1))
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss="mse")
    loss = model.fit(x, y, batch_size=32, epochs=8, verbose=0, seed=0).history["loss"]
    assert loss[-1] < 0.25 * loss[0], loss


def test_save_load_round_trip(tmp_path, rng):
    with gn.Graph():
        x, h0 = gn.Input((T, F), name="x"), gn.Input((U,), name="h0")
        seq, h = GRU(U, return_sequences=True, return_state=True, go_backwards=True, seed=4)(
            x, initial_state=h0)
        out = Dense(2, seed=5)(GRU(U, unroll=True, reset_after=False, seed=6)(seq))
    model = gn.Model([x, h0], [out, h])
    for w in model.weights:
        w.value = rng.normal(size=w.shape).astype(np.float32) * 0.5
    feeds = [rng.normal(size=(B, T, F)), rng.normal(size=(B, U))]
    model.save(tmp_path / "gru.graphnet")
    loaded = gn.load_model(tmp_path / "gru.graphnet")
    assert [type(la).__name__ for la in loaded.layers] == ["GRU", "GRU", "Dense"]
    cfg = loaded.layers[0].get_config()
    assert cfg["go_backwards"] and cfg["reset_after"] and not loaded.layers[1].reset_after
    for a, b in zip(loaded.predict(feeds), model.predict(feeds)):
        np.testing.assert_array_equal(a, b)
