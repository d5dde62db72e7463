"""Core layers: naming and scopes, Keras weight layouts, PyTorch mapping, shapes, configs."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Activation, Concatenate, Dense, Dropout, Flatten, Reshape

pytestmark = pytest.mark.lecture1


def _run(out, feeds, training=False):
    return gn.compile(out, training=training)(feeds)


def test_dense_names_scopes_and_layer_marks():
    with gn.Graph() as g:
        x = gn.Input((4,), name="x")
        d1, d2 = Dense(3), Dense(2)
        h = d1(x)
        y = d2(h)
    assert (d1.name, d2.name) == ("dense", "dense_1")
    assert [w.name for w in d1.weights] == ["dense/kernel", "dense/bias"]
    assert d2.weight_names == ["dense_1/kernel", "dense_1/bias"]
    made = [t for t in g.nodes if t.layer is d2]
    assert y in made and d2.kernel in made and all(t.name.startswith("dense_1/") for t in made)
    assert x.layer is None
    assert d1.input_shape == (None, 4) and d1.output_shape == (None, 3)
    assert y.shape == (None, 2)


def test_given_name_must_be_unique_in_graph():
    with gn.Graph():
        x = gn.Input((4,))
        Dense(3, name="hidden")(x)
        with pytest.raises(gn.GraphError, match="already used"):
            Dense(3, name="hidden")(x)


def test_layer_built_in_one_graph_refuses_another():
    d = Dense(2)
    with gn.Graph():
        d(gn.Input((3,)))
    with gn.Graph(), pytest.raises(gn.GraphError, match="built in graph"):
        d(gn.Input((3,)))


def test_dense_keras_layout_and_forward_against_numpy(rng):
    with gn.Graph():
        x = gn.Input((5,))
        d = Dense(3, activation="tanh")
        y = d(x)
    kernel, bias = d.get_weights()
    assert kernel.shape == (5, 3) and bias.shape == (3,)  # Keras: kernel (in, out)
    np.testing.assert_array_equal(bias, 0)
    k = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    d.set_weights([k, b])
    xb = rng.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(y, {x: xb}), np.tanh(xb @ k + b), rtol=1e-5, atol=1e-6)
    assert d.count_params() == 5 * 3 + 3


def test_dense_sigmoid_and_softmax_stay_separate_nodes():
    with gn.Graph():
        x = gn.Input((5,))
        p = Dense(3, activation="softmax")(x)
        s = Dense(1, activation="sigmoid")(x)
        r = Dense(2, activation="relu")(x)
    assert p.op.name == "softmax" and p.inputs[0].op.name == "dense"
    assert s.op.name == "sigmoid"
    assert r.op.name == "dense" and r.op.activation == "relu"  # fused


def test_set_weights_checks_before_changing_anything():
    with gn.Graph():
        d = Dense(2)
        d(gn.Input((3,)))
    before = d.get_weights()
    with pytest.raises(gn.GraphError, match="bias"):
        d.set_weights([np.ones((3, 2)), np.ones(5)])
    with pytest.raises(gn.GraphError, match="2 weights"):
        d.set_weights([np.ones((3, 2))])
    for a, b in zip(before, d.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dense_matches_torch_linear(rng):
    torch = pytest.importorskip("torch")
    with gn.Graph():
        x = gn.Input((6,))
        d = Dense(4, activation="relu", seed=3)
        y = d(x)
    lin = torch.nn.Linear(6, 4)
    kernel, bias = d.get_weights()
    with torch.no_grad():  # the documented mapping: weight = kernel.T, bias = bias
        lin.weight.copy_(torch.from_numpy(kernel.T))
        lin.bias.copy_(torch.from_numpy(bias + 0.1))
    d.set_weights([lin.weight.detach().numpy().T, lin.bias.detach().numpy()])
    xb = rng.normal(size=(8, 6)).astype(np.float32)
    ref = torch.relu(lin(torch.from_numpy(xb))).detach().numpy()
    np.testing.assert_allclose(_run(y, {x: xb}), ref, rtol=1e-5, atol=1e-6)


def test_activation_flatten_reshape(rng):
    with gn.Graph():
        x = gn.Input((2, 3, 4))
        f = Flatten()(x)
        r = Reshape((4, -1))(f)
        a = Activation("relu")(r)
    assert f.shape == (None, 24) and r.shape == (None, 4, 6) and a.shape == (None, 4, 6)
    xb = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(_run(a, {x: xb}), np.maximum(xb.reshape(3, 4, 6), 0))
    with gn.Graph(), pytest.raises(gn.GraphError, match="cannot reshape"):
        Reshape((5, 5))(gn.Input((24,)))
    with pytest.raises(gn.GraphError, match="unknown activation"):
        Activation("swishy")


def test_dropout_only_in_training(rng):
    with gn.Graph():
        x = gn.Input((200,))
        y = Dropout(0.5, seed=1)(x)
    xb = np.ones((4, 200), np.float32)
    np.testing.assert_array_equal(_run(y, {x: xb}), xb)
    dropped = _run(y, {x: xb}, training=True)
    assert set(np.unique(dropped)) <= {0.0, 2.0}
    assert 0.3 < (dropped == 0).mean() < 0.7
    with pytest.raises(gn.GraphError, match="rate"):
        Dropout(1.0)


def test_concatenate_and_add(rng):
    with gn.Graph():
        a, b = gn.Input((2,)), gn.Input((3,))
        c = Concatenate()([a, b])
        s = gn.layers.Add()([a, a])
    assert c.shape == (None, 5)
    ab = rng.normal(size=(3, 2)).astype(np.float32)
    bb = rng.normal(size=(3, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(c, {a: ab, b: bb}), np.concatenate([ab, bb], 1))
    np.testing.assert_allclose(_run(s, {a: ab}), 2 * ab)


def test_l2_regularizer_adds_penalty_tensor(rng):
    with gn.Graph():
        d = Dense(3, kernel_regularizer=gn.regularizers.L2(0.1))
        d(gn.Input((2,)))
    assert len(d.losses) == 1
    k = d.get_weights()[0]
    np.testing.assert_allclose(_run(d.losses[0], {}), 0.1 * np.sum(k.astype(np.float64) ** 2),
                               rtol=1e-5)
    assert isinstance(gn.regularizers.get("l2"), gn.regularizers.L2)


def test_config_round_trip_through_registry():
    d = Dense(7, activation="relu", use_bias=False, kernel_regularizer="l1", seed=5)
    spec = gn.layers.serialize(d)
    assert spec["class_name"] == "Dense"
    d2 = gn.layers.deserialize(spec)
    assert (d2.units, d2.activation, d2.use_bias, d2.seed) == (7, "relu", False, 5)
    assert isinstance(d2.kernel_regularizer, gn.regularizers.L1)
    assert gn.layers.LAYERS["Reshape"] is Reshape
    with pytest.raises(gn.GraphError, match="unknown layer class"):
        gn.layers.deserialize({"class_name": "Nope", "config": {}})


def test_count_params_before_build_is_an_error():
    with pytest.raises(gn.GraphError, match="not built"):
        Dense(3).count_params()
