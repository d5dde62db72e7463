"""TimeDistributed: one layer on every time step (time folded into the batch), against
NumPy, finite differences, Keras 3 and a save/load round trip (issue 12)."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Conv2D, Dense, TimeDistributed
from tests.layers.layer_check import check_layer_gradients

pytestmark = pytest.mark.lecture2


def test_dense_on_every_step_against_numpy(rng):
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    with gn.Graph():
        xi = gn.Input((5, 4))
        td = TimeDistributed(Dense(2, activation="tanh"))
        y = td(xi)
    k, b = td.get_weights()
    assert (k.shape, b.shape, y.shape) == ((4, 2), (2,), (None, 5, 2))
    assert td.weight_names == ["time_distributed/kernel", "time_distributed/bias"]
    np.testing.assert_allclose(gn.compile(y)({xi: x}), np.tanh(x @ k + b), rtol=1e-5,
                               atol=1e-6)
    check_layer_gradients(lambda: TimeDistributed(Dense(3, dtype="float64",
                                                        bias_initializer="ones"),
                                                  dtype="float64"),
                          rng.normal(size=(2, 3, 4)))


def test_conv_on_frames_and_errors(rng):
    x = rng.normal(size=(2, 3, 5, 5, 1)).astype(np.float32)
    with gn.Graph():
        xi = gn.Input((3, 5, 5, 1))
        td = TimeDistributed(Conv2D(2, 3))
        y = td(xi)
    k, b = td.get_weights()
    got = gn.compile(y)({xi: x})
    assert y.shape == (None, 3, 3, 3, 2)
    for t in range(3):
        with gn.Graph():
            fi = gn.Input((5, 5, 1))
            c = Conv2D(2, 3)
            f = c(fi)
        c.set_weights([k, b])
        np.testing.assert_allclose(got[:, t], gn.compile(f)({fi: x[:, t]}), rtol=1e-5,
                                   atol=1e-6)
    with pytest.raises(gn.GraphError, match="wraps a layer"):
        TimeDistributed("dense")
    with gn.Graph(), pytest.raises(gn.GraphError, match=r"expects \(batch, time, \.\.\.\)"):
        TimeDistributed(Dense(2))(gn.Input((4,)))


def test_model_fits_and_round_trips(rng, tmp_path):
    x = rng.normal(size=(32, 6, 3)).astype(np.float32)
    y = (x.sum(-1) > 0).astype(np.float32)[..., None]
    m = gn.Sequential([TimeDistributed(Dense(8, activation="relu")),
                       TimeDistributed(Dense(1))], input_shape=(6, 3))
    m.compile(optimizer=gn.optimizers.Adam(1e-2), loss="mse")
    first = m.evaluate(x, y)
    m.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert m.evaluate(x, y) < first
    assert [la.name for la in m.layers] == ["time_distributed", "time_distributed_1"]
    assert len(m.weights) == 4
    m.save(tmp_path / "td.graphnet")
    back = gn.load_model(tmp_path / "td.graphnet")
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_time_distributed_equals_keras(rng):
    from tests.keras_ref import keras_or_skip, to_numpy
    keras = keras_or_skip()
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    with gn.Graph():
        xi = gn.Input((4, 5))
        td = TimeDistributed(Dense(3, activation="relu"))
        y = td(xi)
    ktd = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="relu"))
    ktd(x)
    ktd.set_weights(td.get_weights())
    np.testing.assert_allclose(gn.compile(y)({xi: x}), to_numpy(ktd(x)), rtol=1e-5, atol=1e-6)
