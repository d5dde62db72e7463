"""IndexedRows: an embedding table's gradient as the rows a batch names, dense on demand;
the executor hands out arrays unless asked for rows, and training is the same either way."""

import numpy as np

import graphnet as gn
from graphnet import layers as L
from graphnet import optimizers as O


def _scatter(ids, g, vocab):
    out = np.zeros((vocab, g.shape[-1]), g.dtype)
    np.add.at(out, ids.reshape(-1), g.reshape(-1, g.shape[-1]))
    return out


def _lookup(vocab=30, dim=3, rng=None):
    ids = gn.Input((4,), dtype="int64", name="ids")
    table = gn.Parameter(rng.normal(size=(vocab, dim)), dtype="float64", name="table")
    w = gn.constant(rng.normal(size=(4, dim)))
    return ids, table, w


def test_rows_are_dense_on_demand_and_the_reused_table_forgets_old_rows(graph, rng):
    ids, table, w = _lookup(rng=rng)
    prog = gn.compile(gn.sum(gn.embedding(ids, table) * w), wrt=[table])
    prog.row_grads = True
    seed = np.broadcast_to(w.data, (2, 4, 3))  # d loss / d looked-up rows
    for f in (np.array([[1, 2, 2, 5], [0, 1, 9, 9]]), np.array([[3, 4, 6, 7], [8, 10, 11, 3]])):
        _, (g,) = prog({ids: f}, to_host=False)
        assert isinstance(g, gn.IndexedRows) and g.shape == (30, 3) and g.dtype == np.float64
        np.testing.assert_array_equal(g.values, seed)
        np.testing.assert_allclose(g.dense(), _scatter(f, seed, 30))  # repeats add up
        assert g.dense() is g.dense()  # computed once
        assert "IndexedRows 8 rows" in repr(g)


def test_plain_calls_return_arrays(graph, rng):
    ids, table, w = _lookup(rng=rng)
    prog = gn.compile(gn.sum(gn.embedding(ids, table) * w), wrt=[table])
    f = np.array([[1, 2, 2, 5]])
    want = _scatter(f, np.broadcast_to(w.data, (1, 4, 3)), 30)
    for to_host in (True, False):
        _, (g,) = prog({ids: f}, to_host=to_host)
        assert type(g) is np.ndarray
        np.testing.assert_allclose(g, want)
    prog.row_grads = True
    _, (g,) = prog({ids: f})  # fetched to the host: dense, and a copy
    assert type(g) is np.ndarray
    np.testing.assert_allclose(g, want)
    np.testing.assert_allclose(prog.gradients()[table], want)


def test_a_table_looked_up_twice_or_computed_gets_the_dense_sum(graph, rng):
    ids, table, w = _lookup(rng=rng)
    other = gn.Input((4,), dtype="int64", name="other")
    twice = gn.sum(gn.embedding(ids, table) * w) + gn.sum(gn.embedding(other, table * 2.0))
    prog = gn.compile(twice, wrt=[table])
    prog.row_grads = True
    a, b = np.array([[1, 2, 2, 5]]), np.array([[2, 0, 0, 29]])
    _, (g,) = prog({ids: a, other: b}, to_host=False)
    want = _scatter(a, np.broadcast_to(w.data, (1, 4, 3)), 30) + 2 * _scatter(
        b, np.ones((1, 4, 3)), 30)
    np.testing.assert_allclose(g, want)  # a fan-out sum is an array


def test_check_numerics_reads_the_rows(graph, rng):
    ids, table, w = _lookup(rng=rng)
    prog = gn.compile(gn.sum(gn.embedding(ids, table) * w), wrt=[table], check_numerics=True)
    prog.row_grads = True
    _, (g,) = prog({ids: np.array([[1, 2, 3, 4]])}, to_host=False)
    assert isinstance(g, gn.IndexedRows)  # checked (finite) without its dense form
    assert g._dense is None


def test_fit_trains_the_same_with_rows_as_with_the_dense_gradient(monkeypatch):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 500, size=(40, 6)), rng.integers(0, 2, 40)
    runs, calls = [], []
    rows_update = O.Adam._update_rows
    monkeypatch.setattr(O.Adam, "_update_rows",
                        lambda self, *a: calls.append(1) or rows_update(self, *a))
    for by_rows in (True, False):
        if not by_rows:
            assert len(calls) == 10  # every step of the first fit updated the table by rows
            monkeypatch.setattr(O.Adam, "_by_rows", lambda self, g, data: False)
        with gn.Graph("rows_fit"):
            ids = gn.Input((6,), dtype="int64", name="ids")
            out = L.Dense(2)(gn.mean(L.Embedding(500, 8, name="emb")(ids), axis=1))
            m = gn.Model(ids, out)
        m.compile(optimizer=O.Adam(0.05), loss="sparse_softmax_cross_entropy")
        if runs:  # the same starting weights
            m.set_weights(runs[0][1])
        start = m.get_weights()
        hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        runs.append((hist.history["loss"], start, m.get_weights()))
    assert len(calls) == 10
    (l1, _, w1), (l2, _, w2) = runs
    assert l1 == l2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert l1[-1] < l1[0]


def test_a_mean_over_tokens_reaches_the_rows_as_one_row_per_bag(graph, rng):
    ids, table, w = _lookup(rng=rng)
    prog = gn.compile(gn.sum(gn.mean(gn.embedding(ids, table), axis=1) * w[0]), wrt=[table],
                      check_numerics=True)
    prog.row_grads = True
    f = np.array([[1, 2, 2, 5], [0, 1, 9, 9]])
    _, (g,) = prog({ids: f}, to_host=False)
    assert isinstance(g, gn.IndexedRows) and "float64" in repr(g)
    assert g._values._dense is None  # checked (finite) and shown without writing it out
    vals, src = g.rows()
    assert vals.shape == (2, 3) and src.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(vals, np.broadcast_to(w.data[0] / 4, (2, 3)))
    seed = np.broadcast_to(w.data[0] / 4, (2, 4, 3))  # d loss / d looked-up rows
    np.testing.assert_array_equal(g.values, seed)  # the Broadcast written out
    np.testing.assert_allclose(g.dense(), _scatter(f, seed, 30))
    np.testing.assert_allclose(prog.gradients()[table], _scatter(f, seed, 30))


def test_broadcast_rows_are_the_written_out_bits_for_any_kept_axes(rng):
    from graphnet.core.program import Ctx
    from graphnet.core.rows import Broadcast

    be = gn.core.backend.get_backend("cpu")
    for shape, axes in (((3, 4, 5), (1,)), ((4, 3, 5), (0,)), ((2, 3, 4, 5), (1, 2)),
                        ((2, 3, 4, 5), (0, 2))):
        kept = tuple(d for i, d in enumerate(shape) if i not in axes)
        g = rng.normal(size=kept).astype(np.float32)
        n = int(np.prod([shape[a] for a in axes]))
        b = Broadcast(g, shape, axes, 1.0 / n, Ctx(be, True, 0))
        vals, src = b.rows()
        full = b.dense()
        assert full.shape == shape
        np.testing.assert_array_equal(vals[src].view(np.int32),
                                      full.reshape(-1, 5).view(np.int32))
    b = Broadcast(g, (2, 3, 4, 5), (3,), 0.2, Ctx(be, True, 0))
    assert b.rows() is None  # the rows' last axis reduced: no row per bag
