"""Bidirectional: merge modes against the NumPy references of its two halves, Keras' weight
order and outputs (return_state, initial_state), Keras 3 itself where installed, gradients,
errors, and save/load."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from graphnet.testing import check_gradients
from tests.layers.test_gru import keras_or_skip, keras_run
from tests.ops.test_gru import gru_ref
from tests.ops.test_recurrent import lstm_ref, rnn_ref

pytestmark = pytest.mark.lecture2

B, T, F, U = 2, 4, 3, 5
REF = {SimpleRNN: lambda x, w, s: rnn_ref(x, *w, s[0] if s else None),
       LSTM: lambda x, w, s: lstm_ref(x, *w, *(s or ()))[0],
       GRU: lambda x, w, s: gru_ref(x, *w, s[0] if s else None)}
MERGE = {"concat": lambda f, b: np.concatenate([f, b], -1), "sum": np.add,
         "mul": np.multiply, "ave": lambda f, b: (f + b) / 2}


def _weights(layer, rng):
    ws = [rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    return ws


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("merge_mode", list(MERGE))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_merge_modes_match_numpy(rng, cls, merge_mode, return_sequences):
    with gn.Graph():
        x = gn.Input((T, F), dtype="float64", name="x")
        bi = Bidirectional(cls(U, return_sequences=return_sequences, dtype="float64"),
                           merge_mode=merge_mode)
        out = bi(x)
    ws = _weights(bi, rng)
    n = len(ws) // 2
    xb = rng.normal(size=(B, T, F))
    f = REF[cls](xb, ws[:n], None)
    b = REF[cls](xb[:, ::-1], ws[n:], None)[:, ::-1]  # run reversed, read in input order
    if not return_sequences:
        f, b = f[:, -1], b[:, 0]
    want = MERGE[merge_mode](f, b)
    assert out.shape == (None,) + want.shape[1:]
    np.testing.assert_allclose(gn.compile(out)({x: xb}), want, rtol=1e-12, atol=1e-14)


def test_keras_weight_order_states_and_no_merge(rng):
    with gn.Graph():
        x = gn.Input((T, F), dtype="float64", name="x")
        states = [gn.Input((U,), dtype="float64") for _ in range(4)]
        bi = Bidirectional(LSTM(U, return_sequences=True, return_state=True, dtype="float64"),
                           merge_mode=None)
        outs = bi(x, initial_state=states)
    assert bi.name == "bidirectional"
    assert bi.weight_names == [f"bidirectional/{d}_lstm/{w}" for d in ("forward", "backward")
                               for w in ("kernel", "recurrent_kernel", "bias")]
    assert bi.forward_layer.name == "forward_lstm" and bi.backward_layer.go_backwards
    ws = _weights(bi, rng)
    xb = rng.normal(size=(B, T, F))
    sb = [rng.normal(size=(B, U)) for _ in range(4)]
    got = gn.compile(outs)({x: xb, **dict(zip(states, sb))})
    assert len(got) == 6  # [forward seq, backward seq, h_f, c_f, h_b, c_b]
    hf, cf = lstm_ref(xb, *ws[:3], *sb[:2])
    hb, cb = lstm_ref(xb[:, ::-1], *ws[3:], *sb[2:])
    for g, w in zip(got, [hf, hb[:, ::-1], hf[:, -1], cf[:, -1], hb[:, -1], cb[:, -1]]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_gradients_reach_the_input_and_every_weight(rng, cls):
    x = rng.normal(size=(B, T, F))
    check_gradients(lambda x: Bidirectional(cls(U, return_sequences=True, dtype="float64",
                                                seed=3), merge_mode="mul")(x), x)
    with gn.Graph():
        xi = gn.Input((T, F), dtype="float64")
        bi = Bidirectional(cls(U, dtype="float64", seed=3))
        loss = gn.sum(bi(xi) ** 2)
    _, grads = gn.compile(loss, wrt=bi.weights)({xi: x})
    assert len(grads) == 6 and all(np.abs(g).sum() > 0 for g in grads)


@pytest.mark.parametrize("name, kw", [("GRU", dict()), ("GRU", dict(reset_after=False)),
                                      ("LSTM", dict()), ("SimpleRNN", dict())])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own, under NumPy 2
def test_matches_keras(rng, name, kw, merge_mode):
    keras = keras_or_skip()
    for return_sequences, return_state in ((False, False), (True, True)):
        kb = keras.layers.Bidirectional(
            getattr(keras.layers, name)(U, return_sequences=return_sequences,
                                        return_state=return_state, **kw),
            merge_mode=merge_mode)
        xb = rng.normal(size=(B, T, F)).astype(np.float32)
        keras_run(keras, kb, xb)
        kb.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.5
                        for w in kb.get_weights()])
        want = keras_run(keras, kb, xb)
        cls = {"GRU": GRU, "LSTM": LSTM, "SimpleRNN": SimpleRNN}[name]
        with gn.Graph():
            x = gn.Input((T, F))
            bi = Bidirectional(cls(U, return_sequences=return_sequences,
                                   return_state=return_state, **kw), merge_mode=merge_mode)
            out = bi(x)
        bi.set_weights(kb.get_weights())
        got = gn.compile(out)({x: xb})
        got = got if isinstance(got, list) else [got]
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_errors_are_clear():
    with pytest.raises(gn.GraphError, match="wraps a recurrent layer"):
        Bidirectional(Dense(3))
    with pytest.raises(gn.GraphError, match="merge_mode must be one of"):
        Bidirectional(GRU(3), merge_mode="max")
    with pytest.raises(gn.GraphError, match="the opposite go_backwards"):
        Bidirectional(GRU(3), backward_layer=GRU(3))
    with pytest.raises(gn.GraphError, match="the same return_sequences"):
        Bidirectional(GRU(3), backward_layer=GRU(3, go_backwards=True, return_sequences=True))
    with gn.Graph():
        with pytest.raises(gn.GraphError, match=r"initial_state as 2 tensors"):
            Bidirectional(GRU(U))(gn.Input((T, F)), initial_state=[gn.Input((U,))])


def test_given_backward_layer_and_save_load_round_trip(tmp_path, rng):
    with gn.Graph():
        x, h0 = gn.Input((T, F), name="x"), gn.Input((U,), name="h0")
        seq = Bidirectional(GRU(U, return_sequences=True, unroll=True, seed=1),
                            merge_mode="sum")(x, initial_state=[h0, h0])
        bi = Bidirectional(LSTM(U, seed=2), backward_layer=SimpleRNN(U, go_backwards=True,
                                                                       name="back", seed=3))
        out = Dense(2, seed=5)(bi(seq))
    assert bi.backward_layer.name == "back"
    model = gn.Model([x, h0], out)
    assert [type(la).__name__ for la in model.layers] == ["Bidirectional", "Bidirectional",
                                                          "Dense"]
    for w in model.weights:
        w.value = rng.normal(size=w.shape).astype(np.float32) * 0.5
    xb = [rng.normal(size=(B, T, F)), rng.normal(size=(B, U))]
    model.save(tmp_path / "bi.graphnet")
    loaded = gn.load_model(tmp_path / "bi.graphnet")
    assert loaded.weight_names == model.weight_names
    assert loaded.layers[1].get_config()["backward_layer"]["class_name"] == "SimpleRNN"
    np.testing.assert_array_equal(loaded.predict(xb), model.predict(xb))
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="mse")
    model.fit(xb, np.zeros((B, 2), np.float32), epochs=1, verbose=0, batch_size=B)
