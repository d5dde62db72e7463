"""The executor: pruning, fan-out, wrt inputs, feeds by name, idempotent backward, numerics."""

import re

import numpy as np
import pytest

import graphnet as gn


def test_prunes_to_what_the_outputs_need(graph):
    x = gn.Input((2,), name="x")
    unused = gn.Input((2,), name="unused")
    y = gn.exp(x)
    _ = gn.log(unused)
    prog = gn.compile(y)
    assert [t.name for t in prog.order] == ["x", "exp"]
    np.testing.assert_allclose(prog({x: np.zeros((1, 2))}), np.ones((1, 2)))


def test_several_outputs_and_feeds_by_name(graph):
    x = gn.Input((2,), name="x")
    a, b = x * 2.0, x + 1.0
    out_a, out_b = gn.compile([a, b])({"x": np.ones((3, 2))})
    assert out_a.shape == (3, 2) and np.all(out_a == 2) and np.all(out_b == 2)


def test_gradients_with_respect_to_inputs(graph):
    # saliency: d/dx of sum(w * x^2) = 2 w x
    x = gn.Input((3,), name="x", dtype="float64")
    w = gn.Parameter(np.array([1.0, 2.0, 3.0]), dtype="float64")
    loss = gn.sum(w * x * x)
    _, (dx, dw) = gn.compile(loss, wrt=[x, w])({x: np.ones((2, 3))})
    np.testing.assert_allclose(dx, 2 * np.array([[1, 2, 3], [1, 2, 3]]))
    np.testing.assert_allclose(dw, [2, 2, 2])


def test_backward_is_idempotent_and_results_are_not_overwritten(graph):
    x = gn.Input((3,), name="x")
    w = gn.Parameter(np.array([1.0, -2.0, 0.5]))
    sq = (x * w) * (x * w)
    prog = gn.compile([gn.sum(sq), sq], wrt=[w])
    feed = {x: np.arange(6, dtype=np.float32).reshape(2, 3)}
    (_, v1), (g1,) = prog(feed)
    (_, v2), (g2,) = prog(feed)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(v1, v2)
    (_, v3), _ = prog({x: np.zeros((2, 3), np.float32)})
    assert np.all(v3 == 0) and not np.all(v1 == 0), "earlier results are copies"


def test_only_the_nodes_between_wrt_and_loss_run_backward(graph):
    x = gn.Input((2,), name="x")
    w = gn.Parameter(np.ones(2))
    frozen = gn.exp(x)  # depends on no parameter: no backward step
    loss = gn.sum(frozen * w)
    prog = gn.compile(loss, wrt=[w])
    assert [s[0].name for s in prog._bwd] == ["sum", "mul"]


def test_unrelated_wrt_is_an_error(graph):
    x = gn.Input((2,), name="x")
    w = gn.Parameter(np.ones(2), name="w")
    with pytest.raises(gn.GraphError, match="does not depend on 'w'"):
        gn.compile(gn.exp(x), wrt=[w])


def test_check_numerics_names_the_first_bad_node(graph):
    x = gn.Input((2,), name="x")
    y = gn.exp(gn.log(x) * 2.0)
    prog = gn.compile(y, check_numerics=True)
    with pytest.raises(gn.NumericsError, match="'log'"):
        prog({x: np.array([[1.0, -1.0]])})
    assert np.isnan(gn.compile(y)({x: np.array([[1.0, -1.0]])})).any(), "off by default"


def test_check_numerics_in_backward(graph):
    w = gn.Parameter(np.array([0.0, 1.0]))
    y = gn.sum(gn.sqrt(w))  # d sqrt at 0 is infinite
    with pytest.raises(gn.NumericsError, match="gradient"):
        gn.compile(y, wrt=[w], check_numerics=True)({})


def test_float64_graph(graph):
    w = gn.Parameter(np.array([1.0, 2.0]), dtype="float64")
    v, (g,) = gn.compile(gn.sum(w * w), wrt=[w])({})
    assert v.dtype == np.float64 and g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_scalar_input_keeps_its_shape(graph):
    # a 0-d feed must stay 0-d (np.ascontiguousarray would make it shape (1,))
    t = gn.Input((), batch=False, name="temperature")
    w = gn.Parameter(np.array(2.0), dtype="float32")
    v, (g,) = gn.compile(t * w, wrt=[w])({t: np.float32(3.0)})
    assert v.shape == () and float(v) == 6.0 and g.shape == () and float(g) == 3.0


def test_wrt_with_auxiliary_outputs(rng):
    # [loss, aux...]: the first output is differentiated, the others come from the same pass
    x0 = rng.normal(size=(3, 2))
    with gn.Graph():
        x = gn.Parameter(x0, dtype="float64")
        part_a, part_b = gn.sum(x * x), gn.sum(x)
        loss = part_a + part_b
    (value, a, b), (dx,) = gn.compile([loss, part_a, part_b], wrt=[x])({})
    assert np.isclose(value, (x0 ** 2).sum() + x0.sum())
    assert np.isclose(a, (x0 ** 2).sum()) and np.isclose(b, x0.sum())
    np.testing.assert_allclose(dx, 2 * x0 + 1)


@pytest.mark.parametrize("shape,batched", [((3,), False), ((2, 2), False), ((), True),
                                           ((2,), True)])
def test_a_non_scalar_loss_is_refused(graph, shape, batched):
    # as PyTorch's "grad can be implicitly created only for scalar outputs": no silent sum
    w = gn.Parameter(np.ones(shape), name="w")
    y = gn.Input(shape, name="x") * w if batched else gn.exp(w)
    want = re.escape(str(((None,) if batched else ()) + shape))
    with pytest.raises(gn.GraphError,
                       match=r"differentiated output '(mul|exp)' \(op (mul|exp)\) has shape "
                       f"{want}, not a scalar.*gn\\.sum"):
        gn.compile(y, wrt=[w])
    with pytest.raises(gn.GraphError, match="not a scalar"):
        gn.compile([y, gn.sum(y)], wrt=[w])  # the first output is the differentiated one
    # reduced explicitly it works, and the tensor itself can ride along as an aux output
    (value, aux), (g,) = gn.compile([gn.sum(y), y], wrt=[w])(
        {"x": np.ones((2,) + shape)} if batched else {})
    assert np.shape(aux) == ((2,) if batched else ()) + shape
    assert g.shape == shape


def test_a_loss_of_shape_ones_counts_as_a_scalar(graph):
    # one element, as PyTorch's numel() == 1: a keepdims reduction is a scalar loss
    w = gn.Parameter(np.array([[1.0, 2.0]]), dtype="float64")
    loss = gn.sum(w * w, axis=1, keepdims=True)
    assert loss.shape == (1, 1)
    v, (g,) = gn.compile(loss, wrt=[w])({})
    np.testing.assert_array_equal(g, [[2.0, 4.0]])
