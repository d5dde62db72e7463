"""Conv2D and Conv2DTranspose layers: Keras arguments and weight layouts, output shapes, the
PyTorch weight mapping, fused activations, errors, a small CNN that learns digits, saving."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Conv2D, Conv2DTranspose, Dense, Flatten
from tests.ops.test_conv import ref_conv2d, ref_conv2d_transpose

pytestmark = pytest.mark.lecture3


def _run(out, feeds):
    return gn.compile(out)(feeds)


def test_keras_arguments_layouts_and_shapes():
    with gn.Graph():
        x = gn.Input((8, 8, 3), name="x")
        c1 = Conv2D(4, 3)
        c2 = Conv2D(filters=5, kernel_size=(2, 3), strides=(2, 2), padding="same",
                    dilation_rate=1, use_bias=False)
        t = Conv2DTranspose(2, kernel_size=3, strides=2, padding="same")
        y1, y2 = c1(x), c2(x)
        up = t(y2)
        dil = Conv2D(2, 3, dilation_rate=2, name="dilated")(x)
    assert [w.name for w in c1.weights] == ["conv2d/kernel", "conv2d/bias"]
    assert c1.get_weights()[0].shape == (3, 3, 3, 4)     # Keras: (kh, kw, in, filters)
    assert c2.get_weights()[0].shape == (2, 3, 3, 5) and len(c2.weights) == 1
    assert t.get_weights()[0].shape == (3, 3, 2, 5)      # Keras: (kh, kw, filters, in)
    assert (y1.shape, y2.shape, up.shape) == ((None, 6, 6, 4), (None, 4, 4, 5),
                                              (None, 8, 8, 2))
    assert dil.shape == (None, 4, 4, 2)
    assert c1.count_params() == 3 * 3 * 3 * 4 + 4 and isinstance(t, Conv2D)
    # glorot_uniform over fan_in = 3*3*3, fan_out = 3*3*4, as Keras draws conv kernels
    assert np.abs(c1.get_weights()[0]).max() <= np.sqrt(6 / (27 + 36))


def test_forward_against_numpy_with_set_weights(rng):
    with gn.Graph():
        x = gn.Input((7, 6, 2))
        conv = Conv2D(3, (3, 2), strides=2, padding="same", activation="tanh")
        up = Conv2DTranspose(2, 3, strides=(2, 1), padding="valid")
        h = conv(x)
        y = up(h)
    k, b = rng.normal(size=(3, 2, 2, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    kt, bt = rng.normal(size=(3, 3, 2, 3)).astype(np.float32), np.zeros(2, np.float32)
    conv.set_weights([k, b])
    up.set_weights([kt, bt])
    xb = rng.normal(size=(2, 7, 6, 2)).astype(np.float32)
    hb, yb = gn.compile([h, y])({x: xb})
    want_h = ref_conv2d(xb.astype(np.float64), k, b, (2, 2), (1, 1), "same", np.tanh)
    np.testing.assert_allclose(hb, want_h, rtol=1e-5, atol=1e-5)
    want_y = ref_conv2d_transpose(hb.astype(np.float64), kt, bt, (2, 1), (1, 1), "valid")
    np.testing.assert_allclose(yb, want_y, rtol=1e-5, atol=1e-5)


def test_pytorch_weight_mapping(rng):
    torch = pytest.importorskip("torch")
    with gn.Graph():
        x = gn.Input((6, 6, 2))
        conv, up = Conv2D(3, 3, padding="same"), Conv2DTranspose(2, 2, strides=2)
        h = conv(x)
        y = up(h)
    xb = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    hb, yb = gn.compile([h, y])({x: xb})
    k, b = conv.get_weights()
    kt, bt = up.get_weights()
    # nn.Conv2d and nn.ConvTranspose2d weights are both kernel.transpose(3, 2, 0, 1)
    tconv = torch.nn.Conv2d(2, 3, 3, padding=1)
    tup = torch.nn.ConvTranspose2d(3, 2, 2, stride=2)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(k.transpose(3, 2, 0, 1)))
        tconv.bias.copy_(torch.tensor(b))
        tup.weight.copy_(torch.tensor(kt.transpose(3, 2, 0, 1)))
        tup.bias.copy_(torch.tensor(bt))
        th = tconv(torch.tensor(xb).permute(0, 3, 1, 2))
        ty = tup(th)
    np.testing.assert_allclose(hb, th.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(yb, ty.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)


def test_relu_is_fused_and_sigmoid_stays_separate():
    with gn.Graph():
        x = gn.Input((5, 5, 1))
        r = Conv2D(2, 3, activation="relu")(x)
        s = Conv2DTranspose(1, 3, activation="sigmoid")(x)
    assert r.op.name == "conv2d" and r.op.activation == "relu"
    assert s.op.name == "sigmoid" and s.inputs[0].op.name == "conv2d_transpose"


def test_errors_name_the_layout():
    with gn.Graph():
        flat = gn.Input((64,))
        with pytest.raises(gn.GraphError, match=r"Conv2D expects channels-last \(batch, height, "
                                                r"width, channels\) input; layer 'conv2d' got "
                                                r"\(None, 64\)"):
            Conv2D(4, 3)(flat)
        with pytest.raises(gn.GraphError, match="Conv2DTranspose expects channels-last"):
            Conv2DTranspose(4, 3)(gn.Input((8, 8)))
        small = gn.Input((2, 2, 1))
        with pytest.raises(gn.GraphError, match="larger than the 2x2 input"):
            Conv2D(4, 3)(small)
    with pytest.raises(gn.GraphError, match="positive number of filters"):
        Conv2D(0, 3)
    with pytest.raises(gn.GraphError, match="kernel_size must be a positive int"):
        Conv2D(4, (3, 3, 3))
    with pytest.raises(gn.GraphError, match="padding must be 'valid' or 'same'"):
        Conv2DTranspose(4, 3, padding="causal")
    with pytest.raises(gn.GraphError, match="unknown activation"):
        Conv2D(4, 3, activation="swishy")


def _digits_cnn():
    return gn.Sequential([Conv2D(4, 3, activation="relu", seed=1), Flatten(),
                          Dense(10, seed=2)], input_shape=(8, 8, 1), name="cnn")


def test_small_cnn_learns_digits():
    (xtr, ytr), _ = gn.datasets.digits()
    x = xtr[:512].reshape(-1, 8, 8, 1)
    y = ytr[:512]
    model = _digits_cnn()
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_softmax_cross_entropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=64, epochs=4, verbose=0, seed=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert hist.history["accuracy"][-1] > 0.8
    assert model.layers[0].output_shape == (None, 6, 6, 4)


def test_save_load_round_trip(tmp_path, rng):
    with gn.Graph():
        model = gn.Sequential([Conv2D(3, 3, strides=(2, 1), padding="same", activation="elu",
                                      kernel_regularizer=gn.regularizers.L2(1e-3), seed=1),
                               Conv2DTranspose(2, (2, 3), strides=(2, 1), padding="same",
                                               dilation_rate=1, use_bias=False, seed=2)],
                              input_shape=(6, 5, 2), name="ae")
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(4, 6, 5, 2)).astype(np.float32)
    model.fit(x, x[..., :2], epochs=1, batch_size=2, verbose=0)
    assert model.predict(x).shape == (4, 6, 5, 2)
    path = tmp_path / "ae.graphnet"
    model.save(path)
    loaded = gn.load_model(path)
    assert [type(la).__name__ for la in loaded.layers] == ["Conv2D", "Conv2DTranspose"]
    cfg = loaded.layers[1].get_config()
    assert (cfg["kernel_size"], cfg["strides"], cfg["padding"], cfg["use_bias"]) == \
        ([2, 3], [2, 1], "same", False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
