"""Embedding, scatter-add and one-hot kernels on the GPU against their CPU twins (tiny shapes,
simulated unless GRAPHNET_REAL_GPU=1), and one embedding program on device="cuda"."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.cuda.parity import check, count_reads, f32

pytestmark = [pytest.mark.cuda, pytest.mark.lecture2]


@pytest.fixture
def r():
    return np.random.default_rng(0)


def test_gather_and_scatter_add_with_repeats(K, C, r):
    table = f32(r, 5, 3)  # vocab 5, dim 3
    ids = np.array([[4, 1, 1], [0, 4, 4]], np.int64)  # repeats must accumulate
    y = check(K, C, "embedding", ids, table, exact=True)
    assert y.shape == (2, 3, 3)
    check(K, C, "embedding_grad", f32(r, 2, 3, 3), ids, 5)
    check(K, C, "embedding", np.array([2, 3], np.int32), table, exact=True)


def test_one_hot(K, C):
    ids = np.array([[2, 0], [1, 2]], np.int64)
    check(K, C, "one_hot", ids, 3, exact=True)
    check(K, C, "one_hot", ids, 4, "float64", exact=True)


def test_out_of_range_ids_name_the_id(K):
    table = K.asarray(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"id 7 is out of range for vocabulary size 5"):
        K.embedding(K.asarray(np.array([1, 7], np.int64)), table)
    with pytest.raises(ValueError, match=r"id -1 is out of range for depth 3"):
        K.one_hot(K.asarray(np.array([-1, 0], np.int64)), 3)


def test_ids_from_the_host_are_checked_without_a_device_read(K, monkeypatch):
    # uploaded ids carry their range (taken on the host): in range, no flag is read back
    table = K.asarray(np.arange(15, dtype=np.float32).reshape(5, 3))
    reads = count_reads(monkeypatch, K)
    ids = K.asarray(np.array([4, 0, 4], np.int64))
    y, h = K.embedding(ids, table), K.one_hot(ids, 5)
    assert reads == []
    np.testing.assert_array_equal(K.to_host(y), np.arange(15).reshape(5, 3)[[4, 0, 4]])
    np.testing.assert_array_equal(K.to_host(h), np.eye(5)[[4, 0, 4]])
    # ids made on the device carry no range: the kernel's flag is read, and still names the id
    born = K.asarray(K.asarray(np.array([1, 7], np.int32)), np.int64)
    with pytest.raises(ValueError, match=r"id 7 is out of range for vocabulary size 5"):
        K.embedding(born, table)
    assert len(reads) == 3  # the two results above, then the flag


def test_take_rows(K, C, r, monkeypatch):
    # fit's batches from data on the device: a span (a view) or rows of an order (a gather)
    x, y = f32(r, 6, 2, 3), np.array([4, 0, 3, 3, 1, 2])
    order = np.array([5, 2, 0, 4, 1, 3])
    for lo, hi, o in ((1, 4, None), (0, 4, order), (4, 6, order)):
        check(K, C, "take_rows", x, lo, hi, o, exact=True)
        check(K, C, "take_rows", y, lo, hi, o, exact=True)
    # integer rows keep the range their array was uploaded with: no flag is read back later
    reads = count_reads(monkeypatch, K)
    labels = K.take_rows(K.asarray(y), 0, 4, K.asarray(order))
    K.one_hot(labels, 5)
    K.one_hot(K.take_rows(K.asarray(y), 2, 5), 5)
    assert reads == []


def _embedding_graph(rng):
    with gn.Graph("emb"):
        ids = gn.Input((3,), dtype="int64", name="ids")
        table = gn.Parameter(rng.normal(size=(5, 5)).astype(np.float32), name="table")
        h = gn.embedding(ids, table) * (gn.one_hot(ids, 5) + 1.0)
        loss = gn.mean(h * h)
    return loss, table, ids


def test_program_on_cuda_matches_cpu():
    loss, table, ids = _embedding_graph(np.random.default_rng(1))
    feeds = {ids: np.array([[4, 1, 1], [0, 2, 4]])}
    want, (dw,) = gn.compile(loss, wrt=[table])(feeds)
    got, (dg,) = gn.compile(loss, wrt=[table], device="cuda")(feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(dg, dw, rtol=1e-5, atol=1e-7)
    with pytest.raises(gn.GraphError, match=r"embedding.*id 9 is out of range"):
        gn.compile(loss, device="cuda")({ids: np.array([[9, 0, 0]])})


def test_take_program_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    x0, ids = rng.normal(size=(4, 2, 3)).astype(np.float32), np.array([3, 1, 3])
    res = {}
    for dev in ("cpu", "cuda"):
        with gn.Graph():
            x = gn.Parameter(x0)
            loss = gn.sum(gn.take(x, gn.constant(ids)) * gn.take(x, gn.constant(ids)))
        res[dev] = gn.compile(loss, wrt=[x], device=dev)({})
    np.testing.assert_allclose(res["cuda"][0], res["cpu"][0], rtol=1e-5)
    np.testing.assert_allclose(res["cuda"][1][0], res["cpu"][1][0], rtol=1e-5)


def test_fit_with_a_mean_over_tokens_matches_cpu(monkeypatch):
    # the mean's gradient reaches Adam's row form as one row per bag (core/rows.py):
    # gathered on the device by src, as the CPU reads it
    from graphnet import layers as L
    from graphnet import optimizers as O

    calls = []
    rows_update = O.Adam._update_rows
    monkeypatch.setattr(O.Adam, "_update_rows",
                        lambda self, be, data, g, *a: calls.append(g.rows()[1] is not None)
                        or rows_update(self, be, data, g, *a))
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 40, size=(8, 3)), rng.integers(0, 2, 8)
    runs = {}
    for device in ("cpu", "cuda"):
        with gn.Graph("bags"):
            ids = gn.Input((3,), dtype="int64", name="ids")
            out = L.Dense(2)(gn.mean(L.Embedding(40, 4)(ids), axis=1))
            m = gn.Model(ids, out)
        m.compile(optimizer=O.Adam(0.05), loss="sparse_softmax_cross_entropy", device=device)
        if runs:
            m.set_weights(runs["cpu"][1])
        start = m.get_weights()
        hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        runs[device] = (hist.history["loss"], start, m.get_weights())
    assert calls == [True] * 4  # two steps on each device, each by rows from the bags
    # (test_program.py's tolerances: the device's scatter-add sums in another order)
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-4)
    assert not np.allclose(runs["cpu"][2][0], runs["cpu"][1][0])  # the table did move
    for a, b in zip(runs["cuda"][2], runs["cpu"][2]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
