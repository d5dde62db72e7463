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
    with pytest.raises(gn.GraphError, match="channels-last only"):
        MaxPooling2D(data_format="channels_first")
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
