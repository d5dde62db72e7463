"""Pooling layers: Keras names and aliases, shapes, global pooling, errors, training, saving."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import (
    AveragePooling2D,
    AvgPool2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)

pytestmark = pytest.mark.lecture3


def _run(out, feeds):
    return gn.compile(out)(feeds)


def test_keras_arguments_aliases_and_shapes(rng):
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    with gn.Graph():
        x = gn.Input((7, 6, 3), name="x")
        mp = MaxPooling2D()
        ap = AveragePooling2D(pool_size=3, strides=(2, 1), padding="same")
        a, b = mp(x), ap(x)
    assert (mp.pool_size, mp.strides, mp.padding) == ((2, 2), (2, 2), "valid")
    assert a.shape == (None, 3, 3, 3) and b.shape == (None, 4, 6, 3)
    assert mp.output_shape == (None, 3, 3, 3) and mp.name == "max_pooling2d"
    assert mp.get_weights() == [] and mp.count_params() == 0
    mp.set_weights([])
    xb = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    # whole 2x2 windows, the last odd row and column dropped ("valid")
    want = xb[:, :6, :6].reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_allclose(_run(a, {x: xb}), want)
    with gn.Graph():
        x2 = gn.Input((7, 6, 3))
        y2 = gn.avg_pool2d(x2, 3, (2, 1), "same")
    np.testing.assert_allclose(_run(b, {x: xb}), _run(y2, {x2: xb}), rtol=1e-6)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(rng, keepdims):
    with gn.Graph():
        x = gn.Input((3, 4, 5))
        avg = GlobalAveragePooling2D(keepdims=keepdims)(x)
        mx = GlobalMaxPooling2D(keepdims=keepdims)(x)
    assert avg.shape == ((None, 1, 1, 5) if keepdims else (None, 5)) == mx.shape
    xb = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    a, m = gn.compile([avg, mx])({x: xb})
    np.testing.assert_allclose(a, xb.mean(axis=(1, 2), keepdims=keepdims), rtol=1e-5)
    np.testing.assert_array_equal(m, xb.max(axis=(1, 2), keepdims=keepdims))


def test_errors_speak_keras():
    with gn.Graph():
        x3 = gn.Input((8, 8), name="x")
        for layer in [MaxPooling2D(), AveragePooling2D(), GlobalAveragePooling2D(),
                      GlobalMaxPooling2D()]:
            with pytest.raises(gn.GraphError, match=r"expects channels-last \(batch, height, "
                                                    r"width, channels\) inputs; got "
                                                    r"\(None, 8, 8\)"):
                layer(x3)
    with pytest.raises(gn.GraphError, match="data_format must be 'channels_last' or "
                                            "'channels_first', got 'nhwc'"):
        MaxPooling2D(data_format="nhwc")
    with pytest.raises(gn.GraphError, match="padding must be 'valid' or 'same'"):
        AveragePooling2D(padding="causal")
    with pytest.raises(gn.GraphError, match="pool_size must be a positive int"):
        MaxPooling2D(pool_size=(2, 0))


def test_pooling_classifier_trains_on_digits():
    pytest.importorskip("sklearn")
    (xtr, ytr), _ = gn.datasets.digits()
    xtr = xtr[:512].reshape(-1, 8, 8, 1)
    model = gn.Sequential([MaxPooling2D(), Flatten(), Dense(10, seed=0)], input_shape=(8, 8, 1))
    model.compile(optimizer=gn.optimizers.Adam(0.1), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"])
    hist = model.fit(xtr, ytr[:512], batch_size=64, epochs=5, verbose=0, seed=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.6 * loss[0]  # measured: 2.19 -> 0.93, accuracy 0.23 -> 0.73
    assert hist.history["accuracy"][-1] > 0.6


def test_save_load_round_trip(tmp_path, rng):
    model = gn.Sequential([AveragePooling2D(3, strides=2, padding="same"),
                           Dense(4, activation="relu", seed=1), MaxPool2D((2, 1)),
                           GlobalMaxPooling2D(keepdims=True), Flatten(), Dense(3, seed=2)],
                          input_shape=(6, 5, 2), name="pools")
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="sparse_softmax_cross_entropy")
    x = rng.normal(size=(4, 6, 5, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 2, 1]), epochs=1, verbose=0)
    model.save(tmp_path / "p.graphnet")
    loaded = gn.load_model(tmp_path / "p.graphnet")
    assert [type(la).__name__ for la in loaded.layers] == [
        "AveragePooling2D", "Dense", "MaxPooling2D", "GlobalMaxPooling2D", "Flatten", "Dense"]
    assert loaded.layers[0].get_config()["strides"] == [2, 2]
    assert loaded.layers[3].keepdims
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- 1D pooling and channels-first (issue 12) --------------------------------------------------

def ref_pool1d(x, k, s, padding, reduce):
    """x (B, T, C): windows of k steps moved by s; "same" windows cover only real steps."""
    n = x.shape[1]
    if padding == "valid":
        T, pb = (n - k) // s + 1, 0
    else:
        T = -(-n // s)
        pb = max((T - 1) * s + k - n, 0) // 2
    return np.stack([reduce(x[:, max(t * s - pb, 0):min(t * s - pb + k, n)], axis=1)
                     for t in range(T)], 1)


@pytest.mark.parametrize("k,s,padding", [(2, None, "valid"), (3, 2, "same"), (3, 1, "valid"),
                                         (2, 3, "same")])
def test_pooling_1d_against_numpy_and_gradients(rng, k, s, padding):
    from graphnet.layers import (
        AveragePooling1D,
        GlobalAveragePooling1D,
        GlobalMaxPooling1D,
        MaxPooling1D,
    )
    from tests.layers.layer_check import check_layer_gradients
    x = rng.normal(size=(2, 7, 3))
    with gn.Graph():
        xi = gn.Input((7, 3))
        mp = MaxPooling1D(k, strides=s, padding=padding)
        ys = [mp(xi), AveragePooling1D(k, s, padding)(xi), GlobalAveragePooling1D()(xi),
              GlobalMaxPooling1D(keepdims=True)(xi)]
    got = gn.compile(ys)({xi: x.astype(np.float32)})
    st = k if s is None else s
    wants = [ref_pool1d(x, k, st, padding, np.max), ref_pool1d(x, k, st, padding, np.mean),
             x.mean(1), x.max(1, keepdims=True)]
    assert mp.pool_size == k and mp.strides == st
    for y, g, w in zip(ys, got, wants):
        assert y.shape == (None, *w.shape[1:])
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    for layer in (lambda: AveragePooling1D(k, s, padding, dtype="float64"),
                  lambda: MaxPooling1D(k, s, padding, dtype="float64"),
                  lambda: GlobalAveragePooling1D(dtype="float64")):
        check_layer_gradients(layer, x)


def test_channels_first_pooling(rng):
    from graphnet.layers import GlobalMaxPooling1D, MaxPooling1D
    x = rng.normal(size=(2, 3, 6, 4)).astype(np.float32)
    with gn.Graph():
        xi, si = gn.Input((3, 6, 4)), gn.Input((3, 6))
        ys = [MaxPooling2D(data_format="channels_first")(xi),
              GlobalAveragePooling2D(data_format="channels_first")(xi),
              MaxPooling1D(3, data_format="channels_first")(si),
              GlobalMaxPooling1D(data_format="channels_first")(si)]
    got = gn.compile(ys)({xi: x, si: x[..., 0]})
    np.testing.assert_allclose(got[0], x.reshape(2, 3, 3, 2, 2, 2).max(axis=(3, 5)))
    np.testing.assert_allclose(got[1], x.mean(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(got[2], x[..., 0].reshape(2, 3, 2, 3).max(axis=3))
    np.testing.assert_allclose(got[3], x[..., 0].max(axis=2))


def test_pooling_equals_keras(rng):
    from tests.keras_ref import keras_or_skip, to_numpy
    keras = keras_or_skip()
    from graphnet import layers as G
    K = keras.layers
    seq = rng.normal(size=(2, 9, 3)).astype(np.float32)
    img = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    cases = [(G.MaxPooling1D(3, 2, "same"), K.MaxPooling1D(3, 2, "same"), seq),
             (G.AveragePooling1D(3, 2, "same"), K.AveragePooling1D(3, 2, "same"), seq),
             (G.AveragePooling1D(), K.AveragePooling1D(2), seq),
             (G.MaxPooling1D(2, data_format="channels_first"),
              K.MaxPooling1D(2, data_format="channels_first"), seq),
             (G.GlobalAveragePooling1D(), K.GlobalAveragePooling1D(), seq),
             (G.GlobalMaxPooling1D(keepdims=True), K.GlobalMaxPooling1D(keepdims=True), seq),
             # symmetric "same" pads only: where TensorFlow pads one more cell after, Keras'
             # torch backend pads explicit zeros and counts them in the mean (graphnet and
             # Keras' TensorFlow and JAX backends divide by the real cells)
             (G.AveragePooling2D(3, 1, "same"), K.AveragePooling2D(3, 1, "same"), img),
             (G.MaxPooling2D(2, data_format="channels_first"),
              K.MaxPooling2D(2, data_format="channels_first"), img),
             (G.GlobalAveragePooling2D(data_format="channels_first"),
              K.GlobalAveragePooling2D(data_format="channels_first"), img)]
    for ours, theirs, x in cases:
        with gn.Graph():
            xi = gn.Input(x.shape[1:])
            y = ours(xi)
        np.testing.assert_allclose(_run(y, {xi: x}), to_numpy(theirs(x)), rtol=1e-5,
                                   atol=1e-6, err_msg=type(ours).__name__)
