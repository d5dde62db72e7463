"""LayerNormalization and BatchNormalization layers: Keras 3's arguments and weights, NumPy,
PyTorch and Keras itself as references, moving statistics in fit, freezing, saving, and a
small CNN with batch norm that learns digits."""

import os

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    LayerNormalization,
    MaxPooling2D,
)
from tests.ops.test_normalization import np_batch_norm, np_layer_norm

pytestmark = pytest.mark.lecture3


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on the torch backend, or a skip where it is not installed."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    k = pytest.importorskip("keras")
    if k.backend.backend() != "torch":
        pytest.skip(f"keras runs on {k.backend.backend()}, these tests compare with torch's")
    return k


def _model(layer, shape):
    return gn.Sequential([layer], input_shape=shape)


def test_keras_arguments_weights_and_shapes():
    ln, bn = LayerNormalization(axis=[1, 2]), BatchNormalization()
    with gn.Graph():
        x = gn.Input((3, 4))
        y1, y2 = ln(x), bn(x)
        plain = LayerNormalization(center=False, scale=False)
        y3 = plain(x)
    assert (ln.axis, ln.epsilon, ln.center, ln.scale) == ([1, 2], 1e-3, True, True)
    assert (bn.axis, bn.momentum, bn.epsilon) == (-1, 0.99, 1e-3)
    assert [w.name for w in ln.weights] == ["layer_normalization/gamma",
                                            "layer_normalization/beta"]
    assert [w.shape for w in ln.weights] == [(3, 4), (3, 4)]
    assert ([w.name.split("/")[1] for w in bn.weights]
            == ["gamma", "beta", "moving_mean", "moving_variance"])
    assert [w.name for w in bn.trainable_weights] == ["batch_normalization/gamma",
                                                      "batch_normalization/beta"]
    assert len(bn.non_trainable_weights) == 2 and plain.weights == []
    np.testing.assert_array_equal(bn.get_weights()[3], np.ones(4))
    assert y1.shape == y2.shape == y3.shape == (None, 3, 4)


@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_layer_norm_forward_against_numpy(center, scale, rng):
    model = _model(LayerNormalization(axis=-1, center=center, scale=scale), (3, 5))
    ws = [rng.normal(size=5).astype(np.float32) for _ in model.weights]
    model.set_weights(ws)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    gamma = ws[0] if scale else np.ones(5)
    beta = ws[-1] if center else np.zeros(5)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np_layer_norm(x.astype(np.float64), gamma, beta, (2,)),
                               rtol=1e-5, atol=2e-5)


def _bn_model(shape, momentum=0.9, **kw):
    with gn.Graph():
        model = gn.Sequential([BatchNormalization(momentum=momentum, **kw)], input_shape=shape)
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
    return model


def test_batch_norm_fit_moves_the_statistics_and_predict_uses_them(rng):
    x = rng.normal(loc=2.0, scale=3.0, size=(8, 2, 3)).astype(np.float32)
    model = _bn_model((2, 3))
    model.fit(x, np.zeros_like(x), batch_size=8, epochs=3, verbose=0, shuffle=False)
    gamma, beta, mm, mv = model.get_weights()
    bm, bv = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    # three steps on one batch; each step's mean and variance are the same data's
    np.testing.assert_allclose(mm, bm * (1 - 0.9 ** 3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mv, 0.9 ** 3 + bv * (1 - 0.9 ** 3), rtol=1e-4)
    np.testing.assert_allclose(model.predict(x, verbose=0), np_batch_norm(x, gamma, beta, mm, mv),
                               rtol=1e-5, atol=2e-5)
    before = model.get_weights()
    model.evaluate(x, np.zeros_like(x), verbose=0)
    for a, b in zip(model.get_weights(), before):  # evaluation changes nothing
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("when", ["constructor", "later"])
def test_trainable_false_freezes_batch_norm_even_in_fit(when, rng):
    x = rng.normal(loc=1.0, size=(6, 3)).astype(np.float32)
    bn = BatchNormalization(trainable=when != "constructor")
    with gn.Graph():
        inp = gn.Input((3,))
        model = gn.Model(inp, Dense(3, seed=0)(bn(inp)))  # the Dense keeps fit busy
    ws = [rng.normal(size=3).astype(np.float32) for _ in range(3)]
    ws.append(rng.uniform(0.5, 2.0, 3).astype(np.float32))
    bn.set_weights(ws)
    if when == "later":
        bn.trainable = False
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    dense_before = model.layers[1].get_weights()[0]
    model.fit(x, np.zeros_like(x), batch_size=6, epochs=2, verbose=0)
    for a, b in zip(bn.get_weights(), ws):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.layers[1].get_weights()[0], dense_before)
    # in the training program too the node normalizes with the moving statistics
    h = gn.compile(bn.calls[0][1][0], training=True)({inp: x})
    np.testing.assert_allclose(h, np_batch_norm(x, *ws), rtol=1e-5, atol=2e-5)


def test_against_pytorch_layers(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    ln = _model(LayerNormalization(), (3, 3, 2))
    tln = torch.nn.LayerNorm(2, eps=1e-3)
    with torch.no_grad():
        tln.weight.copy_(torch.tensor(rng.normal(size=2)))
        tln.bias.copy_(torch.tensor(rng.normal(size=2)))
    ln.set_weights([tln.weight.detach().numpy(), tln.bias.detach().numpy()])
    np.testing.assert_allclose(ln.predict(x, verbose=0),
                               tln(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    # BatchNorm2d on NCHW; momentum 1 - 0.9; several training steps, then eval
    model = _bn_model((3, 3, 2))
    tbn = torch.nn.BatchNorm2d(2, eps=1e-3, momentum=0.1)
    tbn.train()
    batches = [rng.normal(loc=1.0, size=(4, 3, 3, 2)).astype(np.float32) for _ in range(3)]
    for xb in batches:
        model.fit(xb, np.zeros_like(xb), batch_size=4, epochs=1, verbose=0)
        tbn(torch.tensor(xb).permute(0, 3, 1, 2))
    gamma, beta, mm, mv = model.get_weights()
    np.testing.assert_allclose(mm, tbn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    n = 4 * 3 * 3  # torch's running_var holds the unbiased variances: n / (n - 1) times
    decay = 0.9 ** 3
    np.testing.assert_allclose(decay + (mv - decay) * n / (n - 1), tbn.running_var.numpy(),
                               rtol=1e-5)
    tbn.eval()
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(gamma))
        tbn.bias.copy_(torch.tensor(beta))
        tbn.running_var.copy_(torch.tensor(mv))
        want = tbn(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, [1, 2]])  # Keras 3.15's torch backend fails axis=1
def test_layer_norm_equals_keras(keras, axis, rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    kl = keras.layers.LayerNormalization(axis=axis, epsilon=1e-2)
    kl.build((2, 3, 4))
    kl.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in kl.get_weights()])
    model = _model(LayerNormalization(axis=axis, epsilon=1e-2), (3, 4))
    model.set_weights(kl.get_weights())
    want = keras.ops.convert_to_numpy(kl(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 3), (2, 2, 2, 3)])
def test_batch_norm_equals_keras_in_training_and_inference(keras, shape, rng):
    x = rng.normal(loc=0.5, size=shape).astype(np.float32)
    kl = keras.layers.BatchNormalization(momentum=0.8)
    kl.build(shape)
    ws = [rng.normal(size=shape[-1]).astype(np.float32) for _ in range(3)]
    kl.set_weights(ws + [rng.uniform(0.5, 2, shape[-1]).astype(np.float32)])
    model = _bn_model(shape[1:], momentum=0.8)
    model.set_weights(kl.get_weights())
    want = keras.ops.convert_to_numpy(kl(x, training=False))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    # the layer's node in a training program: the batch's statistics, and one update
    y_train = gn.compile(model.outputs[0], training=True)({model.inputs[0]: x})
    want = keras.ops.convert_to_numpy(kl(x, training=True))
    np.testing.assert_allclose(y_train, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(model.get_weights(), kl.get_weights()):  # moving statistics after a step
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


def test_save_and_load_keep_moving_statistics(tmp_path, rng):
    x = rng.normal(loc=1.0, size=(8, 4, 4, 2)).astype(np.float32)
    with gn.Graph():
        model = gn.Sequential([Conv2D(3, 3, padding="same", seed=1), BatchNormalization(),
                               LayerNormalization(axis=[1, 2, 3]), Flatten(), Dense(2, seed=2)],
                              input_shape=(4, 4, 2))
    model.compile(optimizer=gn.optimizers.Adam(1e-2), loss="mse")
    model.fit(x, rng.normal(size=(8, 2)).astype(np.float32), batch_size=4, epochs=2, verbose=0)
    assert not np.allclose(model.layers[1].get_weights()[3], 1.0)
    path = tmp_path / "norm.graphnet"
    model.save(path)
    again = gn.load_model(path)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    cfg = again.layers[2].get_config()
    assert cfg["axis"] == [1, 2, 3] and again.layers[1].get_config()["momentum"] == 0.99


def test_channels_first_axis_and_errors(rng):
    x = rng.normal(size=(3, 2, 4)).astype(np.float32)
    model = _model(BatchNormalization(axis=1), (2, 4))
    y = gn.compile(model.outputs[0], training=True)({model.inputs[0]: x})
    np.testing.assert_allclose(y, np_batch_norm(x, 1, 0, x.mean(axis=(0, 2), keepdims=True),
                                                x.var(axis=(0, 2), keepdims=True)),
                               rtol=1e-5, atol=2e-5)
    assert model.get_weights()[2].shape == (2,)
    with gn.Graph():
        inp = gn.Input((3, 4))
        with pytest.raises(gn.GraphError, match="batch axis"):
            LayerNormalization(axis=0)(inp)
        with pytest.raises(gn.GraphError, match="out of range"):
            BatchNormalization(axis=3)(inp)
        with pytest.raises(gn.GraphError, match="one channel axis"):
            BatchNormalization(axis=[1, 2])
        with pytest.raises(gn.GraphError, match="momentum"):
            BatchNormalization(momentum=2.0)
        with pytest.raises(gn.GraphError, match="epsilon"):
            LayerNormalization(epsilon=0)


def test_cnn_with_batch_norm_learns_digits():
    (xtr, ytr), _ = gn.datasets.digits()
    x, y = xtr[:512].reshape(-1, 8, 8, 1), ytr[:512]
    with gn.Graph():
        model = gn.Sequential([Conv2D(8, 3, padding="same", use_bias=False, seed=1),
                               BatchNormalization(), gn.layers.Activation("relu"),
                               MaxPooling2D(2), Flatten(), Dense(10, seed=2)],
                              input_shape=(8, 8, 1))
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=64, epochs=4, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.8
    _, acc = model.evaluate(x, y, verbose=0)  # inference mode, the moving statistics
    assert acc > 0.8
