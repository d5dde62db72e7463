"""Keras 3 as an optional reference (torch backend): ``keras = keras_or_skip()`` in a test.

KERAS_BACKEND must be set before keras is first imported; the tests that compare with Keras
skip where the ``keras`` package (or torch, its backend here) is not installed.
"""

import os

import numpy as np
import pytest


def keras_or_skip():
    """The keras module on the torch backend, or a pytest skip."""
    os.environ["KERAS_BACKEND"] = "torch"
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was imported on the {keras.backend.backend()} backend before")
    return keras


def to_numpy(t) -> np.ndarray:
    """A Keras (torch backend) output as a NumPy array."""
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
