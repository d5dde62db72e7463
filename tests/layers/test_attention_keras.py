"""MultiHeadAttention as Keras 3 has it: the call signature, inputs of any rank with
attention_axes, attention_mask, dropout; against NumPy, PyTorch and Keras itself (issue 12)."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import MultiHeadAttention
from tests.layers.layer_check import check_layer_gradients

pytestmark = pytest.mark.lecture2


def mha_nd_ref(w, q, v, axes, mask=None):
    """Keras' MHA on any rank written out: project, move the attention axes last, flatten
    them into one softmax (masked entries -1e9), then undo."""
    wq, bq, wk, bk, wv, bv, wo, bo = w
    r = q.ndim
    other = [a for a in range(1, r - 1) if a not in axes]

    def heads(x, W, b):  # (B, ..., d) -> (B, *other, H, T, depth)
        p = np.einsum("...d,dhk->...hk", x, W) + b
        p = p.transpose(0, *other, r - 1, *axes, r)
        return p.reshape(*p.shape[:len(other) + 2], -1, p.shape[-1])
    Q, K, V = heads(q, wq, bq), heads(v, wk, bk), heads(v, wv, bv)
    s = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    aq, ak = [q.shape[a] for a in axes], [v.shape[a] for a in axes]
    full = s.reshape(*s.shape[:-2], *aq, *ak)
    if mask is not None:
        m = mask
        while m.ndim < full.ndim:
            m = np.expand_dims(m, -2 * len(axes) - 1)
        full = np.where(np.broadcast_to(m, full.shape), full, -1e9)
    s = full.reshape(s.shape)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    o = a @ V                                    # (B, *other, H, Tq, vd)
    o = o.reshape(*o.shape[:-2], *aq, o.shape[-1])
    perm = (0, *other, r - 1, *axes, r)
    o = o.transpose(np.argsort(perm))            # (B, ..., H, vd)
    return np.einsum("...hk,hko->...o", o, wo) + bo, a.reshape(full.shape)


def _weights(layer, rng):
    return [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()]


def test_keras_call_signature_positional_keyword_and_list(rng):
    q = rng.normal(size=(2, 4, 6)).astype(np.float32)
    v = rng.normal(size=(2, 5, 6)).astype(np.float32)
    with gn.Graph():
        qi, vi = gn.Input((4, 6)), gn.Input((5, 6))
        m = MultiHeadAttention(2, 3, seed=0)
        outs = [m([qi, vi]), m(qi, vi), m(query=qi, value=vi), m(qi, vi, vi),
                m(qi, value=vi, key=vi, training=False)]
        o, sc = m(qi, vi, return_attention_scores=True)
        c = m(qi, qi, use_causal_mask=True)
        c2 = m([qi, qi], use_causal_mask=True)
    got = gn.compile([*outs, o, sc, c, c2])({qi: q, vi: v})
    for g in got[1:5]:
        np.testing.assert_allclose(g, got[0], rtol=1e-6)
    np.testing.assert_allclose(got[5], got[0], rtol=1e-6)
    assert sc.shape == (None, 2, 4, 5)
    np.testing.assert_allclose(got[7], got[8], rtol=1e-6)
    with gn.Graph(), pytest.raises(gn.GraphError, match="either as a list or as query"):
        MultiHeadAttention(2, 3)([gn.Input((4, 6)), gn.Input((4, 6))], gn.Input((4, 6)))


@pytest.mark.parametrize("shape,axes", [((3, 4, 5), None), ((3, 4, 5), (2,)),
                                        ((3, 4, 5), 1), ((3, 4, 5), (-2,)),
                                        ((2, 3, 2, 4), (1, 3))])
def test_any_rank_attention_axes_against_numpy(rng, shape, axes):
    q = rng.normal(size=(2, *shape))
    v = rng.normal(size=(2, *shape))
    with gn.Graph():
        qi, vi = gn.Input(shape), gn.Input(shape)
        m = MultiHeadAttention(2, 3, value_dim=2, attention_axes=axes)
        out, scores = m(qi, vi, return_attention_scores=True)
    w = _weights(m, rng)
    m.set_weights(w)
    r = len(shape) + 1
    norm = tuple(range(1, r - 1)) if axes is None else tuple(
        sorted(a % (r) if a < 0 else a for a in ((axes,) if isinstance(axes, int) else axes)))
    norm = tuple(a - 1 if a >= r - 1 else a for a in norm)  # -2 of (B, a, b, c, d) is c
    want, want_s = mha_nd_ref([x.astype(np.float64) for x in w], q, v, norm)
    got, got_s = gn.compile([out, scores])({qi: q.astype(np.float32), vi: v.astype(np.float32)})
    assert out.shape == (None, *shape) and scores.shape == (None, *want_s.shape[1:])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-4, atol=1e-6)


def test_attention_mask_broadcasts_as_keras(rng):
    q = rng.normal(size=(2, 4, 6)).astype(np.float32)
    v = rng.normal(size=(2, 5, 6)).astype(np.float32)
    full = rng.random((2, 4, 5)) > 0.4
    full[:, :, 0] = True
    pad = np.ones((2, 1, 5), bool)
    pad[1, :, 3:] = False                      # a key-padding mask, broadcast over queries
    with gn.Graph():
        qi, vi = gn.Input((4, 6)), gn.Input((5, 6))
        mi = gn.Input((4, 5), name="mask")     # float32: boolean feeds arrive as 1/0
        m = MultiHeadAttention(2, 3)
        a, sa = m(qi, vi, attention_mask=mi, return_attention_scores=True)
        b = m(qi, vi, attention_mask=pad)
        c = m(qi, vi, attention_mask=full, use_causal_mask=True)
    w = _weights(m, rng)
    m.set_weights(w)
    w64 = [x.astype(np.float64) for x in w]
    got_a, got_sa, got_b, got_c = gn.compile([a, sa, b, c])({qi: q, vi: v, mi: full})
    want_a, want_sa = mha_nd_ref(w64, q, v, (1,), full)
    np.testing.assert_allclose(got_a, want_a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_sa, want_sa, rtol=1e-4, atol=1e-6)
    assert np.all(got_sa[np.broadcast_to(~full[:, None], got_sa.shape)] < 1e-6)
    np.testing.assert_allclose(got_b, mha_nd_ref(w64, q, v, (1,), pad)[0], rtol=1e-4,
                               atol=1e-5)
    causal = full & ~np.triu(np.ones((4, 5), bool), 1)
    np.testing.assert_allclose(got_c, mha_nd_ref(w64, q, v, (1,), causal)[0], rtol=1e-4,
                               atol=1e-5)
    with gn.Graph(), pytest.raises(gn.GraphError, match="declare it float32"):
        x = gn.Input((4, 6))
        MultiHeadAttention(2, 3)(x, x, attention_mask=gn.Input((4, 4), dtype="int64"))


def test_mask_and_rank4_gradients_by_finite_differences(rng):
    mask = rng.random((1, 3, 3)) > 0.3
    mask[..., 0] = True
    check_layer_gradients(lambda: MultiHeadAttention(2, 2, dtype="float64",
                                                     bias_initializer="glorot_uniform"),
                          rng.normal(size=(1, 3, 4)), rng.normal(size=(1, 3, 4)),
                          call=lambda m, q, v: m(q, v, attention_mask=mask))
    check_layer_gradients(lambda: MultiHeadAttention(1, 2, attention_axes=(2,),
                                                     dtype="float64"),
                          rng.normal(size=(1, 2, 3, 2)), rng.normal(size=(1, 2, 3, 2)),
                          call=lambda m, q, v: m(q, v))


def test_dropout_on_probabilities_in_training_only(rng):
    q = rng.normal(size=(2, 5, 4)).astype(np.float32)
    with gn.Graph():
        qi = gn.Input((5, 4))
        m = MultiHeadAttention(2, 2, dropout=0.5, seed=0)
        out, scores = m(qi, qi, return_attention_scores=True)
        off = m(qi, qi, training=False)
    plain = MultiHeadAttention(2, 2)
    with gn.Graph():
        pi = gn.Input((5, 4))
        ref = plain(pi, pi)
    plain.set_weights(m.get_weights())
    want = gn.compile(ref)({pi: q})
    infer, infer_off = gn.compile([out, off])({qi: q})
    np.testing.assert_allclose(infer, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(infer_off, want, rtol=1e-5, atol=1e-6)
    tr, tr_scores, tr_off = gn.compile([out, scores, off], training=True, seed=1)({qi: q})
    assert np.abs(tr - want).max() > 1e-3           # probabilities were dropped
    np.testing.assert_allclose(tr_off, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tr_scores.sum(-1), 1.0, rtol=1e-5)  # scores before dropout
    with pytest.raises(gn.GraphError, match="dropout must be in"):
        MultiHeadAttention(2, 2, dropout=1.0)


def test_attention_mask_against_torch(rng):
    torch = pytest.importorskip("torch")
    E, H = 4, 2
    x = rng.normal(size=(2, 5, E)).astype(np.float32)
    mask = rng.random((2, 5, 5)) > 0.5
    mask[..., 0] = True
    t = torch.nn.MultiheadAttention(E, H, batch_first=True)
    W = t.in_proj_weight.detach().numpy()
    bi = t.in_proj_bias.detach().numpy()
    with gn.Graph():
        xi = gn.Input((5, E))
        m = MultiHeadAttention(H, E // H)
        y = m(xi, xi, attention_mask=mask)
    m.set_weights([W[:E].T.reshape(E, H, E // H), bi[:E].reshape(H, E // H),
                   W[E:2 * E].T.reshape(E, H, E // H), bi[E:2 * E].reshape(H, E // H),
                   W[2 * E:].T.reshape(E, H, E // H), bi[2 * E:].reshape(H, E // H),
                   t.out_proj.weight.detach().numpy().T.reshape(H, E // H, E),
                   t.out_proj.bias.detach().numpy()])
    tx = torch.from_numpy(x)
    # torch's boolean attn_mask marks what may NOT be attended, one per (batch x head)
    tm = torch.from_numpy(~mask).repeat_interleave(H, 0)
    want = t(tx, tx, tx, attn_mask=tm, need_weights=False)[0].detach().numpy()
    np.testing.assert_allclose(gn.compile(y)({xi: x}), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,axes,masked", [((4, 6), None, False), ((4, 6), None, True),
                                               ((3, 4, 6), None, False), ((3, 4, 6), (2,), True),
                                               ((2, 3, 2, 6), (1, 3), False)])
def test_multi_head_attention_equals_keras(rng, shape, axes, masked):
    from tests.keras_ref import keras_or_skip, to_numpy
    keras = keras_or_skip()
    q = rng.normal(size=(2, *shape)).astype(np.float32)
    v = rng.normal(size=(2, *shape)).astype(np.float32)
    with gn.Graph():
        qi, vi = gn.Input(shape), gn.Input(shape)
        m = MultiHeadAttention(2, 3, value_dim=4, attention_axes=axes, output_shape=5)
        mask = None
        if masked:
            n = len(m._axes_arg or range(1, len(shape)))
            sizes = [shape[a - 1] for a in (m._axes_arg or range(1, len(shape)))]
            others = [shape[a - 1] for a in range(1, len(shape))
                      if a not in (m._axes_arg or range(1, len(shape)))]
            mask = rng.random((2, *others, *sizes, *sizes)) > 0.4
            mask[..., 0] = True
            assert n == len(sizes)
        out, scores = m(qi, vi, attention_mask=mask, return_attention_scores=True)
    km = keras.layers.MultiHeadAttention(2, 3, value_dim=4, attention_axes=axes,
                                         output_shape=5)
    km(q, v)
    km.set_weights(m.get_weights())
    k_out, k_scores = km(q, v, attention_mask=mask, return_attention_scores=True)
    got, got_s = gn.compile([out, scores])({qi: q, vi: v})
    assert scores.shape[1:] == tuple(k_scores.shape[1:])
    np.testing.assert_allclose(got, to_numpy(k_out), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_s, to_numpy(k_scores), rtol=1e-4, atol=1e-6)


def test_model_with_mask_input_and_rank4_attention_round_trips(rng, tmp_path):
    x = rng.normal(size=(3, 2, 4, 6)).astype(np.float32)
    mask = rng.random((3, 2, 4, 4)) > 0.3
    mask[..., 0] = True
    with gn.Graph():
        xi, mi = gn.Input((2, 4, 6), name="x"), gn.Input((2, 4, 4), name="mask")
        m = MultiHeadAttention(2, 3, attention_axes=2, dropout=0.1, seed=3)
        y = m(xi, xi, attention_mask=mi)
        z = MultiHeadAttention(1, 2, attention_axes=2, name="fixed")(
            y, y, attention_mask=np.tril(np.ones((4, 4))))
    model = gn.Model([xi, mi], z)
    model.save(tmp_path / "mha.graphnet")
    back = gn.load_model(tmp_path / "mha.graphnet")
    np.testing.assert_array_equal(back.predict([x, mask]), model.predict([x, mask]))
    assert back.get_layer("multi_head_attention").get_config() == m.get_config()


def test_dot_product_attention_layer_equals_keras(rng):
    from graphnet.layers import Attention
    from tests.keras_ref import keras_or_skip, to_numpy
    keras = keras_or_skip()
    q = rng.normal(size=(2, 4, 3)).astype(np.float32)
    v = rng.normal(size=(2, 5, 3)).astype(np.float32)
    for causal in (False, True):
        with gn.Graph():
            qi, vi = gn.Input((4, 3)), gn.Input((5, 3))
            out, scores = Attention()([qi, vi], use_causal_mask=causal,
                                      return_attention_scores=True)
        k_out, k_scores = keras.layers.Attention()([q, v], use_causal_mask=causal,
                                                   return_attention_scores=True)
        got, got_s = gn.compile([out, scores])({qi: q, vi: v})
        np.testing.assert_allclose(got, to_numpy(k_out), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_s, to_numpy(k_scores), rtol=1e-5, atol=1e-6)
