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


def test_dropout_output_gets_its_own_name(tmp_path):
    with gn.Graph():
        x = gn.Input((3,), name="x")
        y = gn.dropout(x * 2.0, 0.5, seed=1)
    proto = onnx.load(gn.onnx.export(y, tmp_path / "d.onnx"))
    assert [o.name for o in proto.graph.output] == [y.name]
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "d.onnx", {"x": xv})[0], 2 * xv)
