"""SimpleRNN and LSTM layers: Keras arguments and layouts, return conventions, initial states,
unrolled == fused (forward and every gradient), training, and save/load."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import LSTM, Dense, SimpleRNN

pytestmark = pytest.mark.lecture2

B, T, F, U = 2, 4, 3, 5


def _layer_out(layer_cls, **kw):
    with gn.Graph():
        x = gn.Input((T, F), name="x")
        layer = layer_cls(U, seed=1, **kw)
        out = layer(x)
    return layer, x, out


def test_keras_names_layouts_and_initializers():
    layer, _, _ = _layer_out(LSTM)
    assert layer.weight_names == ["lstm/kernel", "lstm/recurrent_kernel", "lstm/bias"]
    kernel, rec, bias = layer.get_weights()
    assert kernel.shape == (F, 4 * U) and rec.shape == (U, 4 * U) and bias.shape == (4 * U,)
    # unit_forget_bias: the forget gate's bias starts at one, the others at zero
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])
    np.testing.assert_allclose(rec @ rec.T, np.eye(U), atol=1e-5)  # orthogonal rows
    layer, _, _ = _layer_out(SimpleRNN, recurrent_initializer="identity", activation="relu")
    assert layer.name == "simple_rnn"
    np.testing.assert_array_equal(layer.get_weights()[1], np.eye(U))
    layer, _, _ = _layer_out(LSTM, use_bias=False, unit_forget_bias=False)
    assert [w.shape for w in layer.get_weights()] == [(F, 4 * U), (U, 4 * U)]


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM])
@pytest.mark.parametrize("unroll", [False, True])
def test_output_shapes_for_return_sequences_and_state(cls, unroll):
    n_states = 2 if cls is LSTM else 1
    for seqs in (False, True):
        _, _, out = _layer_out(cls, return_sequences=seqs, unroll=unroll)
        assert out.shape == ((None, T, U) if seqs else (None, U))
        _, x, outs = _layer_out(cls, return_sequences=seqs, return_state=True, unroll=unroll)
        assert isinstance(outs, list) and len(outs) == 1 + n_states
        assert [o.shape for o in outs[1:]] == [(None, U)] * n_states
        # with return_state the output's last step is the returned h_T
        vals = gn.compile(outs)({x: np.random.default_rng(0).normal(size=(B, T, F))})
        last = vals[0][:, -1] if seqs else vals[0]
        np.testing.assert_array_equal(last, vals[1])


def test_forward_matches_numpy_with_initial_state(rng):
    with gn.Graph():
        x, h0 = gn.Input((T, F), name="x"), gn.Input((U,), name="h0")
        layer = SimpleRNN(U, activation="relu", return_sequences=True, seed=3)
        out = layer(x, initial_state=[h0])
    kernel, rec, bias = (rng.normal(size=w.shape).astype(np.float32) * 0.5
                         for w in layer.get_weights())
    layer.set_weights([kernel, rec, bias])
    xb, hb = rng.normal(size=(B, T, F)), rng.normal(size=(B, U))
    h, want = hb, []
    for t in range(T):
        h = np.maximum(xb[:, t] @ kernel + h @ rec + bias, 0)
        want.append(h)
    got = gn.compile(out)({x: xb, h0: hb})
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-5, atol=1e-5)


def _both_forms(cls, rng, **kw):
    """The same float64 layer fused and unrolled, with initial states; returns per form
    (outputs, gradients wrt weights, x and states, the graph)."""
    n_states = 2 if cls is LSTM else 1
    feeds = [rng.normal(size=(B, T, F))] + [rng.normal(size=(B, U)) for _ in range(n_states)]
    weights, results = None, []
    for unroll in (False, True):
        with gn.Graph() as g:
            x = gn.Input((T, F), dtype="float64", name="x")
            states = [gn.Input((U,), dtype="float64", name=f"s{i}") for i in range(n_states)]
            layer = cls(U, unroll=unroll, dtype="float64", return_sequences=True,
                        return_state=True, seed=2, **kw)
            outs = layer(x, initial_state=states)
            # weight every output by a fixed random tensor so that each element counts
            terms = [gn.sum(o * np.random.default_rng(k).normal(size=(B,) + o.shape[1:]))
                     for k, o in enumerate(outs)]
            loss = terms[0]
            for term in terms[1:]:
                loss = loss + term
        if weights is None:
            weights = [w * 3 for w in layer.get_weights()]  # larger: gradients that differ
        layer.set_weights(weights)
        wrt = [*layer.weights, x, *states]
        prog = gn.compile(loss, wrt=wrt)
        val, grads = prog(dict(zip([x, *states], feeds)))
        results.append((val, grads, prog, g))
    return results


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM])
def test_unrolled_equals_fused_forward_and_every_gradient(cls, rng):
    (v1, g1, _, _), (v2, g2, prog, g) = _both_forms(cls, rng)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    # the unrolled steps are named <layer>/t<k>/... and each has its own gradient
    name = "lstm" if cls is LSTM else "simple_rnn"
    steps = {t.name.split("/")[1] for t in g.nodes if t.name.startswith(f"{name}/t")}
    assert steps == {f"t{k}" for k in range(T)}
    grads = prog.gradients()
    assert all(any(t.name.startswith(f"{name}/t{k}/") for t in grads) for k in range(T))


def test_unrolled_lstm_other_activations_equal_fused(rng):
    (v1, g1, _, _), (v2, g2, _, _) = _both_forms(LSTM, rng, activation="relu",
                                                 recurrent_activation="tanh")
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_errors_are_clear():
    with gn.Graph():
        with pytest.raises(gn.GraphError, match=r"needs inputs of shape \(batch, timesteps, "
                                                r"features\).*got \(None, 3\)"):
            LSTM(4)(gn.Input((3,)))
        x = gn.Input((T, F))
        with pytest.raises(gn.GraphError, match=r"initial_state as a list of 2 tensors"):
            LSTM(U)(x, initial_state=[gn.Input((U,))])
        with pytest.raises(gn.GraphError, match=r"initial state h0 must be \(batch, 5\), "
                                                r"got \(None, 3\)"):
            SimpleRNN(U, unroll=True)(x, initial_state=gn.Input((3,)))
    with pytest.raises(gn.GraphError, match=r"activation in \['linear', 'relu', 'sigmoid', "
                                            r"'tanh'\].*got 'gelu'"):
        SimpleRNN(3, activation="gelu")
    with pytest.raises(gn.GraphError, match="recurrent_activation"):
        LSTM(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(gn.GraphError, match="positive number of units"):
        SimpleRNN(0)


def _sum_data(n=256, seed=0):
    # the running sum of a short sequence: the state must carry what it has seen
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 6, 1)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None].astype(np.float32)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM])
def test_model_learns_a_sequence_sum(cls):
    x, y = _sum_data()
    model = gn.Sequential([cls(8, seed=1), Dense(1, seed=2)], input_shape=(6, 1))
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss="mse")
    hist = model.fit(x, y, batch_size=32, epochs=8, verbose=0, seed=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.25 * loss[0], loss


def test_save_load_round_trip_with_initial_state(tmp_path, rng):
    with gn.Graph():
        x = gn.Input((T, F), name="x")
        h0, c0 = gn.Input((U,), name="h0"), gn.Input((U,), name="c0")
        seq, h, c = LSTM(U, return_sequences=True, return_state=True, seed=4)(
            x, initial_state=[h0, c0])
        out = Dense(2, seed=5)(SimpleRNN(U, unroll=True, seed=6)(seq, initial_state=h))
    model = gn.Model([x, h0, c0], [out, c])
    feeds = [rng.normal(size=(B, T, F)), rng.normal(size=(B, U)), rng.normal(size=(B, U))]
    model.save(tmp_path / "rnn.graphnet")
    loaded = gn.load_model(tmp_path / "rnn.graphnet")
    assert [type(la).__name__ for la in loaded.layers] == ["LSTM", "SimpleRNN", "Dense"]
    cfg = loaded.layers[0].get_config()
    assert cfg["return_state"] and cfg["unit_forget_bias"] and loaded.layers[1].unroll
    for a, b in zip(loaded.predict(feeds), model.predict(feeds)):
        np.testing.assert_array_equal(a, b)
