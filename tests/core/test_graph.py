"""Graph building: names, scopes, shapes, leaves, initializers, networkx view."""

import networkx as nx
import numpy as np
import pytest

import graphnet as gn


def test_names_are_unique_and_scoped(graph):
    x = gn.Input((3,), name="x")
    a = x + x
    b = x + x
    with graph.name_scope("dense"):
        c = a * b
    with graph.name_scope("dense"):
        d = c * c
    assert (a.name, b.name) == ("add", "add_1")
    assert c.name == "dense/mul" and c.scope == "dense"
    assert d.name == "dense_1/mul" and d.scope == "dense_1"


def test_shapes_and_dtypes_are_inferred_at_build_time(graph):
    x = gn.Input((4,), name="x")
    w = gn.Parameter(shape=(4,), init="ones", name="w")
    y = x * w
    assert x.shape == (None, 4) and y.shape == (None, 4)
    assert y.dtype == np.float32
    labels = gn.Input((), dtype="int64", name="y")
    assert labels.shape == (None,) and labels.dtype == np.int64


def test_default_graph_exists():
    x = gn.Input((2,))
    assert x.graph is gn.Graph.current()


def test_to_networkx_mirrors_the_graph(graph):
    x = gn.Input((2,), name="x")
    w = gn.Parameter(np.ones(2), name="w")
    y = gn.exp(x * w)
    G = graph.to_networkx()
    assert set(G.nodes) == {"x", "w", "mul", "exp"}
    assert set(G.edges) == {("x", "mul"), ("w", "mul"), ("mul", "exp")}
    assert G.nodes["exp"]["tensor"] is y and G.nodes["mul"]["op"] == "mul"
    assert nx.is_directed_acyclic_graph(G)


def test_tensors_from_another_graph_are_refused():
    with gn.Graph("a"):
        x = gn.Input((2,), name="x")
    with gn.Graph("b"), pytest.raises(gn.GraphError, match="belongs to graph 'a'"):
        x + 1.0


def test_numbers_become_constants_of_the_neighbours_dtype(graph):
    w = gn.Parameter(np.ones(3), dtype="float64")
    y = 2 * w + 1
    assert y.dtype == np.float64
    assert gn.compile(y)({}).tolist() == [3.0, 3.0, 3.0]


@pytest.mark.parametrize("init", ["zeros", "ones", "normal", "uniform", "glorot_uniform",
                                  "he_normal", "orthogonal", "identity"])
def test_initializers(init):
    w = gn.initialize(init, (6, 4), seed=1)
    assert w.shape == (6, 4) and w.dtype == np.float32
    assert np.array_equal(w, gn.initialize(init, (6, 4), seed=1)), "seeded draws repeat"
    if init == "glorot_uniform":
        assert np.abs(w).max() <= np.sqrt(6 / 10)
    if init == "orthogonal":
        np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)
    if init == "identity":
        np.testing.assert_array_equal(w, np.eye(6, 4))
    if init == "he_normal":
        big = gn.initialize(init, (400, 300), seed=2)
        assert abs(big.std() - np.sqrt(2 / 400)) < 0.005


def test_unknown_initializer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown initializer 'gloriot'"):
        gn.initialize("gloriot", (2, 2))


def test_parameter_value_assignment_checks_shape(graph):
    w = gn.Parameter(np.zeros(3))
    w.value = np.ones(3)
    assert w.value.tolist() == [1, 1, 1]
    with pytest.raises(gn.GraphError, match=r"shape \(3,\)"):
        w.value = np.ones(4)


def test_parameters_are_c_contiguous_whatever_the_initializer_or_value():
    # an orthogonal Q comes back column-major; kernels and the optimizer read C arrays in place
    with gn.Graph("layout"):
        q = gn.Parameter(shape=(16, 64), init="orthogonal")
        f = gn.Parameter(np.asfortranarray(np.ones((3, 5), np.float32)))
        lstm = gn.layers.LSTM(8)
        lstm(gn.Input((4, 3)))
    assert q.value.flags.c_contiguous and f.value.flags.c_contiguous
    assert all(w.value.flags.c_contiguous for w in lstm.weights)
