"""Regularizing SimpleRNN, LSTM and GRU: dropout and recurrent_dropout (one mask per sequence,
the same at every step, as Keras; shared by the gates, or one per gate with implementation=1)
against NumPy loops that apply the masks the program drew, off at inference, a fresh draw each
training step; the fused node keeps recurrent dropout; kernel, recurrent and bias
regularizers; both saved with the model."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from tests.ops.test_gru import sig
from tests.ops.test_recurrent import lstm_ref

pytestmark = pytest.mark.lecture2

B, T, F, U = 3, 4, 3, 5


def _masks(prog, graph):
    """The dropout masks the last training call drew, in build order: (input masks,
    recurrent masks); one each, or one per gate with recurrent dropout."""
    vals = prog.values()
    ms = [vals[t] for t in graph.nodes if t.op is not None and t.op.name == "dropout"]
    return [m for m in ms if m.shape[-1] == F], [m for m in ms if m.shape[-1] == U]


def _ops(graph):
    return [t.op.name for t in graph.nodes if t.op is not None]


def _train_run(layer, rng):
    with gn.Graph() as g:
        x = gn.Input((T, F), dtype="float64", name="x")
        out = layer(x)
    ws = [rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    xb = rng.normal(size=(B, T, F))
    prog = gn.compile(out, training=True)
    got = prog({x: xb})
    return got, _masks(prog, g), ws, xb, (x, out, prog, g)


@pytest.mark.parametrize("rates", [(0.4, 0.0), (0.0, 0.5), (0.4, 0.5)])
def test_simple_rnn_masks_are_one_per_sequence(rng, rates):
    got, (mxs, mhs), (W, Uk, b), xb, (*_, g) = _train_run(
        SimpleRNN(U, return_sequences=True, dropout=rates[0], recurrent_dropout=rates[1],
                  dtype="float64"), rng)
    assert (len(mxs), len(mhs)) == (int(rates[0] > 0), int(rates[1] > 0))
    assert _ops(g).count("simple_rnn") == 1  # one fused node, the mask its input
    mx = mxs[0] if mxs else np.ones((B, F))
    mh = mhs[0] if mhs else np.ones((B, U))
    assert set(np.unique(mx)) <= {0, 1 / (1 - rates[0])} and (mx == 0).any() == bool(rates[0])
    h, want = np.zeros((B, U)), []
    for t in range(T):
        h = np.tanh((xb[:, t] * mx) @ W + (h * mh) @ Uk + b)
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


@pytest.mark.parametrize("reset_after, implementation",
                         [(True, 1), (False, 1), (True, 2), (False, 2)])
def test_gru_masks_only_the_recurrent_products(rng, reset_after, implementation):
    got, (mx, mh), (W, Uk, b), xb, (*_, g) = _train_run(
        GRU(U, return_sequences=True, dropout=0.3, recurrent_dropout=0.5,
            reset_after=reset_after, implementation=implementation, dtype="float64"), rng)
    if implementation == 1:  # a mask per gate z, r, h: the unrolled form
        assert len(mx) == len(mh) == 3 and not np.array_equal(mh[0], mh[1])
        assert "gru" not in _ops(g)
    else:  # one of each, read by every gate: one fused node, the mask its input
        assert len(mx) == len(mh) == 1 and _ops(g).count("gru") == 1
        mx, mh = mx * 3, mh * 3

    def per_gate(v, masks, M):  # each gate's block of columns from its own mask of v
        return np.concatenate([(v * m) @ M[:, k * U:(k + 1) * U] for k, m in enumerate(masks)],
                              1)
    bi, br = (b[0], b[1]) if reset_after else (b, np.zeros(3 * U))
    h, want = np.zeros((B, U)), []
    for t in range(T):
        xz = per_gate(xb[:, t], mx, W) + bi
        if reset_after:
            rec = per_gate(h, mh, Uk) + br
        else:
            rec = np.concatenate([per_gate(h, mh[:2], Uk[:, :2 * U]), np.zeros((B, U))], 1)
        z, r = sig(xz[:, :U] + rec[:, :U]), sig(xz[:, U:2 * U] + rec[:, U:2 * U])
        inner = r * rec[:, 2 * U:] if reset_after else (r * h * mh[2]) @ Uk[:, 2 * U:]
        h = z * h + (1 - z) * np.tanh(xz[:, 2 * U:] + inner)  # the unmasked h_{t-1} here
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


def test_lstm_dropout_alone_and_with_recurrent_dropout(rng):
    got, (mx, mh), (W, Uk, b), xb, _ = _train_run(
        LSTM(U, return_sequences=True, dropout=0.3, dtype="float64"), rng)
    assert len(mx) == 1 and not mh  # one mask over the sequence: the fused node
    np.testing.assert_allclose(got, lstm_ref(xb * mx[0][:, None], W, Uk, b)[0], rtol=1e-12)
    got, (mx, mh), (W, Uk, b), xb, (*_, g) = _train_run(
        LSTM(U, return_sequences=True, dropout=0.3, recurrent_dropout=0.5, implementation=1,
             dtype="float64"), rng)
    assert len(mx) == len(mh) == 4  # one per gate i, f, c, o: the unrolled form
    assert "lstm" not in _ops(g)

    def per_gate(v, masks, M):
        return np.concatenate([(v * m) @ M[:, k * U:(k + 1) * U] for k, m in enumerate(masks)],
                              1)
    h, c, want = np.zeros((B, U)), np.zeros((B, U)), []
    for t in range(T):
        zz = per_gate(xb[:, t], mx, W) + per_gate(h, mh, Uk) + b
        i, f, o = sig(zz[:, :U]), sig(zz[:, U:2 * U]), sig(zz[:, 3 * U:])
        c = f * c + i * np.tanh(zz[:, 2 * U:3 * U])
        h = o * np.tanh(c)
        want.append(h)
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=1e-12)


def test_lstm_recurrent_dropout_stays_one_fused_node(rng):
    # implementation=2 (the default): one mask of x_t and one of h_{t-1} for every gate, the
    # recurrent one an input of the fused node; the program's gradients are the loop's own
    got, (mx, mh), (W, Uk, b), xb, (x, out, prog, g) = _train_run(
        LSTM(U, return_sequences=True, dropout=0.3, recurrent_dropout=0.5, dtype="float64"),
        rng)
    assert len(mx) == len(mh) == 1 and _ops(g).count("lstm") == 1
    assert set(np.unique(mh[0])) == {0.0, 2.0}
    np.testing.assert_allclose(got, lstm_ref(xb * mx[0][:, None], W, Uk, b, m=mh[0])[0],
                               rtol=1e-12)
    # no gradient flows back through the mask to x: dx is the unmasked-path's alone
    with g:
        loss = gn.sum(out * out)
    train = gn.compile(loss, wrt=[x], training=True, seed=3)
    _, (dx,) = train({x: xb})
    vals = train.values()
    ms = [vals[t] for t in g.nodes if t.op is not None and t.op.name == "dropout"]
    mx, mh = [m for m in ms if m.shape[-1] == F][0], [m for m in ms if m.shape[-1] == U][0]

    def f(xv):  # the loss as NumPy, the same masks
        hs = lstm_ref(xv * mx[:, None], W, Uk, b, m=mh)[0]
        return np.sum(hs * hs)
    eps, num = 1e-6, np.zeros_like(xb)
    for i in np.ndindex(xb.shape):
        d = np.zeros_like(xb)
        d[i] = eps
        num[i] = (f(xb + d) - f(xb - d)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_off_at_inference_and_fresh_each_training_step(cls, rng):
    got, _, ws, xb, (x, out, prog, _g) = _train_run(cls(U, dropout=0.3, recurrent_dropout=0.3,
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
