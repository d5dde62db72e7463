"""Character vocabulary, next-character training pairs and sampling (Lecture 2)."""

import json

import numpy as np
import pytest

from graphnet import datasets
from graphnet.data.text import Vocabulary, sample, sequences

pytestmark = pytest.mark.lecture2


def test_vocabulary_fit_sorts_distinct_characters():
    v = Vocabulary.fit(["bca", "ab\n"])
    assert v.chars == ("\n", "a", "b", "c") and v.size == len(v) == 4
    assert "a" in v and "z" not in v
    assert Vocabulary.fit("cab") == Vocabulary("abc")
    assert Vocabulary("cab").chars == ("c", "a", "b")  # the order given is kept


def test_vocabulary_round_trip_on_the_corpus():
    songs = datasets.irish_songs()
    text = "\n\n".join(songs)
    v = Vocabulary.fit(songs)
    assert v.size == 83  # as in the MIT lab
    ids = v.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert ids.min() == 0 and ids.max() == v.size - 1
    assert v.decode(ids) == text
    # ids are positions in the sorted characters, written out independently
    chars = sorted(set(text))
    np.testing.assert_array_equal(ids[:50], [chars.index(c) for c in text[:50]])
    assert v.decode(ids[:3].tolist()) == text[:3] and v.decode([]) == ""


def test_vocabulary_non_ascii_and_config_round_trip():
    v = Vocabulary.fit("ceól ♪ abc")
    assert v.decode(v.encode("♪ ól")) == "♪ ól"
    config = json.loads(json.dumps(v.get_config()))
    w = Vocabulary.from_config(config)
    assert w == v and w.chars == v.chars


def test_vocabulary_errors():
    v = Vocabulary("abc")
    with pytest.raises(ValueError, match=r"not in the vocabulary.*position 1.*'z'"):
        v.encode("azb")
    with pytest.raises(ValueError, match="ids must be in"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match="1-D"):
        v.decode(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="integer ids"):
        v.decode([0.5])
    with pytest.raises(ValueError, match="distinct.*'a'"):
        Vocabulary("aba")
    with pytest.raises(ValueError, match="single characters"):
        Vocabulary(["ab"])


def test_sequences_shapes_and_shift():
    ids = np.arange(10) * 3
    x, y = sequences(ids, length=4)
    assert x.shape == y.shape == (6, 4) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x[0], [0, 3, 6, 9])
    np.testing.assert_array_equal(x[5], [15, 18, 21, 24])
    np.testing.assert_array_equal(y, x + 3)  # each target is the next character
    x2, y2 = sequences(ids, length=4, stride=3)
    np.testing.assert_array_equal(x2, x[::3])
    np.testing.assert_array_equal(y2, y[::3])
    x3, y3 = sequences(ids, length=9)
    assert x3.shape == (1, 9) and y3[0, -1] == 27
    x[0, 0] = 99  # copies, not views of ids or of each other
    assert ids[0] == 0 and x[1, 0] == 3


def test_sequences_errors():
    with pytest.raises(ValueError, match="need 11 ids, got 10"):
        sequences(np.arange(10), length=10)
    with pytest.raises(ValueError, match="positive"):
        sequences(np.arange(10), length=3, stride=0)
    with pytest.raises(ValueError, match="integer ids"):
        sequences(np.ones(10), length=3)


def test_sample_temperature_zero_is_argmax():
    logits = np.array([0.1, 2.5, -1.0, 2.4])
    assert sample(logits, 0.0) == 1 and isinstance(sample(logits, 0.0), int)
    batch = np.array([[0.0, 1.0, 0.5], [3.0, -1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(sample(batch, 0), [1, 0])


def test_sample_follows_the_softmax_and_temperature_spreads_it():
    logits = np.array([0.0, 1.0, 2.0, 3.0])
    rng = np.random.default_rng(0)
    n = 4000
    draws = np.array([sample(logits, 1.0, rng) for _ in range(n)])
    p = np.exp(logits) / np.exp(logits).sum()
    freq = np.bincount(draws, minlength=4) / n
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))
    # hot: close to uniform; cold: nearly always the largest logit
    hot = np.bincount(sample(np.tile(logits, (n, 1)), 100.0, rng), minlength=4) / n
    assert np.all(np.abs(hot - 0.25) < 0.04)
    cold = np.bincount(sample(np.tile(logits, (n, 1)), 0.05, rng), minlength=4) / n
    assert cold[3] > 0.99
    # a seed repeats the draws
    assert [sample(logits, 1.0, 7) for _ in range(3)] == [sample(logits, 1.0, 7)] * 3
    a = sample(np.tile(logits, (50, 1)), 1.0, np.random.default_rng(3))
    np.testing.assert_array_equal(a, sample(np.tile(logits, (50, 1)), 1.0,
                                            np.random.default_rng(3)))
    assert sample(np.array([1000.0, 0.0]), 1.0, rng) == 0  # no overflow on large logits


def test_sample_errors():
    with pytest.raises(ValueError, match="temperature"):
        sample(np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="not finite"):
        sample(np.array([0.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        sample(np.zeros((2, 2, 2)), 1.0)
