"""UpSampling2D: Keras arguments, shapes and values, errors, a down-up model, saving."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Dense, MaxPooling2D, UpSampling2D

pytestmark = pytest.mark.lecture3


def test_shapes_and_values(rng):
    with gn.Graph():
        x = gn.Input((3, 4, 2))
        up = UpSampling2D()
        wide = UpSampling2D(size=(1, 3), interpolation="bilinear")
        a, b = up(x), wide(x)
    assert (up.size, up.interpolation) == ((2, 2), "nearest") and up.get_weights() == []
    assert a.shape == (None, 6, 8, 2) and b.shape == (None, 3, 12, 2)
    xb = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    ya, yb = gn.compile([a, b])({x: xb})
    np.testing.assert_array_equal(ya, xb.repeat(2, axis=1).repeat(2, axis=2))
    # bilinear along columns only, at half-pixel centres (o + 1/2) / 3 - 1/2: output
    # columns 0 and 1 sit at or before input column 0 (the edge repeats), 2 at 1/3
    np.testing.assert_allclose(yb[:, :, 0], xb[:, :, 0])
    np.testing.assert_allclose(yb[:, :, 1], xb[:, :, 0])
    np.testing.assert_allclose(yb[:, :, 2], xb[:, :, 0] * 2 / 3 + xb[:, :, 1] / 3, rtol=1e-5,
                               atol=1e-6)


def test_errors():
    with gn.Graph():
        with pytest.raises(gn.GraphError, match=r"UpSampling2D layer 'up_sampling2d' expects "
                                                r"channels-last \(batch, height, width"):
            UpSampling2D()(gn.Input((4, 4)))
    with pytest.raises(gn.GraphError, match="interpolation must be one of"):
        UpSampling2D(interpolation="area")
    with pytest.raises(gn.GraphError, match="size must be a positive int"):
        UpSampling2D(size=(2, 2, 2))
    with pytest.raises(gn.GraphError, match="channels-last only"):
        UpSampling2D(data_format="channels_first")


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_down_up_model_trains_and_round_trips(tmp_path, rng, interpolation):
    # a tiny fully-convolutional-style segmenter: pool down, per-pixel Dense, sample back up
    x = rng.normal(size=(16, 4, 4, 1)).astype(np.float32)
    y = (x > 0).astype(np.float32)
    model = gn.Sequential([MaxPooling2D(), Dense(4, activation="tanh", seed=0),
                           UpSampling2D(interpolation=interpolation), Dense(1, seed=1)],
                          input_shape=(4, 4, 1))
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="mse")
    loss = model.fit(x, y, batch_size=8, epochs=8, verbose=0, seed=0).history["loss"]
    assert loss[-1] < loss[0]
    model.save(tmp_path / "u.graphnet")
    loaded = gn.load_model(tmp_path / "u.graphnet")
    assert loaded.layers[2].get_config()["interpolation"] == interpolation
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
