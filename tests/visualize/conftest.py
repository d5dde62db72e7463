"""Small graphs shared by the drawing tests."""

import shutil

import numpy as np
import pytest

import graphnet as gn

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def mlp_graph():
    """x -> dense(matmul, add, exp) -> dense_1(matmul) -> mul -> sum, built from gn ops."""
    with gn.Graph("mlp") as g:
        x = gn.Input((4,), name="x")
        with g.name_scope("dense"):
            W = gn.Parameter(shape=(4, 3), name="kernel", seed=0)
            b = gn.Parameter(np.zeros(3, np.float32), name="bias")
            h = gn.exp(gn.matmul(x, W) + b)
        with g.name_scope("dense"):
            W2 = gn.Parameter(shape=(3, 2), name="kernel", seed=1)
            o = gn.matmul(h, W2)
        loss = gn.sum(o * o)
    return g, x, loss


@pytest.fixture
def mlp():
    return mlp_graph()
