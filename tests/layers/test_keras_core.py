"""The Lecture 1 layers and the rest of the older Keras-named ones against Keras 3 itself
(torch backend), same weights and inputs: Dense, Activation, Dropout, Flatten, Reshape,
Concatenate, Add, Embedding, UpSampling2D, GlobalMax/AveragePooling2D, MaxPooling2D."""

import numpy as np
import pytest

import graphnet as gn
from graphnet import layers as G
from tests.keras_ref import keras_or_skip, to_numpy


def _ours(layer, *xs, weights=None):
    """graphnet's layer on Inputs shaped like ``xs`` (given ``weights`` once built), run on
    them in inference mode."""
    with gn.Graph():
        ins = [gn.Input(x.shape[1:], dtype=x.dtype.name) for x in xs]
        y = layer(ins[0] if len(ins) == 1 else ins)
    if weights is not None:
        layer.set_weights(weights)
    return gn.compile(y)(dict(zip(ins, xs)))


@pytest.mark.lecture1
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "elu", "gelu", None])
def test_dense_equals_keras(activation, rng):
    keras = keras_or_skip()
    x = rng.normal(size=(4, 7)).astype(np.float32)
    k = keras.layers.Dense(5, activation=activation)
    ref = to_numpy(k(x))
    ours = G.Dense(5, activation=activation)
    np.testing.assert_allclose(_ours(ours, x, weights=k.get_weights()), ref, rtol=1e-5,
                               atol=1e-6)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in k.get_weights()]


@pytest.mark.lecture1
def test_shape_and_merge_layers_equal_keras(rng):
    keras = keras_or_skip()
    K = keras.layers
    a = rng.normal(size=(3, 4, 6)).astype(np.float32)
    b = rng.normal(size=(3, 4, 6)).astype(np.float32)
    cases = [(G.Activation("softmax"), K.Activation("softmax"), (a,)),
             (G.Activation("leaky_relu"), K.Activation("leaky_relu"), (a,)),
             (G.Dropout(0.5), K.Dropout(0.5), (a,)),  # inference: the identity
             (G.Flatten(), K.Flatten(), (a,)),
             (G.Reshape((6, 4)), K.Reshape((6, 4)), (a,)),
             (G.Reshape((-1, 2)), K.Reshape((-1, 2)), (a,)),
             (G.Concatenate(), K.Concatenate(), (a, b)),
             (G.Concatenate(axis=1), K.Concatenate(axis=1), (a, b)),
             (G.Add(), K.Add(), (a, b))]
    for ours, theirs, xs in cases:
        ref = to_numpy(theirs(list(xs) if len(xs) > 1 else xs[0]))
        np.testing.assert_allclose(_ours(ours, *xs), ref, rtol=1e-5, atol=1e-6,
                                   err_msg=type(ours).__name__)


@pytest.mark.lecture2
def test_embedding_equals_keras(rng):
    keras = keras_or_skip()
    ids = rng.integers(0, 11, size=(3, 5)).astype(np.int64)
    k = keras.layers.Embedding(11, 4)
    ref = to_numpy(k(ids))
    np.testing.assert_allclose(_ours(G.Embedding(11, 4), ids, weights=k.get_weights()), ref,
                               rtol=1e-6)


@pytest.mark.lecture3
def test_image_layers_equal_keras(rng):
    keras = keras_or_skip()
    K = keras.layers
    img = rng.normal(size=(2, 6, 8, 3)).astype(np.float32)
    cases = [(G.UpSampling2D(2), K.UpSampling2D(2)),
             (G.UpSampling2D((2, 3), interpolation="bilinear"),
              K.UpSampling2D((2, 3), interpolation="bilinear")),
             (G.MaxPooling2D(), K.MaxPooling2D()),
             (G.MaxPooling2D(3, 2, padding="same"), K.MaxPooling2D(3, 2, padding="same")),
             (G.GlobalAveragePooling2D(), K.GlobalAveragePooling2D()),
             (G.GlobalMaxPooling2D(keepdims=True), K.GlobalMaxPooling2D(keepdims=True))]
    for ours, theirs in cases:
        np.testing.assert_allclose(_ours(ours, img), to_numpy(theirs(img)), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{type(ours).__name__} {ours.name}")
