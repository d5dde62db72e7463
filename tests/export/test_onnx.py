"""ONNX export: each lecture's model written by ``model.export(path, format="onnx")`` passes
``onnx.checker`` and gives graphnet's own predictions in onnxruntime (float32, 1e-5), on a
batch size other than the one the model ran on before export; plus the errors, dropout's
removal and the scoped node names."""

import os

import numpy as np
import pytest

import graphnet as gn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

L = gn.layers
TOL = dict(rtol=1e-5, atol=1e-5)


def run_onnx(path, feeds: dict) -> list:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def round_trip(model: gn.Model, make_x, tmp_path, batch: int = 5) -> onnx.ModelProto:
    """Run the model on a batch of 2, export it, then compare graphnet and onnxruntime on
    ``batch`` rows; returns the loaded ONNX model."""
    model.predict(make_x(2))
    path = tmp_path / f"{model.name}.onnx"
    assert model.export(path, format="onnx") == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    x = make_x(batch)
    want = model.predict(x)
    want = want if isinstance(want, list) else [want]
    got = run_onnx(path, {model.inputs[0].name: x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)
    inp = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert inp.dim_param == "batch"
    return proto


def floats(*shape):
    rng = np.random.default_rng(0)
    return lambda n: rng.normal(size=(n, *shape)).astype(np.float32)


@pytest.mark.lecture1
def test_mlp_round_trip(tmp_path):
    model = gn.Sequential([L.Dense(8, activation="relu", seed=1, name="hidden"),
                           L.Dropout(0.5, seed=2, name="drop"),
                           L.Dense(6, activation="tanh", seed=3),
                           L.Dense(3, activation="softmax", seed=4, name="out")],
                          input_shape=(4,), name="mlp")
    proto = round_trip(model, floats(4), tmp_path)
    kinds = {n.op_type for n in proto.graph.node}
    assert "Dropout" not in kinds and "Identity" not in kinds  # dropout removed
    names = {n.name for n in proto.graph.node}
    assert any(n.startswith("hidden/") for n in names)  # graphnet's scopes
    assert {i.name for i in proto.graph.initializer} >= {w.name for w in model.weights}


def test_every_activation_and_elementwise_op(tmp_path):
    with gn.Graph():
        x = gn.Input((3, 4), name="x")
        w = gn.Parameter(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5), name="w")
        h = x @ w
        parts = [gn.relu(h), gn.sigmoid(h), gn.tanh(h), gn.leaky_relu(h, 0.1), gn.elu(h, 0.7),
                 gn.gelu(h), gn.softmax(h, axis=1), gn.log_softmax(h),
                 gn.exp(h) / (1.0 + gn.sqrt(gn.abs(h))), gn.log(1.0 + h * h) ** 2.0 - h,
                 -h, gn.dense(x, w, activation="gelu"), gn.dense(x, w, activation="elu")]
        y = gn.concatenate(parts, axis=-1)
        outs = [y, gn.sum(y, axis=1), gn.mean(y, axis=(1, 2), keepdims=True),
                gn.max(y, axis=-1), gn.transpose(y, (0, 2, 1))[:, ::-2, 1],
                gn.reshape(y, (-1, 15, 13))[1:, -1]]
    xv = np.random.default_rng(1).normal(size=(4, 3, 4)).astype(np.float32)
    path = gn.onnx.export(outs, tmp_path / "ops.onnx", inputs=[x])
    want = gn.compile(outs)({x: xv})
    for g, w_ in zip(run_onnx(path, {"x": xv}), want):
        np.testing.assert_allclose(g, w_, **TOL)


def test_unsupported_op_raises_before_writing(tmp_path):
    with gn.Graph():
        x = gn.Input((4,), name="x")
        y = gn.Input((), dtype="int64", name="y")
        loss = gn.softmax_cross_entropy(x, y)
    path = tmp_path / "loss.onnx"
    with pytest.raises(gn.GraphError, match="softmax_cross_entropy.*no ONNX converter"):
        gn.onnx.export(loss, path, inputs=[x, y])
    assert os.listdir(tmp_path) == []  # nothing written, no temporary file either


def test_export_checks_its_inputs_and_format(tmp_path):
    with gn.Graph():
        x, z = gn.Input((4,), name="x"), gn.Input((4,), name="z")
        y = x + z
    with pytest.raises(gn.GraphError, match="not among the inputs"):
        gn.onnx.export(y, tmp_path / "a.onnx", inputs=[x])
    model = gn.Model([x, z], y)
    with pytest.raises(gn.GraphError, match="format='onnx'"):
        model.export(tmp_path / "a.pb", format="tf_saved_model")
    assert os.listdir(tmp_path) == []


def test_without_onnx_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with gn.Graph():
        x = gn.Input((3,), name="x")
        y = x * 2.0
    with pytest.raises(ImportError, match=r"graphnet\[onnx\]"):
        gn.onnx.export(y, tmp_path / "y.onnx")
    assert os.listdir(tmp_path) == []


def test_dropout_output_gets_its_own_name(tmp_path):
    with gn.Graph():
        x = gn.Input((3,), name="x")
        y = gn.dropout(x * 2.0, 0.5, seed=1)
    proto = onnx.load(gn.onnx.export(y, tmp_path / "d.onnx"))
    assert [o.name for o in proto.graph.output] == [y.name]
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "d.onnx", {"x": xv})[0], 2 * xv)


@pytest.mark.lecture3
def test_cnn_round_trip(tmp_path):
    model = gn.Sequential([
        L.Conv2D(4, 3, padding="same", activation="relu", seed=1, name="conv1"),
        L.MaxPool2D(2, name="pool1"),
        L.Conv2D(6, 3, strides=2, activation="relu", seed=2, name="conv2"),
        L.Flatten(name="flatten"),
        L.Dense(5, activation="softmax", seed=3, name="scores"),
    ], input_shape=(9, 9, 1), name="cnn")
    proto = round_trip(model, floats(9, 9, 1), tmp_path)
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.count("Conv") == 2 and "MaxPool" in kinds
    # NCHW from the input's Transpose to the one before Flatten: none between the convs
    assert kinds.count("Transpose") == 2
    assert "conv1/conv2d/Conv" in {n.name for n in proto.graph.node}


@pytest.mark.lecture3
def test_unet_round_trip(tmp_path):
    """demos/lecture3_segmentation's U-Net, small: Conv2D, MaxPool, Conv2DTranspose,
    Concatenate, UpSampling2D (both interpolations) and a 1x1 conv."""
    def conv(f, name, k=3, act="relu"):
        return L.Conv2D(f, k, padding="same", activation=act, name=name, seed=len(name))
    with gn.Graph("unet"):
        image = gn.Input((8, 8, 1), name="image")
        e1 = conv(2, "enc1")(image)
        e2 = conv(3, "enc2")(L.MaxPool2D(2, name="pool1")(e1))
        b = conv(4, "bottleneck")(L.AveragePooling2D(3, strides=2, padding="same",
                                                     name="pool2")(e2))
        u2 = L.Conv2DTranspose(3, 2, strides=2, activation="relu", name="up2", seed=7)(b)
        d2 = conv(3, "dec2")(L.Concatenate(name="skip2")([u2, e2]))
        u1 = L.Conv2DTranspose(2, 3, strides=2, padding="same", name="up1", seed=8)(d2)
        n1 = L.UpSampling2D(2, name="near")(d2)
        b1 = L.UpSampling2D(2, interpolation="bilinear", name="bilin")(d2)
        d1 = conv(2, "dec1")(L.Concatenate(name="skip1")([u1, e1, n1, b1]))
        scores = conv(4, "scores", k=1, act=None)(d1)
    model = gn.Model(image, scores, name="unet")
    proto = round_trip(model, floats(8, 8, 1), tmp_path, batch=3)
    kinds = {n.op_type for n in proto.graph.node}
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "Resize", "Concat"} <= kinds


@pytest.mark.parametrize("padding,k,s", [("valid", 3, 2), ("valid", 1, 2), ("same", 3, 2),
                                         ("same", 4, 3), ("valid", 2, 1)])
def test_conv_transpose_geometry(tmp_path, padding, k, s):
    model = gn.Sequential([L.Conv2DTranspose(2, k, strides=s, padding=padding, seed=1,
                                             activation="leaky_relu")],
                          input_shape=(3, 4, 2), name="tconv")
    round_trip(model, floats(3, 4, 2), tmp_path)


def test_global_pooling_and_dilated_conv(tmp_path):
    with gn.Graph():
        x = gn.Input((7, 7, 2), name="x")
        h = L.Conv2D(3, 3, dilation_rate=2, padding="same", activation="elu", seed=1)(x)
        y = gn.concatenate([L.GlobalAveragePooling2D()(h), L.GlobalMaxPooling2D()(h)], -1)
    round_trip(gn.Model(x, y, name="gp"), floats(7, 7, 2), tmp_path)


def ids(vocab, length):
    rng = np.random.default_rng(0)
    return lambda n: rng.integers(0, vocab, size=(n, length)).astype(np.int64)


@pytest.mark.lecture2
def test_music_lstm_round_trip(tmp_path):
    """demos/lecture2_music: Embedding -> LSTM(return_sequences) -> Dense logits."""
    model = gn.Sequential([L.Embedding(11, 4, seed=1, name="embedding"),
                           L.LSTM(5, return_sequences=True, seed=2, name="lstm"),
                           L.Dense(11, seed=3, name="logits")], input_shape=(6,), name="music")
    proto = round_trip(model, ids(11, 6), tmp_path, batch=3)
    kinds = {n.op_type for n in proto.graph.node}
    assert {"Gather", "LSTM"} <= kinds


@pytest.mark.lecture2
def test_recurrent_dropout_exports_as_the_plain_cell(tmp_path):
    """The fused node's recurrent mask is ones at inference: the export leaves it out."""
    model = gn.Sequential([L.LSTM(5, return_sequences=True, recurrent_dropout=0.4, seed=2),
                           L.GRU(4, return_sequences=True, recurrent_dropout=0.3, seed=4),
                           L.SimpleRNN(3, dropout=0.2, recurrent_dropout=0.3, seed=3)],
                          input_shape=(6, 2), name="rdrop")
    proto = round_trip(model, floats(6, 2), tmp_path)
    assert {n.op_type for n in proto.graph.node} >= {"LSTM", "GRU", "RNN"}


@pytest.mark.lecture2
def test_lstm_states_and_simple_rnn(tmp_path):
    """Initial states in, return_state out (the music sampler's shape), SimpleRNN with and
    without return_sequences, relu and linear activations."""
    with gn.Graph():
        x = gn.Input((4, 3), name="x")
        h0, c0 = gn.Input((5,), name="h0"), gn.Input((5,), name="c0")
        seq, h, c = L.LSTM(5, return_sequences=True, return_state=True, seed=1)(
            x, initial_state=[h0, c0])
        last = L.LSTM(5, activation="relu", seed=2)(seq)
        r1 = L.SimpleRNN(3, return_sequences=True, seed=3)(x, initial_state=[h0[:, :3]])
        r2 = L.SimpleRNN(2, activation=None, seed=4)(r1)
        r3 = L.SimpleRNN(2, activation="relu", use_bias=False, seed=5)(x)
    outs = [seq, h, c, last, r1, r2, r3]
    path = gn.onnx.export(outs, tmp_path / "rnn.onnx", inputs=[x, h0, c0])
    onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.normal(size=(3, 4, 3)), "h0": rng.normal(size=(3, 5)),
             "c0": rng.normal(size=(3, 5))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    want = gn.compile(outs)({x: feeds["x"], h0: feeds["h0"], c0: feeds["c0"]})
    for g, w in zip(run_onnx(path, feeds), want):
        np.testing.assert_allclose(g, w, **TOL)


def test_lstm_cell_sequence_is_refused(tmp_path):
    with gn.Graph():
        x = gn.Input((4, 3), name="x")
        k, r = gn.Parameter(shape=(3, 8), seed=1), gn.Parameter(shape=(2, 8), seed=2)
        y = gn.lstm(x, k, r, return_cell=True)
    with pytest.raises(gn.GraphError, match="last step only"):
        gn.onnx.export(y, tmp_path / "c.onnx")
    assert os.listdir(tmp_path) == []


@pytest.mark.lecture2
@pytest.mark.parametrize("causal", [False, True])
def test_attention_round_trip(tmp_path, causal):
    """demos/lecture2_attention: Embedding + PositionalEncoding + MultiHeadAttention."""
    with gn.Graph("reverse"):
        digits = gn.Input((6,), dtype="int64", name="digits")
        h = L.Embedding(10, 8, seed=1, name="embedding")(digits)
        h = L.PositionalEncoding(name="positional_encoding")(h)
        att = L.MultiHeadAttention(num_heads=2, key_dim=4, seed=2, name="self_attention")(
            h, use_causal_mask=causal)
        att = L.Attention(use_scale=True, name="dot")([att, h])
        logits = L.Dense(10, seed=5, name="logits")(att)
    model = gn.Model(digits, logits, name="reverser")
    proto = round_trip(model, ids(10, 6), tmp_path, batch=4)
    assert "positional_encoding/positional_encoding" in {i.name for i in proto.graph.initializer}
    assert "Softmax" in {n.op_type for n in proto.graph.node}


@pytest.mark.lecture3
def test_roi_align_and_nms(tmp_path):
    rng = np.random.default_rng(3)
    with gn.Graph():
        feats = gn.Input((2, 6, 7, 2), name="features", batch=False)
        boxes = gn.Input((4,), name="boxes")
        index = gn.Input((), dtype="int64", name="index")
        scores = gn.Input((), name="scores")
        crops = gn.roi_align(feats, boxes, index, output_size=(3, 2), sampling_ratio=2,
                             spatial_scale=0.5)
        keep = gn.non_max_suppression(boxes, scores, 4, iou_threshold=0.3)
        keep_t = gn.non_max_suppression(boxes, scores, 9, iou_threshold=0.6,
                                        score_threshold=0.2)
    outs = [crops, keep, keep_t]
    path = gn.onnx.export(outs, tmp_path / "det.onnx")
    corner = rng.uniform(0, 8, size=(7, 2))
    b = np.concatenate([corner, corner + rng.uniform(1, 6, size=(7, 2))], 1)
    feeds = {"features": rng.normal(size=(2, 6, 7, 2)).astype(np.float32),
             "boxes": b.astype(np.float32), "index": rng.integers(0, 2, 7).astype(np.int64),
             "scores": rng.permutation(7).astype(np.float32) / 7}
    want = gn.compile(outs)({t: feeds[t.name] for t in (feats, boxes, index, scores)})
    got = run_onnx(path, feeds)
    np.testing.assert_allclose(got[0], want[0], **TOL)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(g, w)


def test_every_op_has_a_converter_or_is_training_only():
    """A new op adds its converter (graphnet/export/converters.py, one @converts function)
    or, if it only makes sense in training, its name to TRAINING_ONLY."""
    from graphnet.export.converters import TRAINING_ONLY
    ours = {n for n, cls in gn.ops.OPS.items() if cls.__module__.startswith("graphnet.")}
    missing = sorted(ours - set(gn.onnx.CONVERTERS) - set(TRAINING_ONLY))  # not tests' ops
    assert missing == []


@pytest.mark.lecture2
def test_unrolled_lstm_exports(tmp_path):
    """unroll=True builds the cell from dense, matmul, slices and activations: it exports
    as those primitive ops and agrees with the fused node's ONNX LSTM."""
    def make(unroll):
        return gn.Sequential([L.LSTM(3, unroll=unroll, seed=1, name="lstm")],
                             input_shape=(4, 2), name=f"lstm_{unroll}")
    rolled, unrolled = make(False), make(True)
    x = floats(4, 2)(3)
    np.testing.assert_allclose(rolled.predict(x), unrolled.predict(x), **TOL)
    proto = round_trip(unrolled, floats(4, 2), tmp_path)
    assert "LSTM" not in {n.op_type for n in proto.graph.node}
    assert any(n.name.startswith("lstm/t3/") for n in proto.graph.node)


def _demo_model(name: str):
    """A lecture's own model builder from demos/, at a small size: (model, data maker)."""
    pytest.importorskip("matplotlib")  # demos.common draws with it
    from demos import lecture1_regularization as l1
    from demos import lecture2_attention as l2a
    from demos import lecture2_music as l2m
    from demos import lecture3_cnn as l3c
    from demos import lecture3_segmentation as l3s
    return {
        "mlp": lambda: (l1.make_model(8, 0.5, seed=0), floats(64)),
        "cnn": lambda: (l3c.cnn(seed=0), floats(16, 16, 1)),
        "music": lambda: (l2m.make_model(12, 5, 4, 6, seed=0), ids(12, 5)),
        "attention": lambda: (l2a.make_model(6, 8, True, seed=0)[0], ids(10, 6)),
        "unet": lambda: (l3s.unet(2, seed=0, size=8), floats(8, 8, 1)),
    }[name]()


@pytest.mark.parametrize("name", ["mlp", "cnn", "music", "attention", "unet"])
def test_the_demos_models_round_trip(tmp_path, name):
    model, make_x = _demo_model(name)
    round_trip(model, make_x, tmp_path, batch=3)


def test_one_hot_and_take(tmp_path):
    with gn.Graph():
        i = gn.Input((3,), dtype="int64", name="i")
        table = gn.Parameter(np.arange(12, dtype=np.float32).reshape(4, 3), name="table")
        outs = [gn.one_hot(i, 5), gn.take(table, i) * 2.0]
    iv = np.array([[0, 3, 1], [2, 2, 0]], np.int64)
    want = gn.compile(outs)({i: iv})
    for g, w in zip(run_onnx(gn.onnx.export(outs, tmp_path / "oh.onnx"), {"i": iv}), want):
        np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.lecture2
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gru_round_trip(tmp_path, reset_after, return_sequences, go_backwards):
    """ONNX's GRU: gates z, r, h as Keras', linear_before_reset = reset_after, the bias rows
    as W_b and R_b (one row: R_b zero); go_backwards' reversed input and output order."""
    model = gn.Sequential([L.GRU(4, reset_after=reset_after, return_sequences=return_sequences,
                                 go_backwards=go_backwards, seed=1, name="gru"),
                           L.Dense(3, seed=2, name="out")], input_shape=(5, 3), name="gru")
    # a non-zero bias, so that both rows (or the one row) are checked
    b = model.get_layer("gru").bias
    b.value = np.random.default_rng(4).normal(size=b.shape).astype(np.float32)
    proto = round_trip(model, floats(5, 3), tmp_path)
    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert len(grus) == 1
    lbr = {a.name: a.i for a in grus[0].attribute}["linear_before_reset"]
    assert lbr == int(reset_after)


@pytest.mark.lecture2
def test_gru_states_and_activations(tmp_path):
    """GRU with an initial state, return_state, no bias, and a relu / linear activation; a
    linear LSTM too (onnxruntime gives activation_alpha to the Affine activations only)."""
    with gn.Graph():
        x = gn.Input((4, 3), name="x")
        h0 = gn.Input((5,), name="h0")
        seq, h = L.GRU(5, return_sequences=True, return_state=True, seed=1)(
            x, initial_state=[h0])
        last = L.GRU(2, activation="relu", use_bias=False, reset_after=False, seed=2,
                     go_backwards=True)(seq, initial_state=[h0[:, :2]])
        lin = L.GRU(3, activation=None, seed=3)(x)
        lin_lstm = L.LSTM(2, activation=None, seed=4)(x)
    outs = [seq, h, last, lin, lin_lstm]
    path = gn.onnx.export(outs, tmp_path / "gru.onnx", inputs=[x, h0])
    onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.normal(size=(3, 4, 3)).astype(np.float32),
             "h0": rng.normal(size=(3, 5)).astype(np.float32)}
    want = gn.compile(outs)({x: feeds["x"], h0: feeds["h0"]})
    for g, w in zip(run_onnx(path, feeds), want):
        np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.lecture2
@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
def test_bidirectional_gru_round_trip(tmp_path, merge_mode):
    model = gn.Sequential([
        L.Bidirectional(L.GRU(3, return_sequences=True, seed=1), merge_mode=merge_mode,
                        name="bi"),
        L.Bidirectional(L.LSTM(2, seed=2), name="bi_lstm"),
        L.Dense(2, seed=3, name="out")], input_shape=(5, 3), name="bigru")
    proto = round_trip(model, floats(5, 3), tmp_path)
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.count("GRU") == 2 and kinds.count("LSTM") == 2


def _fit_a_little(model, make_x, n_out, steps=3):
    """A few training steps, so that the moving statistics are not their start values."""
    x = make_x(16) * 2.0 + 1.0
    y = np.random.default_rng(5).normal(size=(16, n_out)).astype(np.float32)
    model.compile(optimizer=gn.optimizers.SGD(0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=steps, verbose=0, shuffle=False)


@pytest.mark.lecture3
def test_cnn_with_batch_norm_round_trip(tmp_path):
    """BatchNormalization (inference form: the moving statistics, after a few training
    steps) on the image, between convs (it reads their NCHW values: no Transposes between
    them), on a sequence (rank 3) and after a Dense (rank 2)."""
    model = gn.Sequential([
        L.BatchNormalization(momentum=0.5, name="bn_in"),
        L.Conv2D(4, 3, padding="same", seed=1, name="conv1"),
        L.BatchNormalization(momentum=0.5, name="bn1"),
        L.Conv2D(3, 3, strides=2, activation="relu", seed=2, name="conv2"),
        L.BatchNormalization(momentum=0.5, name="bn2"),
        L.Reshape((9, 3), name="seq"),
        L.BatchNormalization(momentum=0.5, epsilon=0.01, name="bn_seq"),
        L.Flatten(name="flatten"),
        L.Dense(5, seed=3, name="hidden"),
        L.BatchNormalization(momentum=0.5, center=False, name="bn_dense"),
        L.Dense(2, seed=4, name="scores"),
    ], input_shape=(8, 8, 1), name="bn_cnn")
    _fit_a_little(model, floats(8, 8, 1), 2)
    bn_in, bn1 = model.get_layer("bn_in"), model.get_layer("bn1")
    assert np.all(bn_in.moving_mean.value > 0.5)  # trained: not the initial zeros and ones
    assert np.abs(bn1.moving_variance.value - 1.0).max() > 0.05
    proto = round_trip(model, floats(8, 8, 1), tmp_path, batch=3)
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.count("BatchNormalization") == 5
    # NCHW from the input's Transpose to bn2's: bn_in, conv1, bn1, conv2, bn2 share it
    first_bn = kinds.index("BatchNormalization")
    assert kinds[:first_bn].count("Transpose") == 1
    inits = {i.name for i in proto.graph.initializer}
    assert {"bn1/moving_mean", "bn1/moving_variance", "bn1/gamma", "bn1/beta"} <= inits


def test_layer_norm_round_trip(tmp_path):
    """LayerNormalization over the last axis, over two trailing axes, over a middle axis
    (transposed around the node), without scale/center."""
    with gn.Graph():
        x = gn.Input((3, 4), name="x")
        a = L.LayerNormalization(name="ln_last")(x)
        b = L.LayerNormalization(axis=[1, 2], epsilon=1e-5, name="ln_two")(x)
        c = L.LayerNormalization(axis=1, center=False, scale=False, name="ln_mid")(x)
        d = L.LayerNormalization(name="ln_dense")(L.Dense(6, seed=1)(x))
        y = gn.concatenate([a, b, c], axis=-1)
    for layer in ("ln_last", "ln_two"):  # not the initial ones and zeros
        for w in y.graph.nodes:
            if w.kind == "parameter" and w.name.startswith(layer):
                w.value = np.random.default_rng(7).normal(size=w.shape).astype(np.float32)
    model = gn.Model(x, [y, d], name="ln")
    proto = round_trip(model, floats(3, 4), tmp_path)
    assert [n.op_type for n in proto.graph.node].count("LayerNormalization") == 4


def test_time_distributed_conv1d_and_masked_attention(tmp_path):
    """Layers that compose existing ops: TimeDistributed(Dense) and (Conv2D on frames),
    Conv1D (its kernel a reshaped Parameter, folded at export) with causal padding, and
    MultiHeadAttention with an attention_mask input."""
    with gn.Graph():
        x = gn.Input((5, 4), name="x")
        mask = gn.Input((5, 5), name="mask")
        frames = gn.Input((3, 4, 4, 1), name="frames")
        td = L.TimeDistributed(L.Dense(3, activation="tanh", seed=1), name="td")(x)
        c1 = L.Conv1D(2, 3, padding="causal", dilation_rate=2, seed=2, name="c1")(x)
        c2 = L.Conv1D(3, 2, strides=2, activation="relu", seed=3, name="c2")(x)
        att = L.MultiHeadAttention(2, 3, seed=4, name="mha")(x, x, attention_mask=mask)
        tdc = L.TimeDistributed(L.Conv2D(2, 3, seed=5), name="tdc")(frames)
    outs = [td, c1, c2, att, tdc]
    path = gn.onnx.export(outs, tmp_path / "mix.onnx", inputs=[x, mask, frames])
    onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(6)
    feeds = {"x": rng.normal(size=(3, 5, 4)).astype(np.float32),
             "mask": (rng.uniform(size=(3, 5, 5)) < 0.7).astype(np.float32),
             "frames": rng.normal(size=(3, 3, 4, 4, 1)).astype(np.float32)}
    feeds["mask"][:, :, 0] = 1.0  # every query attends to something
    want = gn.compile(outs)({x: feeds["x"], mask: feeds["mask"], frames: feeds["frames"]})
    for g, w in zip(run_onnx(path, feeds), want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.lecture2
def test_bidirectional_states_and_unrolled_gru(tmp_path):
    """Bidirectional(GRU) with initial states in and return_state out (merge None), and an
    unrolled GRU of each reset_after form, which exports as primitive ops."""
    with gn.Graph():
        x = gn.Input((4, 3), name="x")
        hf, hb = gn.Input((2,), name="hf"), gn.Input((2,), name="hb")
        fwd, bwd, h_f, h_b = L.Bidirectional(
            L.GRU(2, return_sequences=True, return_state=True, seed=1), merge_mode=None,
            name="bi")(x, initial_state=[hf, hb])
        u1 = L.GRU(3, unroll=True, seed=2, name="unrolled_after")(x)
        u2 = L.GRU(3, unroll=True, reset_after=False, go_backwards=True, seed=3,
                   name="unrolled_before")(x)
    outs = [fwd, bwd, h_f, h_b, u1, u2]
    path = gn.onnx.export(outs, tmp_path / "bi.onnx", inputs=[x, hf, hb])
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node].count("GRU") == 2  # the unrolled: none
    rng = np.random.default_rng(8)
    feeds = {k: rng.normal(size=s).astype(np.float32)
             for k, s in (("x", (3, 4, 3)), ("hf", (3, 2)), ("hb", (3, 2)))}
    want = gn.compile(outs)({x: feeds["x"], hf: feeds["hf"], hb: feeds["hb"]})
    for g, w in zip(run_onnx(path, feeds), want):
        np.testing.assert_allclose(g, w, **TOL)
