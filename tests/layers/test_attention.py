"""MultiHeadAttention and Attention layers: Keras weight layouts, NumPy and PyTorch
references, scores, causal masks, training and save/load."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import (
    Attention,
    Dense,
    Embedding,
    Flatten,
    MultiHeadAttention,
    PositionalEncoding,
)

pytestmark = pytest.mark.lecture2


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mha_ref(w, q, v, k, causal):
    """Keras' MultiHeadAttention written out with einsum on its 3-D kernels."""
    wq, bq, wk, bk, wv, bv, wo, bo = w
    Q = np.einsum("btd,dhk->bhtk", q, wq) + bq[:, None]
    K = np.einsum("btd,dhk->bhtk", k, wk) + bk[:, None]
    V = np.einsum("btd,dhk->bhtk", v, wv) + bv[:, None]
    s = np.einsum("bhik,bhjk->bhij", Q, K) / np.sqrt(Q.shape[-1])
    if causal:
        s = np.where(np.triu(np.ones(s.shape[-2:], bool), 1), -np.inf, s)
    a = softmax(s)
    o = np.einsum("bhij,bhjk->bhik", a, V)
    return np.einsum("bhtk,hko->bto", o, wo) + bo, a


def test_weights_in_keras_layouts():
    with gn.Graph():
        q, v = gn.Input((5, 4)), gn.Input((3, 6))
        m = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5, output_shape=7)
        y = m([q, v])
    assert y.shape == (None, 5, 7)
    assert m.weight_names == [f"multi_head_attention/{n}/{w}" for n in
                              ("query", "key", "value", "attention_output")
                              for w in ("kernel", "bias")]
    assert [w.shape for w in m.get_weights()] == [(4, 2, 3), (2, 3), (6, 2, 3), (2, 3),
                                                  (6, 2, 5), (2, 5), (2, 5, 7), (7,)]
    with gn.Graph():
        m2 = MultiHeadAttention(2, 3, use_bias=False)
        assert m2(gn.Input((5, 4))).shape == (None, 5, 4)  # self-attention, query features out
    assert len(m2.weights) == 4 and m2.count_params() == 4 * (4 * 2 * 3)
    with pytest.raises(gn.GraphError, match="positive num_heads"):
        MultiHeadAttention(0, 3)


@pytest.mark.parametrize("causal", [False, True])
def test_cross_attention_against_numpy(rng, causal):
    with gn.Graph():
        q, v, k = gn.Input((4, 3)), gn.Input((5, 2)), gn.Input((5, 6))
        m = MultiHeadAttention(2, 3, value_dim=2, seed=0)
        y, s = m([q, v, k], use_causal_mask=causal, return_attention_scores=True)
    w = [rng.normal(size=a.shape).astype(np.float32) * 0.5 for a in m.get_weights()]
    m.set_weights(w)
    feeds = {q: rng.normal(size=(2, 4, 3)), v: rng.normal(size=(2, 5, 2)),
             k: rng.normal(size=(2, 5, 6))}
    out, scores = gn.compile([y, s])(feeds)
    want, a = mha_ref(w, feeds[q], feeds[v], feeds[k], causal)
    assert s.shape == (None, 2, 4, 5)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, a, rtol=1e-4, atol=1e-6)


def test_matches_torch_multihead_attention(rng):
    torch = pytest.importorskip("torch")
    E, H, T = 4, 2, 5
    ref = torch.nn.MultiheadAttention(E, H, batch_first=True)
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    with gn.Graph():
        x = gn.Input((T, E))
        m = MultiHeadAttention(H, E // H)
        y, s = m(x, use_causal_mask=True, return_attention_scores=True)
    # the documented mapping from torch's (out, in) matrices to Keras' 3-D kernels
    W, b = ref.in_proj_weight.detach().numpy(), ref.in_proj_bias.detach().numpy()
    wts = []
    for i in range(3):
        wts += [W[i * E:(i + 1) * E].T.reshape(E, H, E // H),
                b[i * E:(i + 1) * E].reshape(H, E // H)]
    wts += [ref.out_proj.weight.detach().numpy().T.reshape(H, E // H, E),
            ref.out_proj.bias.detach().numpy()]
    m.set_weights(wts)
    xb = rng.normal(size=(3, T, E)).astype(np.float32)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    xt = torch.from_numpy(xb)
    want, wa = ref(xt, xt, xt, attn_mask=mask, average_attn_weights=False)
    out, scores = gn.compile([y, s])({x: xb})
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, wa.detach().numpy(), rtol=1e-4, atol=1e-6)


def _copy_task(rng, n=96, t=4):
    # predict the token at position 0 from the last position's output (causal attention must
    # look back to the first token)
    x = rng.integers(0, 4, (n, t))
    return x, x[:, 0].copy()


def _mha_model(t=4):
    with gn.Graph("mha"):
        ids = gn.Input((t,), dtype="int64", name="ids")
        h = PositionalEncoding()(Embedding(4, 8, seed=0)(ids))
        out, scores = MultiHeadAttention(2, 4, seed=1)(h, use_causal_mask=True,
                                                       return_attention_scores=True)
        logits = Dense(4, seed=2)(Flatten()(out))
    return ids, logits, scores


def test_self_attention_model_trains_and_round_trips(rng, tmp_path):
    x, y = _copy_task(rng)
    ids, logits, scores = _mha_model()
    model = gn.Model(ids, logits)
    model.compile(optimizer=gn.optimizers.Adam(0.03), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    # both outputs, the causal option and the scores survive save/load
    both = gn.Model(ids, [logits, scores])
    path = tmp_path / "mha.graphnet"
    both.save(path)
    again = gn.load_model(path)
    p0, s0 = both.predict(x[:8])
    p1, s1 = again.predict(x[:8])
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1, s0, rtol=1e-5, atol=1e-7)
    assert s1.shape == (8, 2, 4, 4)
    np.testing.assert_allclose(s1.sum(-1), 1, rtol=1e-5)
    np.testing.assert_array_equal(s1[..., 0, 1:], 0)  # causal: query 0 sees key 0 only


def test_attention_layer_with_learned_scale(rng):
    with gn.Graph():
        q, v = gn.Input((3, 2)), gn.Input((4, 2))
        layer = Attention(use_scale=True)
        y, s = layer([q, v], return_attention_scores=True)
    assert [w.shape for w in layer.get_weights()] == [()]
    layer.set_weights([np.array(0.5)])
    qb, vb = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 4, 2))
    out, scores = gn.compile([y, s])({q: qb, v: vb})
    a = softmax(0.5 * qb @ np.swapaxes(vb, -1, -2))
    np.testing.assert_allclose(scores, a, rtol=1e-5)
    np.testing.assert_allclose(out, a @ vb, rtol=1e-5, atol=1e-6)
    with pytest.raises(gn.GraphError, match="score_mode='dot' only"):
        Attention(score_mode="concat")


def test_attention_layer_trains_its_scale(rng):
    # the learned scalar gets a gradient through the query product
    with gn.Graph():
        x = gn.Input((3, 2))
        layer = Attention(use_scale=True)
        h = layer([x, x], use_causal_mask=True)
        loss = gn.mean(h * h)
    _, (ds,) = gn.compile(loss, wrt=layer.weights)({x: rng.normal(size=(2, 3, 2))})
    assert ds.shape == () and ds != 0
