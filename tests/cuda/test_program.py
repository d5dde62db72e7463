"""Whole programs on device="cuda" (simulated) against device="cpu": forward, gradients,
training steps, and the error when CUDA is asked for but unavailable."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import count_reads

cuda = pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.cuda


def _mlp_graph(rng, rate=0.0):
    """A small classifier touching most op families; returns (loss, params, feeds)."""
    with gn.Graph("mlp"):
        x = gn.Input((5,), name="x")
        y = gn.Input((), dtype="int64", name="y")
        W1 = gn.Parameter(rng.normal(size=(5, 4)).astype(np.float32) * 0.5, name="W1")
        b1 = gn.Parameter(rng.normal(size=4).astype(np.float32) * 0.1, name="b1")
        W2 = gn.Parameter(rng.normal(size=(6, 3)).astype(np.float32) * 0.5, name="W2")
        h = gn.dense(x, W1, b1, activation="relu")
        if rate:
            h = gn.dropout(h, rate, seed=7)
        h2 = gn.concatenate([h, gn.sigmoid(gn.getitem(x, (slice(None), slice(0, 2))))], 1)
        logits = gn.matmul(h2, W2) + gn.mean(gn.transpose(gn.reshape(h, (-1, 2, 2))), 0)[0, 0]
        # (N, C) terms only: the CPU backend turns 0-d elementwise results into floats
        extra = gn.exp(gn.log_softmax(logits)) * gn.max(gn.softmax(logits), 1, keepdims=True)
        loss = gn.softmax_cross_entropy(logits + extra * 0.1, y)
    feeds = {x: rng.normal(size=(3, 5)).astype(np.float32), y: np.array([0, 2, 1])}
    return loss, [W1, b1, W2], feeds


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the dropout hash
@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_forward_and_gradients_match_cpu(rate):
    loss, params, feeds = _mlp_graph(np.random.default_rng(0), rate)
    training = rate > 0
    cpu_val, cpu_grads = gn.compile(loss, wrt=params, training=training)(feeds)
    prog = gn.compile(loss, wrt=params, device="cuda", training=training)
    val, grads = prog(feeds)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        assert isinstance(g, np.ndarray) and g.shape == cg.shape
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)
    # parameters now live on the device; their host values are unchanged
    assert not isinstance(params[0].data, np.ndarray)
    assert isinstance(params[0].value, np.ndarray)
    assert set(prog.values()) and all(isinstance(v, np.ndarray)
                                      for v in prog.gradients().values())


def _fit(device, weights=None, shuffle=False):
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(8, 4)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64)
    with gn.Graph("fit"):
        model = gn.Sequential([gn.layers.Dense(5, activation="tanh"),
                               gn.layers.Dropout(0.25),
                               gn.layers.Dense(2)], input_shape=(4,))
    start = [w.copy() for w in model.get_weights()] if weights is None else weights
    model.set_weights(start)
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="sparse_softmax_cross_entropy",
                  device=device, seed=3)
    hist = model.fit(xs, ys, batch_size=4, epochs=2, verbose=0, shuffle=shuffle, seed=5)
    return hist.history["loss"], [np.asarray(w) for w in model.get_weights()], start


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the dropout hash
@pytest.mark.parametrize("shuffle", [False, True])
def test_training_steps_match_cpu(shuffle):
    # on the device the data is uploaded once and each batch gathered there, in the CPU's order
    loss_cpu, w_cpu, start = _fit("cpu", shuffle=shuffle)
    loss_gpu, w_gpu, _ = _fit("cuda", start, shuffle=shuffle)
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-4)
    assert len(w_cpu) == len(w_gpu) > 0
    assert not np.allclose(w_gpu[0], start[0])  # the steps did move the weights
    for a, b in zip(w_gpu, w_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _classifier(seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(12, 4)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64)
    model = gn.Sequential([gn.layers.Dense(5, activation="relu", seed=1), gn.layers.Dense(2,
                           seed=2)], input_shape=(4,))
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="sparse_softmax_cross_entropy",
                  device="cuda")
    return model, xs, ys


def test_fit_reads_nothing_back_inside_an_epoch(K, monkeypatch):
    # the loss is summed on the device and the labels' range checked on the host: a step
    # waits for nothing; the epoch's loss is the one read
    model, xs, ys = _classifier()
    model.fit(xs, ys, batch_size=4, epochs=1, verbose=0)  # parameters and slots move over
    reads = count_reads(monkeypatch, K)
    uploads = []
    to_device = cuda.to_device
    monkeypatch.setattr(cuda, "to_device", lambda a, *args, **kw: uploads.append(np.shape(a))
                        or to_device(a, *args, **kw))
    hist = model.fit(xs, ys, batch_size=4, epochs=2, verbose=0)  # 3 steps an epoch
    assert len(reads) == 2
    # the data once (x and y), each epoch's order once: no batch crosses the bus
    assert sorted(uploads) == [(12,), (12,), (12,), (12, 4)], uploads
    seen = []

    class Peek(gn.callbacks.Callback):  # a callback that looks reads the running loss
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    reads.clear()
    hist = model.fit(xs, ys, batch_size=4, epochs=1, verbose=0, callbacks=[Peek()])
    assert len(reads) == 3 + 1 and seen[-1] == hist.history["loss"][0]


class Count(gn.callbacks.Callback):
    """Records how many device reads had happened at each batch's end (logs left unread)."""

    def __init__(self, reads):
        super().__init__()
        self.reads, self.seen = reads, []

    def on_batch_end(self, batch, logs=None):
        self.seen.append(len(self.reads))


@pytest.mark.parametrize("head", ["logits", "softmax"])
def test_training_metrics_wait_on_the_device_until_read(K, monkeypatch, head):
    # a batch's predictions come over only when a metric's value is read (here at the
    # epoch's end), and the metrics equal the CPU's
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(12, 4)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int64)
    hist = {}
    for device in ("cpu", "cuda"):
        model = gn.Sequential([gn.layers.Dense(2, seed=2, activation=None if head == "logits"
                                               else "softmax")], input_shape=(4,))
        model.compile(optimizer=gn.optimizers.Adam(0.05), metrics=["accuracy"], device=device,
                      loss="sparse_softmax_cross_entropy" if head == "logits"
                      else "sparse_categorical_crossentropy")
        model.fit(xs, ys, batch_size=4, epochs=1, verbose=0, shuffle=False)
        count = Count(count_reads(monkeypatch, K) if device == "cuda" else [])
        hist[device] = model.fit(xs, ys, batch_size=4, epochs=2, verbose=0, shuffle=False,
                                 callbacks=[count]).history
        if device == "cuda":  # reads at the epoch's end only: its loss, 3 x (outputs, labels)
            assert count.seen == [0, 0, 0, 7, 7, 7]
        monkeypatch.undo()
    for k in ("loss", "accuracy"):
        np.testing.assert_allclose(hist["cuda"][k], hist["cpu"][k], rtol=1e-5)


def test_a_fed_label_out_of_range_is_named(K, monkeypatch):
    # a host label outside the class range fails the host check: the kernel's flag is then
    # read back and names it, as on the CPU
    with gn.Graph():
        z = gn.Input((3,), name="z")
        y = gn.Input((), dtype="int64", name="y")
        loss = gn.softmax_cross_entropy(z, y)
    prog = gn.compile(loss, device="cuda")
    zs = np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(prog({z: zs, y: np.array([2, 0])}), np.log(3), rtol=1e-6)
    with pytest.raises(gn.GraphError, match="label 3 is out of range for 3 classes"):
        prog({z: zs, y: np.array([0, 3])})


def test_cuda_without_gpu_or_simulator_is_a_graph_error():
    # a fresh process: the simulator variable unset and no GPU visible
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    code = ("import graphnet as gn\n"
            "with gn.Graph():\n"
            "    p = gn.Parameter(shape=(2,), init='zeros')\n"
            "    y = p * 2.0\n"
            "try:\n"
            "    gn.compile(y, device='cuda')\n"
            "except gn.GraphError as e:\n"
            "    print('GraphError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    assert "GraphError:" in out.stdout, out.stdout + out.stderr
    assert "NUMBA_ENABLE_CUDASIM" in out.stdout


def test_loaded_cuda_model_resumes_with_its_adam_state(tmp_path):
    # the checkpoint's moments land on the device when the loaded model first trains
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.integers(0, 2, 8)
    m = gn.Sequential([gn.layers.Dense(2, seed=1)], input_shape=(3,))
    m.compile(optimizer=gn.optimizers.Adam(0.05), loss="sparse_softmax_cross_entropy",
              device="cuda")
    m.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    m.save(tmp_path / "m.graphnet")
    back = gn.load_model(tmp_path / "m.graphnet")
    m.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for u, v in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4,)), ((4,), (2, 4, 3)), ((4,), (4,))])
def test_vector_matmul_matches_cpu(sa, sb):
    # the op views a 1-D operand as a matrix, so the CUDA GEMM sees rank >= 2 only
    rng = np.random.default_rng(1)
    with gn.Graph("vec"):
        a = gn.Parameter(rng.normal(size=sa).astype(np.float32), name="a")
        b = gn.Parameter(rng.normal(size=sb).astype(np.float32), name="b")
        y = a @ b
        loss = gn.sum(y * y)
    cpu_val, cpu_grads = gn.compile(loss, wrt=[a, b])({})
    cpu_y = gn.compile(y)({})
    val, grads = gn.compile(loss, wrt=[a, b], device="cuda")({})
    np.testing.assert_allclose(gn.compile(y, device="cuda")({}), cpu_y, rtol=1e-5)
    np.testing.assert_allclose(val, cpu_val, rtol=1e-5)
    for g, cg in zip(grads, cpu_grads):
        np.testing.assert_allclose(g, cg, rtol=1e-4, atol=1e-6)
