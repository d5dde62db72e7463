"""gn.batches: every sample once per epoch, seeded shuffles, drop_last, errors."""

import numpy as np
import pytest

import graphnet as gn

pytestmark = pytest.mark.lecture1


def test_every_sample_once_per_epoch_in_aligned_batches():
    x = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    it = gn.batches(x, y, batch_size=4, seed=1)
    assert len(it) == 3
    got = list(it)
    assert [len(b[1]) for b in got] == [4, 4, 2]
    ys = np.concatenate([yb for _, yb in got])
    assert sorted(ys) == list(range(10)) and not np.array_equal(ys, np.arange(10))
    for xb, yb in got:  # rows stay aligned with their labels
        np.testing.assert_array_equal(xb, x[yb])


def test_seed_repeats_and_generator_reshuffles():
    y = np.arange(50)
    a = [b for (b,) in gn.batches(y, batch_size=8, seed=3)]
    b = [b for (b,) in gn.batches(y, batch_size=8, seed=3)]
    c = [b for (b,) in gn.batches(y, batch_size=8, seed=4)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    rng = np.random.default_rng(0)
    e1 = np.concatenate([b for (b,) in gn.batches(y, batch_size=8, seed=rng)])
    e2 = np.concatenate([b for (b,) in gn.batches(y, batch_size=8, seed=rng)])
    assert not np.array_equal(e1, e2) and sorted(e1) == sorted(e2) == list(range(50))


def test_no_shuffle_keeps_order_and_drop_last():
    y = np.arange(10)
    got = [b for (b,) in gn.batches(y, batch_size=3, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(got), y)
    dropped = list(gn.batches(y, batch_size=3, shuffle=False, drop_last=True))
    assert len(dropped) == 3 and all(len(b) == 3 for (b,) in dropped)
    assert len(gn.batches(y, batch_size=5, drop_last=True)) == 2


def test_errors():
    with pytest.raises(ValueError, match="same number"):
        gn.batches(np.zeros(3), np.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        gn.batches(np.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="at least one"):
        gn.batches(batch_size=2)
