"""gn.losses and gn.metrics: names, objects, NumPy references, target checks."""

import warnings

import numpy as np
import pytest

import graphnet as gn
from graphnet import losses, metrics

pytestmark = pytest.mark.lecture1


def _loss_value(loss, y_true, pred=None, logits=None, head=None):
    """Evaluate ``loss(y_true, y_pred)``; the prediction is fed, or made by ``head(logits)``."""
    lo = losses.get(loss)
    src = pred if head is None else logits
    with gn.Graph():
        p = gn.Input(src.shape[1:])
        y_pred = p if head is None else head(p)
        t = gn.Input(np.shape(y_true)[1:], dtype=lo.target_dtype)
        out = lo(t, y_pred)
    assert out.shape == ()
    return float(gn.compile(out)({p: src, t: y_true}))


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def cls_data(rng):
    z = rng.normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 2, 3, 0])
    return z, y


def test_regression_losses_by_name(rng):
    p = rng.normal(size=(5, 3)).astype(np.float32)
    y = rng.normal(size=(5, 3)).astype(np.float32)
    for name in ("mse", "mean_squared_error"):
        assert _loss_value(name, y, p) == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)
    for name in ("mae", "mean_absolute_error"):
        assert _loss_value(name, y, p) == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)
    assert losses.get("mse").name == "mse"


def test_sparse_cross_entropies(cls_data):
    z, y = cls_data
    ref = -np.mean(np.log(_softmax(z.astype(np.float64))[np.arange(6), y]))
    assert _loss_value("sparse_softmax_cross_entropy", y, z) == pytest.approx(ref, rel=1e-5)
    # Keras' name takes probabilities: from a softmax node (read through to its logits) ...
    assert _loss_value("sparse_categorical_crossentropy", y, logits=z,
                       head=gn.softmax) == pytest.approx(ref, rel=1e-5)
    # ... or fed directly (computed through log p)
    assert _loss_value("sparse_categorical_crossentropy", y,
                       _softmax(z)) == pytest.approx(ref, rel=1e-4)
    obj = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _loss_value(obj, y, z) == pytest.approx(ref, rel=1e-5)


def test_a_linear_output_read_as_probabilities_warns():
    # logits into a probability loss give NaN: compile says what to pass instead
    m = gn.Sequential([gn.layers.Dense(3, seed=0)], input_shape=(4,))
    with pytest.warns(UserWarning, match="from_logits=True"):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for head in ({"activation": "softmax"}, {}):
        m = gn.Sequential([gn.layers.Dense(3, seed=0, **head)], input_shape=(4,))
        loss = "sparse_categorical_crossentropy" if head else "sparse_softmax_cross_entropy"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m.compile(optimizer="adam", loss=loss)


def test_categorical_crossentropy_one_hot(cls_data):
    z, y = cls_data
    onehot = np.eye(4, dtype=np.float32)[y]
    ref = -np.mean(np.log(_softmax(z.astype(np.float64))[np.arange(6), y]))
    assert _loss_value("categorical_crossentropy", onehot, _softmax(z)) == \
        pytest.approx(ref, rel=1e-4)
    assert _loss_value(losses.CategoricalCrossentropy(from_logits=True), onehot, z) == \
        pytest.approx(ref, rel=1e-5)


def test_binary_crossentropy_probs_and_logits(rng):
    z = rng.normal(size=(8, 1)).astype(np.float32)
    y = (rng.uniform(size=(8, 1)) > 0.5).astype(np.float32)
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    ref = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert _loss_value("binary_crossentropy", y, p.astype(np.float32)) == \
        pytest.approx(ref, rel=1e-4)
    assert _loss_value("binary_crossentropy", y, logits=z, head=gn.sigmoid) == \
        pytest.approx(ref, rel=1e-5)
    assert _loss_value(losses.BinaryCrossentropy(from_logits=True), y, z) == \
        pytest.approx(ref, rel=1e-5)
    assert _loss_value("sigmoid_cross_entropy", y, z) == pytest.approx(ref, rel=1e-5)


def test_get_resolves_ops_callables_and_rejects_unknown():
    assert isinstance(losses.get(gn.softmax_cross_entropy), losses.SparseCategoricalCrossentropy)
    assert losses.get(gn.softmax_cross_entropy).from_logits
    assert isinstance(losses.get(gn.mse), losses.MeanSquaredError)
    custom = losses.get(lambda t, p: gn.mean((p - t) * (p - t)))
    assert isinstance(custom, losses.LossFunctionWrapper)
    with pytest.raises(gn.GraphError, match="unknown loss"):
        losses.get("hinge_of_doom")


def test_target_checks():
    sparse = losses.get("sparse_categorical_crossentropy")
    y = sparse.check_targets(np.array([[0], [2]]), (None, 3))
    assert y.shape == (2,) and y.dtype == np.int64
    with pytest.raises(gn.FeedError, match=r"class ids -1 \.\. 2.*3 classes"):
        sparse.check_targets(np.array([-1, 2]), (None, 3))
    with pytest.raises(gn.FeedError, match="3 classes"):
        sparse.check_targets(np.array([0, 3]), (None, 3))
    with pytest.raises(gn.FeedError, match="integer class ids"):
        sparse.check_targets(np.array([0.5, 1.0]), (None, 3))
    with pytest.raises(gn.FeedError, match=r"\[0, 1\]"):
        losses.get("binary_crossentropy").check_targets(np.array([0.0, 2.0]), (None, 1))
    with pytest.raises(gn.FeedError, match="NaN"):
        losses.get("mse").check_targets(np.array([[np.nan]]), (None, 1))
    mse_y = losses.get("mse").check_targets(np.arange(3), (None, 1))
    assert mse_y.shape == (3, 1) and mse_y.dtype == np.float32


def test_accuracy_metrics():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    assert metrics.accuracy(labels, scores) == 0.75
    assert metrics.accuracy(np.eye(2)[labels], scores) == 0.75  # one-hot targets
    probs = np.array([[0.2], [0.7], [0.51], [0.4]])
    y = np.array([0, 1, 0, 0])
    assert metrics.binary_accuracy(y, probs) == 0.75
    assert metrics.BinaryAccuracy(threshold=0.6)(y, probs) == 1.0
    assert metrics.get("accuracy", from_logits=True).threshold == 0.0


def test_metric_state_accumulates_over_batches():
    m = metrics.get("accuracy")
    m.update_state(np.array([1, 0]), np.array([[0, 1], [0, 1]]))
    m.update_state(np.array([1]), np.array([[0, 1]]))
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    assert m.result() == 0.0
    mse = metrics.get("mse")
    mse.update_state(np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]]))
    assert mse.result() == pytest.approx(5.0)
    with pytest.raises(gn.GraphError, match="unknown metric"):
        metrics.get("f7_score")
