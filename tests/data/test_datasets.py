"""Datasets: shapes, dtypes, ranges, determinism; MNIST's cache, download and offline paths
with a small fake file (the network is never used)."""

import hashlib
import io
import urllib.error

import numpy as np
import pytest

import graphnet as gn
from graphnet import datasets as D

pytestmark = pytest.mark.lecture1


def test_digits_split_shapes_ranges_and_determinism():
    pytest.importorskip("sklearn")
    (xtr, ytr), (xte, yte) = D.digits()
    assert xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0 <= xtr.min() and xtr.max() == 1.0
    assert set(np.unique(ytr)) == set(range(10)) == set(np.unique(yte))
    # stratified: each class's share of the test set is within a sample of its overall share
    share = np.bincount(yte, minlength=10) / np.bincount(np.r_[ytr, yte], minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.02)
    (xtr2, _), (xte2, _) = D.digits()
    np.testing.assert_array_equal(xtr, xtr2)
    np.testing.assert_array_equal(xte, xte2)


@pytest.mark.parametrize("make,classes", [(D.moons, 2), (D.xor, 2), (D.linear, 2),
                                          (lambda **k: D.spirals(classes=3, **k), 3)])
def test_synthetic_sets(make, classes):
    X, y = make(n=101, noise=0.1, seed=5)
    assert X.shape == (101, 2) and X.dtype == np.float32
    assert y.shape == (101,) and y.dtype == np.int64
    counts = np.bincount(y)
    assert len(counts) == classes and counts.max() - counts.min() <= 1
    assert np.abs(X).max() < 3
    X2, y2 = make(n=101, noise=0.1, seed=5)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n=101, noise=0.1, seed=6)
    assert not np.array_equal(X, X3)


def test_linear_is_separable_and_xor_is_not():
    X, y = D.linear(n=500, noise=1.0, seed=0)  # large noise: mirroring keeps it separable
    assert np.all((X.sum(1) > 0) == (y == 1))
    X, y = D.xor(n=400, noise=0.0, seed=0)
    assert np.all((X[:, 0] * X[:, 1] < 0) == (y == 1))
    assert np.abs(X).min() >= 0.09  # kept away from the axes


def test_moons_without_noise_lie_on_the_half_circles():
    X, y = D.moons(n=40, noise=0.0, seed=0)
    up, low = X[y == 0].astype(np.float64), X[y == 1].astype(np.float64)
    np.testing.assert_allclose(np.hypot(up[:, 0], up[:, 1]), 1, atol=1e-6)
    np.testing.assert_allclose(np.hypot(low[:, 0] - 1, low[:, 1] - 0.5), 1, atol=1e-6)


# -- MNIST with a fake file ---------------------------------------------------------------

def _fake_npz() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
             y_train=np.arange(6, dtype=np.uint8), x_test=np.full((2, 28, 28), 255, np.uint8),
             y_test=np.array([3, 4], np.uint8))
    return buf.getvalue()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A temporary cache folder, and a network that refuses every request."""
    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tmp_path


def test_mnist_offline_without_cache_says_what_to_download(cache):
    with pytest.raises(D.DatasetError) as e:
        D.mnist()
    msg = str(e.value)
    assert D.MNIST_URL in msg and str(cache / "mnist.npz") in msg and "GRAPHNET_CACHE" in msg
    with pytest.raises(D.DatasetError, match="download=False"):
        D.mnist(download=False)
    assert list(cache.iterdir()) == []


def test_mnist_loads_the_cached_file_and_checks_its_hash(cache, monkeypatch):
    data = _fake_npz()
    (cache / "mnist.npz").write_bytes(data)
    with pytest.raises(D.DatasetError, match="sha256"):
        D.mnist()  # not the real file's hash
    monkeypatch.setattr(D, "MNIST_SHA256", hashlib.sha256(data).hexdigest())
    (xtr, ytr), (xte, yte) = D.mnist()
    assert xtr.shape == (6, 28, 28) and xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0 <= xtr.min() and xtr.max() <= 1 and np.all(xte == 1.0)
    np.testing.assert_array_equal(yte, [3, 4])
    (xf, _), _ = D.mnist(flatten=True)
    assert xf.shape == (6, 784)
    (xr, _), _ = D.mnist(normalize=False)
    assert xr.dtype == np.uint8


def test_mnist_download_is_verified_then_cached(cache, monkeypatch):
    data = _fake_npz()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(data))
    with pytest.raises(D.DatasetError, match="expected"):
        D.mnist()  # the served bytes do not match the pinned hash: nothing is kept
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(D, "MNIST_SHA256", hashlib.sha256(data).hexdigest())
    (xtr, _), _ = D.mnist()
    assert xtr.shape == (6, 28, 28)
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]


def test_cache_dir_defaults_to_home(monkeypatch):
    monkeypatch.delenv("GRAPHNET_CACHE", raising=False)
    assert str(D.cache_dir()).endswith(".cache/graphnet")
    assert gn.datasets is D


# -- the Lecture 2 folk-song corpus (package data, no network) -------------------------------

@pytest.mark.lecture2
def test_irish_songs_load_from_package_data():
    songs = D.irish_songs()
    assert len(songs) == 804 and all(s.startswith("X:") for s in songs)
    assert all("\nK:" in s and s == s.strip() for s in songs)
    # two songs have a blank line between their header and tune: kept in one song
    father = next(s for s in songs if "T:Father Dollard's" in s)
    assert "A,C|D2 (3DDD DFAA|" in father
    assert songs[0].splitlines()[:2] == ["X:1", "T:Alexander's"]
    assert D.irish_songs() == songs


@pytest.mark.lecture2
def test_irish_songs_licence_ships_beside_the_corpus():
    from importlib.resources import files
    licence = files("graphnet").joinpath("datafiles", "irish.abc.LICENSE").read_text()
    assert licence.startswith("MIT License") and "Introduction to Deep Learning" in licence
