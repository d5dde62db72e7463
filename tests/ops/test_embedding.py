"""Embedding lookup, its scatter-add gradient, one-hot codes and the sinusoidal positional
encoding: against NumPy written out here, PyTorch's F.embedding, finite differences, errors."""

import importlib

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.embedding import embedding as embedding_kernel
from graphnet.kernels.cpu.embedding import embedding_grad, one_hot
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture2

# the module itself (the package's attribute of that name is the embedding function)
emb = importlib.import_module("graphnet.kernels.cpu.embedding")


def gather_ref(ids, table):
    out = np.empty(ids.shape + (table.shape[1],), table.dtype)
    for pos in np.ndindex(ids.shape):
        out[pos] = table[ids[pos]]
    return out


def scatter_ref(g, ids, vocab):
    d = np.zeros((vocab, g.shape[-1]))
    for pos in np.ndindex(ids.shape):
        d[ids[pos]] += g[pos]  # a repeated id gets every row
    return d


def test_forward_matches_numpy_and_torch(rng):
    table = rng.normal(size=(7, 4))
    ids = np.array([[0, 6, 2], [2, 2, 5]])
    out = run_fn(lambda i, t: gn.embedding(i, t), ids, table)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, gather_ref(ids, table.astype(np.float32)))
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.embedding(torch.from_numpy(ids), torch.from_numpy(table))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6)


def test_scatter_add_accumulates_repeated_ids(rng):
    ids = np.array([[1, 3, 1], [1, 0, 3]], np.int32)
    g = rng.normal(size=(2, 3, 5))
    np.testing.assert_allclose(embedding_grad(g, ids, 4), scatter_ref(g, ids, 4), rtol=1e-12)
    np.testing.assert_array_equal(embedding_grad(g, ids, 6)[[2, 4, 5]], 0)  # unseen rows


def test_gradient_of_the_table(rng):
    ids = np.array([[0, 2, 2], [3, 0, 2]])
    check_gradients(lambda i, t: gn.embedding(i, t) * gn.embedding(i, t), ids,
                    rng.normal(size=(4, 3)))


def test_scalar_and_1d_ids(rng):
    table = rng.normal(size=(5, 2))
    out = run_fn(lambda t: gn.embedding(gn.constant(np.array(3)), t), table)
    np.testing.assert_allclose(out, table[3].astype(np.float32))
    np.testing.assert_allclose(embedding_kernel(np.array([4, 0]), table), table[[4, 0]])


@pytest.mark.usefixtures("parallel_kernels")
def test_large_batch_runs_the_parallel_passes(rng):
    # 512 ids x 128 features: the gather and the column-block scatter run their prange twins
    table = rng.normal(size=(50, 128)).astype(np.float32)
    ids = rng.integers(0, 50, (8, 64))
    np.testing.assert_array_equal(embedding_kernel(ids, table), gather_ref(ids, table))
    g = rng.normal(size=(8, 64, 128)).astype(np.float32)
    np.testing.assert_allclose(embedding_grad(g, ids, 50), scatter_ref(g, ids, 50),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(one_hot(ids, 128), np.eye(128, dtype=np.float32)[ids])


def test_one_hot_against_numpy():
    ids = np.array([[2, 0], [1, 2]])
    out = run_fn(lambda i: gn.one_hot(i, 4), ids)
    want = np.zeros((2, 2, 4), np.float32)
    for pos in np.ndindex(ids.shape):
        want[pos + (ids[pos],)] = 1
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want)
    assert run_fn(lambda i: gn.one_hot(i, 3, dtype="float64"), ids).dtype == np.float64


def test_one_hot_feeds_a_trainable_graph(rng):
    # no gradient reaches the ids; the weight behind the code gets dW = onehot^T g
    ids = np.array([0, 2, 1, 2])
    check_gradients(lambda i, W: gn.matmul(gn.one_hot(i, 3, "float64"), W), ids,
                    rng.normal(size=(3, 2)))


def test_positional_encoding_formula():
    pe = gn.positional_encoding(6, 5)
    assert pe.shape == (6, 5) and pe.dtype == np.float32
    want = np.empty((6, 5))
    for p in range(6):
        for j in range(5):
            freq = 1.0 / 10000 ** ((j - j % 2) / 5)  # features 2i and 2i+1 share 10000^(2i/d)
            want[p, j] = np.sin(p * freq) if j % 2 == 0 else np.cos(p * freq)
    np.testing.assert_allclose(pe, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(pe[0], [0, 1, 0, 1, 0])
    assert gn.positional_encoding(3, 4, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="depth > 0"):
        gn.positional_encoding(3, 0)


def test_build_errors():
    with gn.Graph():
        table = gn.Parameter(np.zeros((5, 3), np.float32), name="table")
        x = gn.Input((4,), name="x")
        with pytest.raises(gn.GraphError, match=r"embedding node.*must be integer ids, got "
                                                r"float32 \(None, 4\)"):
            gn.embedding(x, table)
        ids = gn.Input((4,), dtype="int64", name="ids")
        with pytest.raises(gn.GraphError, match=r"table must be a 2-D float array"):
            gn.embedding(ids, gn.Parameter(np.zeros(5, np.float32)))
        with pytest.raises(gn.GraphError, match="one_hot's input must be integer ids"):
            gn.one_hot(x, 3)
        with pytest.raises(gn.GraphError, match="depth must be positive"):
            gn.one_hot(ids, 0)
        assert gn.embedding(ids, table).shape == (None, 4, 3)


def test_out_of_range_ids_are_a_run_time_error_naming_the_id():
    with gn.Graph():
        ids = gn.Input((2,), dtype="int64", name="ids")
        table = gn.Parameter(np.zeros((5, 3), np.float32))
        y = gn.embedding(ids, table)
        h = gn.one_hot(ids, 3)
    with pytest.raises(gn.GraphError, match=r"node 'embedding'.*id 5 is out of range for "
                                            r"vocabulary size 5 \(valid ids are 0..4\)"):
        gn.compile(y)({ids: np.array([[1, 5]])})
    with pytest.raises(gn.GraphError, match=r"id -2 is out of range for vocabulary size 5"):
        gn.compile(y)({ids: np.array([[-2, 0]])})
    with pytest.raises(gn.GraphError, match=r"id 4 is out of range for depth 3"):
        gn.compile(h)({ids: np.array([[4, 0]])})
    with pytest.raises(gn.FeedError, match="cannot be cast"):
        gn.compile(y)({ids: np.array([[1.0, 2.0]])})


def test_gradient_buffer_is_zeroed_between_calls(rng):
    # the CPU backend reuses the table-gradient buffer: a second run must not accumulate
    with gn.Graph():
        ids = gn.Input((2,), dtype="int64")
        table = gn.Parameter(rng.normal(size=(4, 3)))
        loss = gn.sum(gn.embedding(ids, table))
    prog = gn.compile(loss, wrt=[table])
    _, (d1,) = prog({ids: np.array([[1, 1]])})
    _, (d2,) = prog({ids: np.array([[2, 3]])})
    np.testing.assert_array_equal(d1, [[0] * 3, [2] * 3, [0] * 3, [0] * 3])
    np.testing.assert_array_equal(d2, [[0] * 3, [0] * 3, [1] * 3, [1] * 3])



def test_reused_gradient_table_only_clears_the_rows_it_touched(rng):
    # batches of several sizes and ids, run in turn on one program: each gradient equals a
    # fresh NumPy scatter-add (the buffer's rows from earlier calls are cleared)
    with gn.Graph():
        ids = gn.Input((5,), dtype="int64")
        table = gn.Parameter(rng.normal(size=(50, 4)), dtype="float64")
        wv = rng.normal(size=(5, 4))
        w = gn.constant(wv)
        loss = gn.sum(gn.embedding(ids, table) * w)
    prog = gn.compile(loss, wrt=[table])
    for b in (3, 1, 4, 4, 2):
        i = rng.integers(0, 50, size=(b, 5))
        ref = np.zeros((50, 4))
        np.add.at(ref, i.reshape(-1), np.broadcast_to(wv, (b, 5, 4)).reshape(-1, 4))
        _, (d,) = prog({ids: i})
        np.testing.assert_allclose(d, ref, rtol=1e-12)


def test_reused_table_is_cleared_and_added_in_one_pass_by_either_twin(rng):
    # the last call's rows cleared and the new ones added chunk by chunk of columns (three
    # uneven chunks of the parallel twin, one of the serial), repeated and overlapping ids
    # across calls, against NumPy
    vocab, dim = 60, 10
    for k, chunks in ((getattr(emb._scatter_add, "parallel", emb._scatter_add), 3),
                      (getattr(emb._scatter_add, "serial", emb._scatter_add), 1)):
        out = np.zeros((vocab, dim))
        last = np.zeros(0, np.int64)
        for b in (40, 25, 40):
            ids = rng.integers(0, vocab // 2, size=b)  # half the rows: repeats, overlaps
            g = rng.normal(size=(b, dim))
            k(g, ids, last, chunks, out)
            ref = np.zeros((vocab, dim))
            np.add.at(ref, ids, g)
            np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
            last = ids.copy()


# -- take: the row lookup on any tensor ------------------------------------------------------

def test_take_matches_numpy_and_keeps_trailing_axes(rng):
    x = rng.normal(size=(5, 2, 3))
    ids = np.array([[4, 0], [4, 2]])
    out = run_fn(lambda x, i: gn.take(x, i), x, ids, dtype="float64")
    assert out.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(out, np.take(x, ids, axis=0))


def test_take_gradient_accumulates_repeated_rows(rng):
    x, ids = rng.normal(size=(4, 3)), np.array([1, 3, 1, 1])
    check_gradients(lambda x: gn.take(x, gn.constant(ids)) ** 2, x)
    # d sum(take(x, ids)) / dx counts how often each row was picked
    with gn.Graph():
        xp = gn.Parameter(x, dtype="float64")
        loss = gn.sum(gn.take(xp, gn.constant(ids)))
    _, (dx,) = gn.compile(loss, wrt=[xp])({})
    np.testing.assert_array_equal(dx, np.array([0, 3, 0, 1])[:, None] * np.ones((4, 3)))


def test_take_rows_of_a_batch_input(rng):
    # the first axis of x may be the free batch axis: pick sampled rows of a per-batch output
    with gn.Graph():
        x = gn.Input((3,), name="x")
        ids = gn.constant(np.array([2, 0]))
        y = gn.take(x * 2.0, ids)
        assert y.shape == (2, 3)
    xb = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(gn.compile(y)({x: xb}), 2 * xb[[2, 0]])


def test_take_refuses_float_ids_and_bad_rows(rng):
    with gn.Graph():
        x = gn.Parameter(rng.normal(size=(3, 2)))
        with pytest.raises(gn.GraphError, match="integer ids"):
            gn.take(x, gn.constant(np.array([0.0, 1.0])))
        y = gn.take(x, gn.constant(np.array([0, 3])))
    with pytest.raises(gn.GraphError, match="3"):
        gn.compile(y)({})
