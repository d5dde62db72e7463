"""Shared fixtures: a fresh graph per test and a seeded RNG."""

import numpy as np
import pytest

import graphnet as gn


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def graph():
    with gn.Graph("test") as g:
        yield g


def run_fn(fn, *arrays, dtype="float32"):
    """Forward of ``fn`` on Parameters made from ``arrays``: the op under test, no grads."""
    with gn.Graph("fwd"):
        ps = [gn.Parameter(np.asarray(a), dtype=dtype) if np.asarray(a).dtype.kind == "f"
              else gn.constant(np.asarray(a)) for a in arrays]
        out = fn(*ps)
    return gn.compile(out)({})


@pytest.fixture
def parallel_kernels(monkeypatch):
    """Lower the size at which the prange twins run, so that tests of them stay small."""
    import graphnet.kernels.jit as jit
    monkeypatch.setattr(jit, "PARALLEL_MIN", 1 << 16)
