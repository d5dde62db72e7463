"""Every error a user can meet says what went wrong, where, and never shows a Numba trace."""

import numpy as np
import pytest

import graphnet as gn


def test_shape_mismatch_names_op_node_and_shapes(graph):
    a = gn.Input((3,), name="a")
    b = gn.Input((4,), name="b")
    with pytest.raises(gn.GraphError) as e:
        gn.add(a, b)
    msg = str(e.value)
    assert "add node 'add'" in msg and "a: (None, 3)" in msg and "b: (None, 4)" in msg


def test_dtype_mismatch(graph):
    a = gn.Parameter(np.ones(2), dtype="float32", name="a")
    b = gn.Parameter(np.ones(2), dtype="float64", name="b")
    with pytest.raises(gn.GraphError, match="dtypes differ"):
        a * b


def test_missing_feed(graph):
    x = gn.Input((2,), name="x")
    with pytest.raises(gn.FeedError, match="'x'.*was not fed"):
        gn.compile(gn.exp(x))({})


def test_wrong_feed_shape(graph):
    x = gn.Input((2,), name="x")
    with pytest.raises(gn.FeedError, match=r"'x' expects shape \(None, 2\), got a feed of shape "
                                           r"\(5, 3\)"):
        gn.compile(gn.exp(x))({x: np.ones((5, 3))})


def test_wrong_feed_dtype_and_casting_rule(graph):
    x = gn.Input((2,), name="x")
    labels = gn.Input((), dtype="int64", name="labels")
    prog = gn.compile(gn.exp(x))
    # float64 and int feeds are cast to a float32 Input
    assert prog({x: np.zeros((1, 2), np.float64)}).dtype == np.float32
    assert prog({x: np.zeros((1, 2), np.int64)}).dtype == np.float32
    # floats into an integer Input would truncate labels: refused
    with pytest.raises(gn.FeedError, match="'labels' expects int64"):
        gn.compile([x, labels])({x: np.zeros((1, 2)), labels: np.array([0.5])})


def test_unknown_feed_name(graph):
    x = gn.Input((2,), name="x")
    with pytest.raises(gn.FeedError, match="unknown feed 'y'"):
        gn.compile(gn.exp(x))({"x": np.ones((1, 2)), "y": 1})


def test_batch_sizes_must_agree(graph):
    x = gn.Input((2,), name="x")
    z = gn.Input((2,), name="z")
    with pytest.raises(gn.FeedError, match="batch size 3"):
        gn.compile(x + z)({x: np.ones((2, 2)), z: np.ones((3, 2))})


def test_kernel_failure_is_wrapped_with_the_node(graph, monkeypatch):
    # a kernel that raises deep inside Numba reaches the user as a GraphError naming the node
    x = gn.Input((2,), name="x")
    y = gn.exp(x)
    prog = gn.compile(y)

    def broken(a):
        raise TypeError("No implementation of function Function(<ufunc 'exp'>) found")

    monkeypatch.setattr(prog.be, "exp", broken)
    with pytest.raises(gn.GraphError, match=r"forward of node 'exp' .*x: \(1, 2\)"):
        prog({x: np.ones((1, 2))})


def test_wrt_must_be_a_leaf(graph):
    x = gn.Input((2,), name="x")
    y = gn.exp(x)
    with pytest.raises(gn.GraphError, match="wrt takes Parameters or Inputs"):
        gn.compile(y * 2.0, wrt=[y])


def test_device_errors(graph):
    x = gn.Input((2,), name="x")
    with pytest.raises(gn.GraphError, match="unknown device 'tpu'"):
        gn.compile(x * 2.0, device="tpu")
