"""Callbacks: EarlyStopping on a scripted loss curve, checkpoints, schedules, progress output."""

import os
from collections.abc import Mapping

import numpy as np
import pytest

import graphnet as gn
from graphnet.layers import Dense
from graphnet.training.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
)

pytestmark = pytest.mark.lecture1


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    return x, x @ np.array([1.0, -2.0, 0.5], np.float32)


def _model():
    m = gn.Sequential([Dense(1, seed=0)], input_shape=(3,))
    m.compile(optimizer=gn.optimizers.SGD(0.05), loss="mse")
    return m


class Script(Callback):
    """Overwrites the monitored value with a scripted curve and records each epoch's weights."""

    def __init__(self, curve, key="val_loss"):
        super().__init__()
        self.curve, self.key, self.weights = curve, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.curve[epoch]
        self.weights.append(self.model.get_weights())


def test_early_stopping_stops_at_the_right_epoch_and_restores_best(data):
    x, y = data
    # best at epoch 2 (0.5); with patience 2, epochs 3 and 4 do not improve -> stop after 4
    curve = [1.0, 0.8, 0.5, 0.55, 0.6, 0.1, 0.1, 0.1]
    script = Script(curve)
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = _model().fit(x, y, epochs=8, batch_size=10, verbose=0, shuffle=False,
                        validation_split=0.25, callbacks=[script, stop])
    assert hist.history["val_loss"] == curve[:5]
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 0.5
    model = stop.model
    for a, b in zip(model.get_weights(), script.weights[2]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_weights()[0], script.weights[4][0])


def test_early_stopping_min_delta_patience_zero_and_max_mode(data):
    x, y = data
    # improvements smaller than min_delta do not count: stops at epoch 1 with patience 0
    stop = EarlyStopping(monitor="loss", min_delta=0.1, patience=0)
    hist = _model().fit(x, y, epochs=6, verbose=0,
                        callbacks=[Script([1.0, 0.95, 0.5, 0.4], "loss"), stop])
    assert len(hist.history["loss"]) == 2 and stop.stopped_epoch == 1
    # accuracy-like monitors maximise in mode "auto"
    stop = EarlyStopping(monitor="val_accuracy", patience=1)
    assert stop.mode == "max"
    hist = _model().fit(x, y, epochs=6, verbose=0,
                        callbacks=[Script([0.5, 0.7, 0.6, 0.65, 0.9], "val_accuracy"), stop])
    assert len(hist.history["loss"]) == 3


def test_early_stopping_warns_without_the_monitored_value(data):
    x, y = data
    with pytest.warns(UserWarning, match="val_loss"):
        hist = _model().fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    assert len(hist.history["loss"]) == 2


def test_model_checkpoint_saves_best_only(data, tmp_path):
    x, y = data
    path = str(tmp_path / "m-{epoch:02d}.graphnet")
    ck = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    _model().fit(x, y, epochs=4, verbose=0, validation_split=0.25,
                 callbacks=[Script([0.5, 0.6, 0.4, 0.45]), ck])
    assert sorted(os.listdir(tmp_path)) == ["m-01.graphnet", "m-03.graphnet"]
    assert gn.load_model(tmp_path / "m-03.graphnet").predict(x[:2]).shape == (2, 1)


def test_learning_rate_scheduler(data):
    x, y = data
    m = _model()
    sched = LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    hist = m.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert m.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_progress_output(data, capsys):
    x, y = data
    _model().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    _model().fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2 - loss:" in out and "Epoch 2/2" in out
    pytest.importorskip("tqdm")
    _model().fit(x, y, epochs=2, batch_size=10, verbose=1)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Epoch 2/2" in text and "loss" in text and "4/4" in text
    assert isinstance(ProgressBar(), Callback)


def test_batch_logs_hold_the_running_loss(data):
    # each batch's logs: the epoch's running mean of the loss, read when a callback looks
    x, y = data
    m = _model()
    first = m.evaluate(x[:10], y[:10], batch_size=10)  # batch 0's loss, before any step
    seen = []

    class Record(Callback):
        def on_batch_end(self, batch, logs=None):
            assert isinstance(logs, Mapping) and list(logs)[0] == "loss"
            seen.append(logs.copy())

    class Add(Callback):  # an entry one callback adds, the next one sees, as in a dict
        def on_batch_end(self, batch, logs=None):
            logs["batch"] = batch
            assert logs.get("loss") > 0 and "loss" in logs

    hist = m.fit(x, y, epochs=2, batch_size=10, shuffle=False, verbose=0,
                 callbacks=[Record(), Add(), Record()])
    assert [s.get("batch") for s in seen[:4]] == [None, 0, None, 1]
    seen = seen[::2]
    assert len(seen) == 8 and all(type(s) is dict for s in seen)
    assert seen[0]["loss"] == pytest.approx(first, rel=1e-6)
    # the last batch of each epoch reads the epoch's loss
    assert [seen[3]["loss"], seen[7]["loss"]] == hist.history["loss"]
    assert seen[1]["loss"] != seen[0]["loss"]
