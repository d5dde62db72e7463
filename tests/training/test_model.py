"""Sequential and functional models: training, evaluation, prediction, summary, bad input."""

import os
import re

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Concatenate, Dense, Dropout

pytestmark = pytest.mark.lecture1


@pytest.fixture(scope="module")
def digits():
    return gn.datasets.digits()


def _mlp(hidden=32, seed=1, **kw):
    return gn.Sequential([Dense(hidden, activation="relu", seed=seed),
                          Dense(10, seed=seed + 1)], **kw)


def _compiled(**kw):
    m = _mlp(input_shape=(64,), **kw)
    m.compile(optimizer=gn.optimizers.Adam(3e-3), loss="sparse_softmax_cross_entropy",
              metrics=["accuracy"])
    return m


def test_digits_mlp_reaches_96_percent(digits):
    (xtr, ytr), (xte, yte) = digits
    model = gn.Sequential([Dense(64, activation="relu", seed=1), Dropout(0.1, seed=2),
                           Dense(10, seed=3)], input_shape=(64,))
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_softmax_cross_entropy", metrics=["accuracy"])
    hist = model.fit(xtr, ytr, batch_size=32, epochs=15, validation_split=0.1, verbose=0,
                     seed=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist.history["loss"]) == 15 and model.history is hist
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 5
    loss, acc = model.evaluate(xte, yte)
    assert acc >= 0.96
    pred = model.predict(xte, batch_size=50)
    assert pred.shape == (len(xte), 10)
    assert np.mean(pred.argmax(1) == yte) == pytest.approx(acc)


def test_fit_is_repeatable_with_a_seed(digits):
    (xtr, ytr), _ = digits
    runs = []
    for _ in range(2):
        m = _compiled()
        runs.append(m.fit(xtr[:256], ytr[:256], epochs=2, verbose=0, seed=7).history["loss"])
    assert runs[0] == runs[1]


def test_keras_probability_head_and_loss(digits):
    (xtr, ytr), (xte, yte) = digits
    m = gn.Sequential([Dense(32, activation="relu", seed=1),
                       Dense(10, activation="softmax", seed=2)], input_shape=(64,))
    m.compile(optimizer=gn.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    hist = m.fit(xtr[:512], ytr[:512], epochs=5, verbose=0, seed=0)
    # training accuracy is read through the softmax the loss skips (it reads the logits)
    assert hist.history["accuracy"][-1] > 0.8
    p = m.predict(xte[:20])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert m.evaluate(xte, yte)[1] > 0.8


def test_binary_classifier_with_sigmoid_head(rng):
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    m = gn.Sequential([Dense(1, activation="sigmoid", seed=1)], input_shape=(2,))
    m.compile(optimizer=gn.optimizers.Adam(0.1), loss="binary_crossentropy",
              metrics=["accuracy"])
    hist = m.fit(x, y, epochs=10, batch_size=16, verbose=0, seed=0)
    assert hist.history["accuracy"][-1] > 0.9
    p = m.predict(x)
    assert p.min() >= 0 and p.max() <= 1
    assert m.evaluate(x, y)[1] == pytest.approx(np.mean((p[:, 0] > 0.5) == y))


def test_structure_targets_and_feeds(digits):
    (xtr, ytr), _ = digits
    m = _compiled()
    assert m.loss_tensor.shape == ()
    assert [t.shape for t in m.targets] == [(None,)] and m.targets[0].dtype == np.int64
    assert [w.name for w in m.trainable_weights] == ["dense/kernel", "dense/bias",
                                                     "dense_1/kernel", "dense_1/bias"]
    feeds = m.feeds(xtr[:4], ytr[:4])
    assert set(feeds) == {m.inputs[0], m.targets[0]}
    value, grads = m.train_program(feeds)
    assert np.isfinite(value) and len(grads) == 4
    assert m.metrics_names == ["loss", "accuracy"]


def test_evaluate_without_metrics_is_a_scalar_and_predict_batches_agree(digits):
    (xtr, ytr), _ = digits
    m = _mlp(input_shape=(64,))
    m.compile(loss="sparse_softmax_cross_entropy")
    loss = m.evaluate(xtr[:100], ytr[:100], batch_size=7)
    assert isinstance(loss, float)
    np.testing.assert_allclose(m.predict(xtr[:100], batch_size=7),
                               m.predict(xtr[:100], batch_size=100), rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(m.evaluate(xtr[:100], ytr[:100], batch_size=100), rel=1e-5)


def test_sequential_builds_from_data_and_add():
    m = gn.Sequential()
    m.add(Dense(4, activation="tanh"))
    m.add(Dense(1))
    assert not m.built
    m.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(20, 2)
    y = x.sum(1)
    h = m.fit(x, y, epochs=3, verbose=0, batch_size=5)
    assert m.built and m.inputs[0].shape == (None, 2)
    assert len(h.history["loss"]) == 3
    assert m.predict(x).shape == (20, 1)
    m2 = gn.Sequential([Dense(3, input_shape=(5,))])  # Keras' first-layer input_shape
    assert m2.outputs[0].shape == (None, 3)


def test_summary_counts_parameters():
    m = gn.Sequential([Dense(32, activation="relu"), Dropout(0.2), Dense(10)],
                      input_shape=(64,), name="mlp")
    text = m.summary(print_fn=None)
    assert 'Model: "mlp"' in text
    assert re.search(r"dense \(Dense\)\s+\(None, 32\)\s+2,080", text)
    assert re.search(r"dropout \(Dropout\)\s+\(None, 32\)\s+0", text)
    assert re.search(r"dense_1 \(Dense\)\s+\(None, 10\)\s+330", text)
    assert "Total params: 2,410" in text and "Trainable params: 2,410" in text
    assert "Non-trainable params: 0" in text
    assert m.count_params() == 2410


def test_functional_model_with_two_inputs(rng):
    with gn.Graph():
        a = gn.Input((3,), name="a")
        b = gn.Input((2,), name="b")
        h = Concatenate()([Dense(4, activation="relu", seed=1)(a), b])
        out = Dense(1, seed=2)(h)
    model = gn.Model([a, b], out, name="two")
    assert [la.name for la in model.layers] == ["dense", "concatenate", "dense_1"]
    xa = rng.normal(size=(64, 3)).astype(np.float32)
    xb = rng.normal(size=(64, 2)).astype(np.float32)
    y = xa[:, :1] - 2 * xb[:, 1:]
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="mse")
    first = model.evaluate([xa, xb], y)
    model.fit({"a": xa, "b": xb}, y, epochs=20, batch_size=16, verbose=0, seed=0)
    assert model.evaluate([xa, xb], y) < first / 3
    assert model.predict([xa, xb]).shape == (64, 1)
    text = model.summary(print_fn=None)
    assert "a (Input)" in text and "b (Input)" in text and "Connected to" in text
    with pytest.raises(gn.FeedError, match="2 inputs"):
        model.predict(xa)
    with pytest.raises(gn.FeedError, match="no data for inputs"):
        model.predict({"a": xa})


def test_functional_model_refuses_unlisted_inputs():
    with gn.Graph():
        a, b = gn.Input((3,)), gn.Input((3,))
        out = Dense(1)(a + b)
    with pytest.raises(gn.GraphError, match="not among the model's inputs"):
        gn.Model(a, out)


# -- data checks before training: FeedError (a ValueError) naming what is wrong ---------------

@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 64)).astype(np.float32), rng.integers(0, 10, 20)


def test_y_of_the_wrong_length(small):
    x, y = small
    with pytest.raises(gn.FeedError, match="y has 19 samples but x has 20"):
        _compiled().fit(x, y[:19], verbose=0)


def test_labels_out_of_range(small):
    x, y = small
    bad = y.copy()
    bad[3] = 10
    with pytest.raises(gn.FeedError, match="10 classes"):
        _compiled().fit(x, bad, verbose=0)
    with pytest.raises(gn.FeedError, match="class ids -1"):
        _compiled().evaluate(x, y - 1)


def test_nan_and_inf_in_x(small):
    x, y = small
    for v in (np.nan, np.inf):
        bad = x.copy()
        bad[2, 5] = v
        with pytest.raises(gn.FeedError, match=r"NaN or Inf \(first at index \(2, 5\)\)"):
            _compiled().fit(bad, y, verbose=0)


def test_wrong_number_of_features(small):
    x, y = small
    with pytest.raises(gn.FeedError, match=r"expects samples of shape \(64,\).*\(20, 63\)"):
        _compiled().fit(x[:, :63], y, verbose=0)
    with pytest.raises(gn.FeedError, match="expects samples"):
        _compiled().predict(x[0])


def test_other_misuse(small):
    x, y = small
    with pytest.raises(gn.GraphError, match="not compiled"):
        _mlp(input_shape=(64,)).fit(x, y)
    with pytest.raises(gn.GraphError, match="needs a loss"):
        _mlp(input_shape=(64,)).compile(optimizer="adam")
    with pytest.raises(ValueError, match="validation_split"):
        _compiled().fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(gn.FeedError, match="integer class ids"):
        _compiled().fit(x, y + 0.5, verbose=0)
    with gn.Graph():
        ids = gn.Input((3,), dtype="int64")
        out = gn.reshape(ids, (-1, 3))
    with pytest.raises(gn.FeedError, match="cannot be cast"):
        gn.Model(ids, out).predict(np.ones((2, 3), np.float32))


def test_float64_model_gradients_match_finite_differences(rng):
    """The training loss (data term + L2 penalty) and its gradients, checked numerically."""
    m = gn.Sequential([Dense(3, activation="tanh", dtype="float64", seed=1,
                             kernel_regularizer=gn.regularizers.L2(0.05)),
                       Dense(1, dtype="float64", seed=2)], input_shape=(2,),
                      input_dtype="float64")
    m.compile(loss="mse")
    assert m.targets[0].dtype == np.float64
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 1))
    feeds = m.feeds(x, y)
    _, grads = m.train_program(feeds)
    h = 1e-6
    for w, g in zip(m.trainable_weights, grads):
        num = np.zeros(w.shape)
        for i in np.ndindex(*w.shape):
            base = w.value[i]
            w.value[i] = base + h
            up = float(m.eval_program(feeds)[0])
            w.value[i] = base - h
            down = float(m.eval_program(feeds)[0])
            w.value[i] = base
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_two_outputs_with_a_loss_each(rng):
    with gn.Graph():
        x = gn.Input((4,))
        h = Dense(8, activation="relu", seed=1)(x)
        cls = Dense(3, name="cls", seed=2)(h)
        reg = Dense(1, name="reg", seed=3)(h)
    m = gn.Model(x, [cls, reg])
    m.compile(optimizer=gn.optimizers.Adam(0.01),
              loss={"cls": "sparse_softmax_cross_entropy", "reg": "mse"}, metrics=["accuracy"])
    assert m.metrics_names == ["loss", "cls_accuracy", "reg_accuracy"]
    xs = rng.normal(size=(32, 4)).astype(np.float32)
    yc, yr = (xs[:, 0] > 0).astype(np.int64), xs[:, 1:2]
    hist = m.fit(xs, [yc, yr], epochs=3, verbose=0)
    assert {"loss", "cls_accuracy"} <= set(hist.history)
    pc, pr = m.predict(xs)
    assert pc.shape == (32, 3) and pr.shape == (32, 1)
    with pytest.raises(gn.FeedError, match=r"y\[0\] holds class ids"):
        m.fit(xs, [yc + 3, yr], verbose=0)


@pytest.mark.cuda
def test_fit_on_cuda_matches_cpu(tmp_path):
    """The same model and seeds trained on both devices give the same weights and predictions."""
    cuda = pytest.importorskip("numba.cuda")
    if not (cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"):
        pytest.skip("no CUDA GPU and the simulator is off")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    preds, weights = [], []
    for device in ("cpu", "cuda"):
        m = gn.Sequential([Dense(8, activation="relu", seed=1), Dropout(0.25, seed=5),
                           Dense(3, activation="softmax", seed=2)], input_shape=(6,))
        m.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], device=device)
        hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)
        assert np.isfinite(hist.history["loss"]).all()
        preds.append(m.predict(x))
        weights.append(m.get_weights())
        m.save(tmp_path / f"{device}.graphnet")
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-4, atol=1e-5)
    loaded = gn.load_model(tmp_path / "cuda.graphnet")  # weights came back to the host
    np.testing.assert_allclose(loaded.predict(x), preds[1], rtol=1e-5, atol=1e-6)


def test_frozen_layer_keeps_its_weights(small):
    x, y = small
    m = gn.Sequential([Dense(32, activation="relu", seed=1, trainable=False), Dense(10, seed=2)],
                      input_shape=(64,))
    m.compile(optimizer=gn.optimizers.SGD(0.1), loss="sparse_softmax_cross_entropy")
    frozen, head = m.layers[0].get_weights(), m.layers[1].get_weights()
    m.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, m.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head[0], m.layers[1].get_weights()[0])
    assert [w.name for w in m.trainable_weights] == ["dense_1/kernel", "dense_1/bias"]
    text = m.summary(print_fn=None)
    assert "Trainable params: 330" in text and "Non-trainable params: 2,080" in text


def test_on_batch_methods_follow_keras(digits):
    (xtr, ytr), _ = digits
    xb, yb = xtr[:50], ytr[:50]
    a, b = _compiled(), _compiled()
    b.set_weights(a.get_weights())
    before = a.test_on_batch(xb, yb)
    assert isinstance(before, list) and len(before) == 2          # [loss, accuracy]
    assert before == pytest.approx(a.evaluate(xb, yb, batch_size=50), rel=1e-6)
    logs = a.train_on_batch(xb, yb, return_dict=True)
    assert list(logs) == ["loss", "accuracy"]
    assert logs["loss"] == pytest.approx(before[0], rel=1e-5)      # the pass before the step
    assert logs["accuracy"] == pytest.approx(before[1])
    b.fit(xb, yb, batch_size=50, epochs=1, shuffle=False, verbose=0)  # one step, same batch
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    assert a.test_on_batch(xb, yb)[0] < before[0]
    p = a.predict_on_batch(xb[:7])
    assert p.shape == (7, 10)
    np.testing.assert_allclose(p, a.predict(xb[:7]), rtol=1e-6)
    plain = _mlp(input_shape=(64,))
    plain.compile(loss="sparse_softmax_cross_entropy")
    assert isinstance(plain.train_on_batch(xb, yb), float)
    assert isinstance(plain.test_on_batch(xb, yb), float)
    with pytest.raises(NotImplementedError, match="sample_weight"):
        plain.train_on_batch(xb, yb, sample_weight=np.ones(50))
    with pytest.raises(ValueError, match="needs x and y"):
        plain.test_on_batch(xb)
