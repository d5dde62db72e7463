"""Losses: NumPy and PyTorch references, float64 finite differences, stability, shape errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_gradients

pytestmark = pytest.mark.lecture1


def _value(build, *arrays, dtype="float32"):
    """Forward value of ``build`` on float Parameters and integer constants."""
    with gn.Graph():
        ps = [gn.Parameter(a, dtype=dtype) if a.dtype.kind == "f" else gn.constant(a)
              for a in map(np.asarray, arrays)]
        out = build(*ps)
    assert out.shape == ()
    v = gn.compile(out)({})
    assert v.shape == () and v.dtype == np.dtype(dtype)
    return float(v)


# -- NumPy references, written out -----------------------------------------------------------

def np_sigmoid_ce(z, y):
    p = 1 / (1 + np.exp(-z))
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def np_bce(p, y, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def np_huber(p, t, delta=1.0):
    d = np.abs(p - t)
    return np.mean(np.where(d <= delta, 0.5 * d**2, delta * d - 0.5 * delta**2))


def np_softmax_ce(z, labels):
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    if labels.dtype.kind in "iu":
        labels = np.eye(z.shape[-1])[labels]
    return np.mean(-(labels * logp).sum(-1))


@pytest.fixture
def data(rng):
    return {
        "pred": rng.normal(size=(6, 3)),
        "target": rng.normal(size=(6, 3)),
        "probs": rng.uniform(0.05, 0.95, size=(6, 3)),
        "bits": rng.integers(0, 2, size=(6, 3)).astype(np.float64),
        "soft": rng.uniform(size=(6, 3)),
        "ids": rng.integers(0, 3, size=6),
        "rows": rng.dirichlet(np.ones(3), size=6),
    }


def test_forward_matches_numpy(data):
    d = data
    cases = [
        (gn.mse, (d["pred"], d["target"]), np.mean((d["pred"] - d["target"]) ** 2)),
        (gn.mae, (d["pred"], d["target"]), np.mean(np.abs(d["pred"] - d["target"]))),
        (gn.huber, (d["pred"], d["target"]), np_huber(d["pred"], d["target"])),
        (lambda p, t: gn.huber(p, t, delta=0.5), (d["pred"], d["target"]),
         np_huber(d["pred"], d["target"], 0.5)),
        (gn.sigmoid_cross_entropy, (d["pred"], d["soft"]), np_sigmoid_ce(d["pred"], d["soft"])),
        (gn.binary_cross_entropy, (d["probs"], d["bits"]), np_bce(d["probs"], d["bits"])),
        (gn.softmax_cross_entropy, (d["pred"], d["ids"]), np_softmax_ce(d["pred"], d["ids"])),
        (gn.softmax_cross_entropy, (d["pred"], d["rows"]), np_softmax_ce(d["pred"], d["rows"])),
    ]
    for fn, args, ref in cases:
        np.testing.assert_allclose(_value(fn, *args), ref, rtol=1e-5, err_msg=fn.__name__)
        np.testing.assert_allclose(_value(fn, *args, dtype="float64"), ref, rtol=1e-12,
                                   err_msg=fn.__name__)


def test_gradients(data):
    d = data
    check_gradients(gn.mse, d["pred"], d["target"])  # target too: mse and mae differentiate both
    check_gradients(gn.mae, d["pred"], d["target"])
    check_gradients(gn.huber, d["pred"], d["target"])  # both sides of |p - t| = 1
    check_gradients(lambda p, t: gn.huber(p, t, delta=0.5), d["pred"], d["target"])
    check_gradients(gn.sigmoid_cross_entropy, d["pred"], d["soft"], wrt=[0])
    check_gradients(gn.binary_cross_entropy, d["probs"], d["bits"], wrt=[0])
    check_gradients(gn.softmax_cross_entropy, d["pred"], d["ids"])
    check_gradients(gn.softmax_cross_entropy, d["pred"], d["rows"], wrt=[0])


def test_softmax_cross_entropy_is_finite_at_large_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    y = np.array([1, 2])
    # row 0: lse = 1e4, loss 1e4; row 1: lse = 1e4 + log 2, loss log 2
    assert _value(gn.softmax_cross_entropy, z, y) == pytest.approx((1e4 + np.log(2)) / 2,
                                                                   rel=1e-6)
    with gn.Graph():
        p = gn.Parameter(z)
        loss = gn.softmax_cross_entropy(p, gn.constant(y))
    _, (g,) = gn.compile(loss, wrt=[p])({})
    np.testing.assert_allclose(g, [[0.5, -0.5, 0], [0, 0.25, -0.25]], atol=1e-7)


def test_softmax_cross_entropy_backward_is_softmax_minus_onehot(rng):
    z = rng.normal(size=(5, 4))
    y = rng.integers(0, 4, size=5)
    with gn.Graph():
        p = gn.Parameter(z, dtype="float64")
        loss = gn.softmax_cross_entropy(p, gn.constant(y))
    _, (g,) = gn.compile(loss, wrt=[p])({})
    sm = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(g, (sm - np.eye(4)[y]) / 5, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_label_inputs_and_sequences(dtype, rng):
    # logits (B, T, C) against class ids (B, T): the mean runs over every position
    z = rng.normal(size=(2, 3, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=(2, 3))
    with gn.Graph():
        zi = gn.Input((3, 4), name="z")
        yi = gn.Input((3,), dtype=dtype, name="y")
        loss = gn.softmax_cross_entropy(zi, yi)
    got = gn.compile(loss)({zi: z, yi: y.astype(dtype)})
    np.testing.assert_allclose(got, np_softmax_ce(z.astype(np.float64), y), rtol=1e-5)


def test_labels_get_no_gradient(data):
    with gn.Graph():
        z = gn.Parameter(data["pred"], dtype="float64")
        y = gn.Parameter(data["rows"], dtype="float64")
        loss = gn.softmax_cross_entropy(z, y)
    _, (gz, gy) = gn.compile(loss, wrt=[z, y])({})
    assert np.any(gz != 0)
    np.testing.assert_array_equal(gy, 0.0)


def test_label_out_of_range_is_reported():
    with gn.Graph():
        z = gn.Input((3,), name="z")
        y = gn.Input((), dtype="int64", name="y")
        loss = gn.softmax_cross_entropy(z, y)
    with pytest.raises(gn.GraphError, match="label 3 is out of range for 3 classes"):
        gn.compile(loss)({z: np.zeros((2, 3)), y: np.array([0, 3])})


def test_binary_cross_entropy_clips_probabilities():
    p = np.array([0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 1.0])
    v = _value(gn.binary_cross_entropy, p, y, dtype="float64")
    np.testing.assert_allclose(v, np_bce(p, y), rtol=1e-12)
    assert np.isfinite(v) and v > 5  # -log(1e-7) = 16.1 for each clipped miss


def test_sigmoid_cross_entropy_is_stable():
    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32)
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    # the last element is a confident miss: loss 1e4; the others are ~0 except log 2 at 0
    assert _value(gn.sigmoid_cross_entropy, z, y) == pytest.approx((np.log(2) + 1e4) / 5,
                                                                    rel=1e-6)


def test_mean_is_over_the_batch(rng):
    # repeating the batch leaves every loss unchanged
    z, t = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    ids = np.array([0, 2])
    for fn, a, b in ((gn.mse, z, t), (gn.mae, z, t), (gn.softmax_cross_entropy, z, ids)):
        one = _value(fn, a, b, dtype="float64")
        four = _value(fn, np.concatenate([a] * 4), np.concatenate([b] * 4), dtype="float64")
        assert one == pytest.approx(four, rel=1e-12)


def test_column_predictions_against_flat_targets(rng):
    # a Dense(1) output (N, 1) against targets (N,), as Keras allows
    p, t = rng.normal(size=(5, 1)), rng.normal(size=5)
    np.testing.assert_allclose(_value(gn.mse, p, t, dtype="float64"),
                               np.mean((p[:, 0] - t) ** 2), rtol=1e-12)
    check_gradients(gn.mse, p, t)


def test_shape_errors_at_build_time():
    with gn.Graph():
        p = gn.Input((3,), name="p")
        with pytest.raises(gn.GraphError, match=r"mse node 'mse'.*\(None, 3\) and targets "
                                                r"\(None, 4\) differ"):
            gn.mse(p, gn.Input((4,)))
        with pytest.raises(gn.GraphError, match=r"integer labels must have shape \(None,\)"):
            gn.softmax_cross_entropy(p, gn.Input((3,), dtype="int64"))
        with pytest.raises(gn.GraphError, match="probability labels must have the logits'"):
            gn.softmax_cross_entropy(p, gn.Input((4,)))
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.mse(p, gn.Input((3,), dtype="float64"))


def test_matches_torch(data):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    d = data
    T = torch.tensor
    cases = [
        (gn.mse, F.mse_loss, d["pred"], d["target"]),
        (gn.mae, F.l1_loss, d["pred"], d["target"]),
        (gn.huber, F.huber_loss, d["pred"], d["target"]),
        (gn.sigmoid_cross_entropy, F.binary_cross_entropy_with_logits, d["pred"], d["soft"]),
        (gn.binary_cross_entropy, F.binary_cross_entropy, d["probs"], d["bits"]),
        (gn.softmax_cross_entropy, F.cross_entropy, d["pred"], d["ids"]),
        (gn.softmax_cross_entropy, F.cross_entropy, d["pred"], d["rows"]),
    ]
    for fn, tfn, a, b in cases:
        ta = T(a, requires_grad=True)
        ref = tfn(ta, T(b))
        ref.backward()
        with gn.Graph():
            p = gn.Parameter(a, dtype="float64")
            lab = gn.Parameter(b, dtype="float64") if b.dtype.kind == "f" else gn.constant(b)
            loss = fn(p, lab)
        v, (g,) = gn.compile(loss, wrt=[p])({})
        np.testing.assert_allclose(v, ref.item(), rtol=1e-12, err_msg=fn.__name__)
        np.testing.assert_allclose(g, ta.grad.numpy(), rtol=1e-10, atol=1e-14,
                                   err_msg=fn.__name__)


def test_huber_by_keras_names():
    with gn.Graph():
        p, t = gn.Input((3,)), gn.Input((3,))
        assert gn.losses.get("huber")(t, p).op.delta == 1.0
        loss = gn.losses.Huber(delta=0.5)
        assert gn.losses.get(gn.huber).name == "huber"
        again = gn.losses.deserialize(gn.losses.serialize(loss))
        assert isinstance(again, gn.losses.Huber) and again(t, p).op.delta == 0.5
        with pytest.raises(gn.GraphError, match="delta must be > 0"):
            gn.huber(p, t, delta=0.0)
