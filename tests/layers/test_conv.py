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


# -- Conv1D, data_format, output_padding (issue 12) -------------------------------------------

def ref_conv1d(x, k, b, s, d, padding):
    """x (B, T, in), k (K, in, out): Keras' Conv1D written out with explicit zero padding."""
    K, n = k.shape[0], x.shape[1]
    ek = (K - 1) * d + 1
    if padding == "causal":
        pb, pa = ek - 1, 0
    elif padding == "valid":
        pb = pa = 0
    else:
        total = max((-(-n // s) - 1) * s + ek - n, 0)
        pb, pa = total // 2, total - total // 2
    xp = np.pad(x, ((0, 0), (pb, pa), (0, 0)))
    T = (n + pb + pa - ek) // s + 1
    out = np.stack([sum(xp[:, t * s + j * d] @ k[j] for j in range(K)) for t in range(T)], 1)
    return out + b


CONV1D = [(3, 1, 1, "valid"), (3, 2, 1, "same"), (4, 1, 1, "same"), (3, 1, 2, "causal"),
          (2, 2, 1, "causal"), (3, 1, 2, "valid")]


@pytest.mark.parametrize("K,s,d,padding", CONV1D)
def test_conv1d_against_numpy_and_gradients(rng, K, s, d, padding):
    from graphnet.layers import Conv1D
    from tests.layers.layer_check import check_layer_gradients
    x = rng.normal(size=(2, 9, 3))
    with gn.Graph():
        xi = gn.Input((9, 3))
        conv = Conv1D(4, K, strides=s, padding=padding, dilation_rate=d)
        y = conv(xi)
    k, b = conv.get_weights()
    assert k.shape == (K, 3, 4) and b.shape == (4,)
    b = rng.normal(size=4).astype(np.float32)
    conv.set_weights([k, b])
    got = _run(y, {xi: x.astype(np.float32)})
    want = ref_conv1d(x, k.astype(np.float64), b, s, d, padding)
    assert y.shape == (None, *want.shape[1:])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    check_layer_gradients(lambda: Conv1D(2, K, strides=s, padding=padding, dilation_rate=d,
                                         bias_initializer="ones", dtype="float64"),
                          rng.normal(size=(2, 7, 2)))


def test_conv1d_against_torch(rng):
    torch = pytest.importorskip("torch")
    from graphnet.layers import Conv1D
    x = rng.normal(size=(2, 10, 3)).astype(np.float32)
    for padding in ("valid", "causal"):
        with gn.Graph():
            xi = gn.Input((10, 3))
            conv = Conv1D(5, 3, dilation_rate=2, padding=padding)
            y = conv(xi)
        k, b = conv.get_weights()
        t = torch.nn.Conv1d(3, 5, 3, dilation=2)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(k.transpose(2, 1, 0)))
            t.bias.copy_(torch.from_numpy(b))
            tx = torch.from_numpy(x).permute(0, 2, 1)
            if padding == "causal":
                tx = torch.nn.functional.pad(tx, (4, 0))
            want = t(tx).permute(0, 2, 1).numpy()
        np.testing.assert_allclose(_run(y, {xi: x}), want, rtol=1e-5, atol=1e-5)


def test_channels_first_is_transposes_around_channels_last(rng):
    from graphnet.layers import Conv1D
    x = rng.normal(size=(2, 3, 6, 5)).astype(np.float32)   # NCHW
    s = rng.normal(size=(2, 3, 8)).astype(np.float32)      # NCT
    with gn.Graph():
        xi, si = gn.Input((3, 6, 5)), gn.Input((3, 8))
        conv = Conv2D(4, 3, padding="same", data_format="channels_first")
        up = Conv2DTranspose(2, 2, strides=2, data_format="channels_first")
        c1 = Conv1D(2, 3, data_format="channels_first")
        y, u, z = conv(xi), up(xi), c1(si)
    assert conv.get_weights()[0].shape == (3, 3, 3, 4)   # Keras' kernel layout either way
    assert (y.shape, u.shape, z.shape) == ((None, 4, 6, 5), (None, 2, 12, 10), (None, 2, 6))
    got_y, got_u, got_z = gn.compile([y, u, z])({xi: x, si: s})
    nhwc = x.transpose(0, 2, 3, 1).astype(np.float64)
    k, b = conv.get_weights()
    want = ref_conv2d(nhwc, k, b, (1, 1), (1, 1), "same").transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got_y, want, rtol=1e-5, atol=1e-5)
    kt, bt = up.get_weights()
    want = ref_conv2d_transpose(nhwc, kt, bt, (2, 2), (1, 1), "valid").transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got_u, want, rtol=1e-5, atol=1e-5)
    k1, b1 = c1.get_weights()
    want = ref_conv1d(s.transpose(0, 2, 1).astype(np.float64), k1, b1, 1, 1, "valid")
    np.testing.assert_allclose(got_z, want.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    with pytest.raises(gn.GraphError, match="data_format must be 'channels_last' or"):
        Conv2D(2, 3, data_format="NCHW")
    with gn.Graph(), pytest.raises(gn.GraphError, match=r"Conv2D expects channels-first "
                                                        r"\(batch, channels, height, width\)"):
        Conv2D(2, 3, data_format="channels_first")(gn.Input((4, 4)))


def ref_transpose_output_padding(x, k, b, s, padding, op):
    """Scatter each pixel through k (kh, kw, out, in); Keras' output length
    (n - 1) s + k - 2 pad + op, the crop starting at TensorFlow's pad_before."""
    kh, kw = k.shape[:2]
    sizes, before = [], []
    for n, kk, st, p in ((x.shape[1], kh, s[0], op[0]), (x.shape[2], kw, s[1], op[1])):
        pad = kk // 2 if padding == "same" else 0
        m = (n - 1) * st + kk - 2 * pad + p
        sizes.append(m)
        before.append(max((n - 1) * st + kk - m, 0) // 2 if padding == "same" else 0)
    canvas = np.zeros((x.shape[0], (x.shape[1] - 1) * s[0] + kh + sizes[0],
                       (x.shape[2] - 1) * s[1] + kw + sizes[1], k.shape[2]))
    for r in range(x.shape[1]):
        for c in range(x.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    canvas[:, r * s[0] + i, c * s[1] + j] += x[:, r, c] @ k[i, j].T
    return canvas[:, before[0]:before[0] + sizes[0], before[1]:before[1] + sizes[1]] + b


@pytest.mark.parametrize("ksize,strides,padding,op", [
    (3, 2, "valid", 1), (3, 2, "same", 0), (3, 2, "same", 1), ((2, 3), (2, 3), "valid", (0, 2)),
    (4, 2, "same", 1)])
def test_conv2d_transpose_output_padding(rng, ksize, strides, padding, op):
    from tests.layers.layer_check import check_layer_gradients
    x = rng.normal(size=(2, 3, 4, 2))
    with gn.Graph():
        xi = gn.Input((3, 4, 2))
        up = Conv2DTranspose(3, ksize, strides=strides, padding=padding, output_padding=op,
                             bias_initializer="ones")
        y = up(xi)
    k, b = up.get_weights()
    want = ref_transpose_output_padding(x, k.astype(np.float64), b, up.strides, padding,
                                        (op, op) if isinstance(op, int) else op)
    assert y.shape == (None, *want.shape[1:])
    np.testing.assert_allclose(_run(y, {xi: x.astype(np.float32)}), want, rtol=1e-5,
                               atol=1e-5)
    check_layer_gradients(lambda: Conv2DTranspose(2, ksize, strides=strides, padding=padding,
                                                  output_padding=op, dtype="float64"),
                          rng.normal(size=(1, 2, 3, 2)))
    with pytest.raises(gn.GraphError, match="output_padding must be"):
        Conv2DTranspose(2, 3, strides=2, output_padding=2)


def _keras_conv_case(keras, layer, klayer, x):
    """The Keras layer built on x's shape, given the graphnet layer's weights; both outputs."""
    with gn.Graph():
        xi = gn.Input(x.shape[1:])
        y = layer(xi)
    klayer.build(x.shape)
    klayer.set_weights(layer.get_weights())
    from tests.keras_ref import to_numpy
    return _run(y, {xi: x}), to_numpy(klayer(x))


def test_conv_layers_equal_keras(rng):
    from tests.keras_ref import keras_or_skip
    keras = keras_or_skip()
    from graphnet.layers import Conv1D
    L = keras.layers
    seq = rng.normal(size=(2, 9, 3)).astype(np.float32)
    img = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    cases = [
        (Conv1D(4, 3, padding="causal", dilation_rate=2),
         L.Conv1D(4, 3, padding="causal", dilation_rate=2), seq),
        (Conv1D(4, 3, strides=2, padding="same"), L.Conv1D(4, 3, strides=2, padding="same"),
         seq),
        (Conv1D(2, 4, padding="valid", activation="relu"),
         L.Conv1D(2, 4, padding="valid", activation="relu"), seq),
        (Conv1D(2, 3, data_format="channels_first"), L.Conv1D(2, 3, data_format="channels_first"),
         seq),
        (Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh"),
         L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh"), img),
        (Conv2D(3, 2, dilation_rate=2), L.Conv2D(3, 2, dilation_rate=2), img),
        (Conv2D(4, 3, strides=2, padding="same", data_format="channels_first"),
         L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first"), img),
        (Conv2DTranspose(3, 3, strides=2, padding="valid", output_padding=1),
         L.Conv2DTranspose(3, 3, strides=2, padding="valid", output_padding=1), img),
        (Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=0),
         L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=0), img),
        (Conv2DTranspose(2, (2, 3), strides=(2, 3), padding="same", output_padding=(1, 2)),
         L.Conv2DTranspose(2, (2, 3), strides=(2, 3), padding="same", output_padding=(1, 2)),
         img),
        (Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=1),
         L.Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=1), img),
        (Conv2DTranspose(2, 3, strides=2, padding="same", data_format="channels_first"),
         L.Conv2DTranspose(2, 3, strides=2, padding="same", data_format="channels_first"), img),
    ]
    for layer, klayer, x in cases:
        ours, theirs = _keras_conv_case(keras, layer, klayer, x)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{type(layer).__name__} {layer.get_config()}")


@pytest.mark.lecture2
def test_sequence_layers_save_load_round_trip(tmp_path, rng):
    from graphnet.layers import (
        AveragePooling1D,
        Conv1D,
        GlobalAveragePooling1D,
        GlobalMaxPooling1D,
        MaxPooling1D,
    )
    seq = gn.Sequential([Conv1D(4, 3, padding="causal", dilation_rate=2, seed=1),
                         MaxPooling1D(2), Conv1D(4, 2, strides=2, padding="same", seed=2),
                         AveragePooling1D(2, padding="same"), GlobalAveragePooling1D()],
                        input_shape=(12, 3), name="seq")
    out = gn.Sequential([Conv1D(3, 3, data_format="channels_first", seed=3),
                         GlobalMaxPooling1D(keepdims=True), Flatten()],
                        input_shape=(5, 9), name="cf")
    x = rng.normal(size=(4, 12, 3)).astype(np.float32)
    xc = rng.normal(size=(4, 5, 9)).astype(np.float32)
    for model, data in ((seq, x), (out, xc)):
        model.compile(optimizer="adam", loss="mse")
        model.fit(data, model.predict(data) * 0.5, epochs=1, batch_size=2, verbose=0)
        model.save(tmp_path / f"{model.name}.graphnet")
        loaded = gn.load_model(tmp_path / f"{model.name}.graphnet")
        assert [type(la).__name__ for la in loaded.layers] == \
            [type(la).__name__ for la in model.layers]
        np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_conv2d_transpose_output_padding_save_load(tmp_path, rng):
    model = gn.Sequential([Conv2DTranspose(2, 3, strides=2, output_padding=1, seed=4)],
                          input_shape=(4, 5, 3), name="up")
    x = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    assert model.predict(x).shape == (2, 10, 12, 2)  # Keras, "valid": (n - 1) * 2 + 3 + 1
    model.save(tmp_path / "up.graphnet")
    loaded = gn.load_model(tmp_path / "up.graphnet")
    assert loaded.layers[0].get_config()["output_padding"] in ([1, 1], (1, 1))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
