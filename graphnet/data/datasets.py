"""Datasets for the demos: scikit-learn's digits, MNIST (downloaded once, checked, cached) and
small synthetic 2-D sets for drawing decision boundaries; and Lecture 2's Irish folk songs in
ABC notation (shipped with the package).

The array loaders return float32 features and int64 labels, and repeat exactly for a seed.
MNIST is cached in ``~/.cache/graphnet`` (or the folder named by ``GRAPHNET_CACHE``).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

__all__ = ["digits", "mnist", "moons", "spirals", "xor", "linear", "cache_dir", "DatasetError",
           "MNIST_URL", "MNIST_SHA256", "irish_songs"]

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DatasetError(OSError):
    """A dataset that cannot be had: no network and no cached copy, or a corrupt file."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$GRAPHNET_CACHE`` or ``~/.cache/graphnet``."""
    return Path(os.environ.get("GRAPHNET_CACHE") or Path.home() / ".cache" / "graphnet")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, sha256: str) -> None:
    """Fetch ``url`` to ``dest`` through a temporary file, renamed only once its hash matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
        got = _sha256(part)
        if got != sha256:
            raise DatasetError(f"the download of {url} has sha256 {got}, expected {sha256}; "
                               "try again, or fetch the file by hand")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def mnist(normalize: bool = True, flatten: bool = False, download: bool = True) -> Split:
    """MNIST as ``(x_train, y_train), (x_test, y_test)``: 60000 and 10000 28x28 digits.

    Images are float32 in [0, 1] (``normalize=False``: Keras' uint8 0..255), shaped
    (n, 28, 28) or (n, 784) with ``flatten``; labels int64. Downloaded once (Keras' copy,
    checked against its sha256) into :func:`cache_dir`.
    """
    path = cache_dir() / "mnist.npz"
    if not path.exists():
        if not download:
            raise DatasetError(f"MNIST is not cached at {path} and download=False; download "
                               f"{MNIST_URL} to that path")
        try:
            _download(MNIST_URL, path, MNIST_SHA256)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise DatasetError(
                f"could not download MNIST ({e}); on a machine with network access download "
                f"{MNIST_URL} (sha256 {MNIST_SHA256}) and copy it to {path} (set "
                "GRAPHNET_CACHE to use another folder)") from None
    got = _sha256(path)
    if got != MNIST_SHA256:
        raise DatasetError(f"{path} has sha256 {got}, expected {MNIST_SHA256}; delete it to "
                           "download it again")
    with np.load(path) as f:
        parts = [(f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])]
    out = []
    for x, y in parts:
        if normalize:
            x = x.astype(np.float32) / np.float32(255)
        if flatten:
            x = x.reshape(len(x), -1)
        out.append((x, y.astype(np.int64)))
    return out[0], out[1]


def digits(test_size: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits (1797 images, no download) as
    ``(x_train, y_train), (x_test, y_test)``: X float32 (n, 64) in [0, 1], y int64,
    split 80/20 stratified by class with a fixed seed."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError("gn.datasets.digits needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'graphnet[demos]')") from e
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed,
                                          stratify=y)
    return (xtr, ytr), (xte, yte)


# -- synthetic 2-D sets -------------------------------------------------------------------

def _finish(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple:
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def _split(n: int, k: int) -> list[int]:
    # n samples over k classes, the remainder going to the first classes
    return [n // k + (i < n % k) for i in range(k)]


def moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise of std
    ``noise``; class 0 is the upper moon."""
    rng = np.random.default_rng(seed)
    n0, n1 = _split(n, 2)
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.repeat([0, 1], [n0, n1])
    return _finish(X + rng.normal(0, noise, X.shape), y, rng)


def spirals(n: int = 300, classes: int = 2, noise: float = 0.1,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms, each turning 1.5 times out from the origin (radius
    0 to 1), offset by 2 pi / classes; Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, m in enumerate(_split(n, classes)):
        r = np.linspace(0.05, 1, m)
        t = 2 * np.pi * k / classes + 3 * np.pi * r
        X.append(np.stack([r * np.cos(t), r * np.sin(t)], 1))
        y.append(np.full(m, k))
    X = np.concatenate(X)
    return _finish(X + rng.normal(0, noise, X.shape), np.concatenate(y), rng)


def xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants of [-1, 1]^2 (kept 0.1 away from the axes), labelled 1
    where the signs of the two coordinates differ: no line separates the classes. Balanced;
    Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], _split(n, 2))
    mag = rng.uniform(0.1, 1, (n, 2))
    s0 = rng.choice([-1.0, 1.0], n)
    s1 = np.where(y == 1, -s0, s0)  # same signs: class 0; opposite signs: class 1
    X = np.stack([s0 * mag[:, 0], s1 * mag[:, 1]], 1)
    return _finish(X + rng.normal(0, noise, X.shape), y, rng)


def linear(n: int = 200, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs (std ``noise``) around (-1, -1) and (1, 1), always separable by the
    line x0 + x1 = 0: a point on the wrong side is mirrored across it."""
    rng = np.random.default_rng(seed)
    n0, n1 = _split(n, 2)
    y = np.repeat([0, 1], [n0, n1])
    sign = np.where(y == 1, 1.0, -1.0)
    X = sign[:, None] + rng.normal(0, noise, (n, 2))
    w = np.array([1.0, 1.0]) / np.sqrt(2)
    d = X @ w
    wrong = d * sign < 0
    X[wrong] -= 2 * d[wrong, None] * w  # reflect across the boundary
    return _finish(X, y, rng)


# -- text -----------------------------------------------------------------------------------

def irish_songs() -> list[str]:
    """The 804 Irish folk songs in ABC notation of the MIT Introduction to Deep Learning
    Lecture 2 lab ("Music generation with RNNs"), shipped with graphnet (no download).

    The corpus is the lab's ``irish.abc`` (MIT licence, (c) 2023 MIT Introduction to Deep
    Learning, http://introtodeeplearning.com; the full text is beside it in
    ``graphnet/datafiles/irish.abc.LICENSE``). Songs are separated by blank lines and each
    starts with its ``X:`` header; they are returned stripped, in corpus order.
    """
    from importlib.resources import files

    text = files("graphnet").joinpath("datafiles", "irish.abc").read_text(encoding="utf-8")
    songs: list[str] = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        chunk = chunk.strip()
        if not chunk:
            continue
        if songs and not chunk.startswith("X:"):
            songs[-1] += "\n\n" + chunk  # a blank line inside a song, not a new song
        else:
            songs.append(chunk)
    return songs
