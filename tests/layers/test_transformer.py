"""TransformerEncoder: NumPy and PyTorch references (post- and pre-norm, relu/gelu, causal
and padding masks), finite-difference gradients, causality, weights and save/load."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Dense, Embedding, PositionalEncoding, TransformerEncoder

from .layer_check import check_layer_gradients

pytestmark = pytest.mark.lecture2

NAMES = ["attention/query/kernel", "attention/query/bias", "attention/key/kernel",
         "attention/key/bias", "attention/value/kernel", "attention/value/bias",
         "attention/attention_output/kernel", "attention/attention_output/bias",
         "attention_norm/gamma", "attention_norm/beta", "ffn_norm/gamma", "ffn_norm/beta",
         "ffn/intermediate/kernel", "ffn/intermediate/bias", "ffn/output/kernel",
         "ffn/output/bias"]


def _ln(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _act(x, activation):
    if activation == "relu":
        return np.maximum(x, 0)
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def encoder_ref(w, x, pre, activation, eps=1e-5, causal=False, keep=None):
    """The block written out with einsum: ``keep (B, T, T)`` 1 where a query sees a key."""
    wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, g2, b2, w1, c1, w2, c2 = w

    def mha(h):
        Q = np.einsum("btd,dhk->bhtk", h, wq) + bq[:, None]
        K = np.einsum("btd,dhk->bhtk", h, wk) + bk[:, None]
        V = np.einsum("btd,dhk->bhtk", h, wv) + bv[:, None]
        s = np.einsum("bhik,bhjk->bhij", Q, K) / np.sqrt(Q.shape[-1])
        see = np.ones(s.shape, bool)
        if causal:
            see &= ~np.triu(np.ones(s.shape[-2:], bool), 1)
        if keep is not None:
            see &= keep[:, None].astype(bool)
        s = np.where(see, s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        a = e / e.sum(-1, keepdims=True)
        return np.einsum("bhtk,hko->bto", np.einsum("bhij,bhjk->bhik", a, V), wo) + bo

    def ffn(h):
        return _act(h @ w1 + c1, activation) @ w2 + c2

    if pre:
        x1 = x + mha(_ln(x, g1, b1, eps))
        return x1 + ffn(_ln(x1, g2, b2, eps))
    x1 = _ln(x + mha(x), g1, b1, eps)
    return _ln(x1 + ffn(x1), g2, b2, eps)


def _random_weights(layer, rng):
    """Random weights (gamma and beta too) so that every term shows in the comparison."""
    return [rng.normal(0, 0.4, w.shape) + (1.0 if n.endswith("gamma") else 0.0)
            for w, n in zip(layer.weights, layer._weight_names)]


def _block(t=5, d=8, ff=12, heads=2, dtype="float32", masks=False, **kw):
    with gn.Graph("enc"):
        x = gn.Input((t, d), name="x", dtype=dtype)
        layer = TransformerEncoder(ff, heads, seed=0, dtype=dtype, **kw.pop("init", {}))
        if masks:
            pad = gn.Input((t,), name="pad", dtype=dtype)
            y = layer(x, padding_mask=pad, **kw)
            return layer, (x, pad), y
        y = layer(x, **kw)
    return layer, (x,), y


def test_weights_order_shapes_and_config():
    layer, _, y = _block()
    assert y.shape == (None, 5, 8)
    assert layer._weight_names == NAMES
    assert [w.shape for w in layer.weights] == [
        (8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (2, 4, 8), (8,), (8,), (8,),
        (8,), (8,), (8, 12), (12,), (12, 8), (8,)]
    assert layer.weight_names[0] == "transformer_encoder/attention/query/kernel"
    assert layer.count_params() == 4 * (8 * 8 + 8) + 4 * 8 + 8 * 12 + 12 + 12 * 8 + 8
    cfg = layer.get_config()
    assert cfg["intermediate_dim"] == 12 and cfg["num_heads"] == 2
    assert cfg["layer_norm_epsilon"] == 1e-5 and cfg["normalize_first"] is False
    assert cfg["activation"] == "relu" and cfg["dropout"] == 0.0
    with pytest.raises(gn.GraphError, match="must divide"):
        _block(heads=3)
    with pytest.raises(gn.GraphError, match="set_weights got 3"):
        layer.set_weights([np.zeros(1)] * 3)


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal", [False, True])
def test_against_numpy(rng, pre, activation, causal):
    layer, (x,), y = _block(use_causal_mask=causal,
                            init={"normalize_first": pre, "activation": activation})
    w = _random_weights(layer, rng)
    layer.set_weights(w)
    xv = rng.normal(size=(3, 5, 8)).astype(np.float32)
    got = gn.compile(y)({x: xv})
    want = encoder_ref(w, xv.astype(np.float64), pre, activation, causal=causal)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_padding_mask_and_attention_mask_against_numpy(rng):
    with gn.Graph("enc"):
        x = gn.Input((4, 8), name="x")
        pad = gn.Input((4,), name="pad")
        am = gn.Input((4, 4), name="am")
        layer = TransformerEncoder(12, 2, seed=0)
        y = layer(x, padding_mask=pad, attention_mask=am, use_causal_mask=True)
    w = _random_weights(layer, rng)
    layer.set_weights(w)
    xv = rng.normal(size=(2, 4, 8)).astype(np.float32)
    pv = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)
    av = np.ones((2, 4, 4), np.float32)
    av[0, 3, 1] = 0
    got = gn.compile(y)({x: xv, pad: pv, am: av})
    keep = pv[:, None, :] * av
    want = encoder_ref(w, xv.astype(np.float64), False, "relu", causal=True, keep=keep)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _torch_weights(tl, heads):
    """nn.TransformerEncoderLayer's parameters in our get_weights order and layouts."""
    sd = {k: v.detach().double().numpy() for k, v in tl.state_dict().items()}
    d = sd["norm1.weight"].shape[0]
    kd = d // heads
    wq, wk, wv = np.split(sd["self_attn.in_proj_weight"], 3)
    bq, bk, bv = np.split(sd["self_attn.in_proj_bias"], 3)
    w = []
    for W, b in ((wq, bq), (wk, bk), (wv, bv)):
        w += [W.T.reshape(d, heads, kd), b.reshape(heads, kd)]
    w += [sd["self_attn.out_proj.weight"].T.reshape(heads, kd, d), sd["self_attn.out_proj.bias"],
          sd["norm1.weight"], sd["norm1.bias"], sd["norm2.weight"], sd["norm2.bias"],
          sd["linear1.weight"].T, sd["linear1.bias"], sd["linear2.weight"].T,
          sd["linear2.bias"]]
    return w


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_matches_torch_transformer_encoder_layer(rng, pre, activation):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=activation,
                                          batch_first=True, norm_first=pre).double().eval()
    with torch.no_grad():  # non-trivial norms
        for norm in (tl.norm1, tl.norm2):
            norm.weight.add_(torch.randn(8, dtype=torch.float64) * 0.3)
            norm.bias.add_(torch.randn(8, dtype=torch.float64) * 0.3)
    xv = rng.normal(size=(3, 5, 8))
    pv = np.ones((3, 5))
    pv[1, 3:] = 0
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)  # True: may not attend
    with torch.no_grad():
        ref = tl(torch.from_numpy(xv)).numpy()
        ref_masked = tl(torch.from_numpy(xv), src_mask=causal,
                        src_key_padding_mask=torch.from_numpy(pv == 0)).numpy()
    w = _torch_weights(tl, 2)
    for masked, want in ((False, ref), (True, ref_masked)):
        kw = {"use_causal_mask": True} if masked else {}
        layer, inputs, y = _block(dtype="float64", masks=masked,
                                  init={"normalize_first": pre, "activation": activation},
                                  **kw)
        layer.set_weights(w)
        feed = {inputs[0]: xv}
        if masked:
            feed[inputs[1]] = pv
        got = gn.compile(y)(feed)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("pre", [False, True])
def test_gradients_finite_differences(rng, pre):
    w = None

    def make():
        return TransformerEncoder(6, 2, dtype="float64", seed=1, normalize_first=pre)

    def call(layer, x):
        nonlocal w
        out = layer(x, use_causal_mask=True)
        w = _random_weights(layer, np.random.default_rng(3))
        layer.set_weights(w)
        return out

    check_layer_gradients(make, rng.normal(size=(2, 3, 4)), call=call)


def test_causal_output_ignores_later_inputs(rng):
    layer, (x,), y = _block(use_causal_mask=True, init={"normalize_first": True})
    layer.set_weights(_random_weights(layer, rng))
    f = gn.compile(y)
    xv = rng.normal(size=(2, 5, 8)).astype(np.float32)
    base = f({x: xv})
    for t in range(4):
        later = xv.copy()
        later[:, t + 1:] = rng.normal(size=later[:, t + 1:].shape)
        out = f({x: later})
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])
    # without the mask the first step sees the last input
    layer2, (x2,), y2 = _block()
    layer2.set_weights(layer.get_weights())
    later = xv.copy()
    later[:, -1] += 1.0
    g = gn.compile(y2)
    assert not np.allclose(g({x2: later})[:, 0], g({x2: xv})[:, 0])


def test_dropout_only_while_training(rng):
    with gn.Graph("drop"):
        x = gn.Input((4, 8), name="x")
        y = TransformerEncoder(12, 2, dropout=0.5, seed=0)(x)
    xv = rng.normal(size=(2, 4, 8)).astype(np.float32)
    infer = gn.compile(y)
    np.testing.assert_array_equal(infer({x: xv}), infer({x: xv}))
    train = gn.compile(y, training=True)
    assert not np.allclose(train({x: xv}), infer({x: xv}))


def test_causal_language_model_trains_and_round_trips(rng, tmp_path):
    t, vocab = 6, 5
    ids_v = rng.integers(0, vocab, (128, t + 1))
    xv, yv = ids_v[:, :-1], ids_v[:, 1:].copy()
    yv[:, 1:] = xv[:, :-1]  # predict the previous token: needs the causal look-back
    with gn.Graph("lm"):
        ids = gn.Input((t,), dtype="int64", name="ids")
        h = PositionalEncoding()(Embedding(vocab, 8, seed=0)(ids))
        h = TransformerEncoder(16, 2, seed=1, normalize_first=True)(h, use_causal_mask=True)
        h = TransformerEncoder(16, 2, seed=2, activation="gelu")(h, use_causal_mask=True)
        logits = Dense(vocab, seed=3)(h)
    model = gn.Model(ids, logits)
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss="sparse_softmax_cross_entropy")
    hist = model.fit(xv, yv, batch_size=16, epochs=15, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    assert [la.name for la in model.layers] == ["embedding", "positional_encoding",
                                                "transformer_encoder", "transformer_encoder_1",
                                                "dense"]
    path = tmp_path / "lm.graphnet"
    model.save(path)
    again = gn.load_model(path)
    np.testing.assert_allclose(again.predict(xv[:8]), model.predict(xv[:8]), rtol=1e-5,
                               atol=1e-6)
    assert again.weight_names == model.weight_names


def test_padding_mask_input_round_trips(rng, tmp_path):
    layer, (x, pad), y = _block(masks=True, use_causal_mask=True)
    layer.set_weights(_random_weights(layer, rng))
    model = gn.Model([x, pad], y)
    xv = rng.normal(size=(2, 5, 8)).astype(np.float32)
    pv = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], np.float32)
    path = tmp_path / "pad.graphnet"
    model.save(path)
    again = gn.load_model(path)
    np.testing.assert_allclose(again.predict([xv, pv]), model.predict([xv, pv]), rtol=1e-6,
                               atol=1e-6)


def test_sequential_round_trip_and_frozen_block(rng, tmp_path):
    model = gn.Sequential([TransformerEncoder(12, 2, activation="gelu", seed=0, name="enc"),
                           Dense(3, seed=1)], input_shape=(4, 8))
    enc = model.get_layer("enc")
    enc.set_weights(_random_weights(enc, rng))
    xv = rng.normal(size=(2, 4, 8)).astype(np.float32)
    path = tmp_path / "seq.graphnet"
    model.save(path)
    again = gn.load_model(path)
    np.testing.assert_allclose(again.predict(xv), model.predict(xv), rtol=1e-6, atol=1e-6)
    assert again.get_layer("enc").get_config() == enc.get_config()
    frozen = TransformerEncoder(12, 2, trainable=False)
    with gn.Graph("frozen"):
        frozen(gn.Input((4, 8)))
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 16


def test_integer_mask_is_refused():
    with gn.Graph("bad"):
        x = gn.Input((4, 8), name="x")
        pad = gn.Input((4,), dtype="int64", name="pad")
        with pytest.raises(gn.GraphError, match="padding_mask 'pad'.*float32"):
            TransformerEncoder(12, 2)(x, padding_mask=pad)
