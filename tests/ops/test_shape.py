"""Shape ops: reshape, transpose, concatenate, slicing; NumPy references, gradients, errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.core.backend import get_backend
from graphnet.testing import check_gradients, numeric_gradient
from tests.conftest import run_fn

A = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0


def _batched(build, feed, **inputs):
    """Build ``build(*Inputs)`` on batch-shaped Inputs, return (static shape, value on feed)."""
    with gn.Graph():
        xs = [gn.Input(s) for s in inputs.values()]
        out = build(*xs)
        val = gn.compile(out)(dict(zip(xs, feed)))
    return out.shape, val


# -- reshape ------------------------------------------------------------------------------

@pytest.mark.lecture3
@pytest.mark.parametrize("shape,want", [((4, 6), (4, 6)), ((-1,), (24,)), ((6, -1, 2), (6, 2, 2)),
                                        ((24, 1), (24, 1)), (24, (24,))])
def test_reshape_forward_and_gradient(shape, want, rng):
    out = run_fn(lambda x: gn.reshape(x, shape), A)
    assert out.shape == want
    np.testing.assert_array_equal(out, A.astype(np.float32).reshape(want))
    check_gradients(lambda x: gn.reshape(x, shape), rng.normal(size=(2, 3, 4)))


@pytest.mark.lecture3
def test_reshape_method_and_batch_dimension():
    xb = np.random.default_rng(2).normal(size=(3, 8, 8)).astype(np.float32)
    for target, static in [((-1, 64), (None, 64)), ((None, 4, 16), (None, 4, 16)),
                           ((None, -1), (None, 64)), ((-1, 2, 32), (None, 2, 32))]:
        shape, val = _batched(lambda x, t=target: x.reshape(t), [xb], x=(8, 8))
        assert shape == static
        np.testing.assert_array_equal(val, xb.reshape(3, *static[1:]))
    shape, val = _batched(lambda x: x.reshape(-1, 4, 16), [xb], x=(8, 8))
    assert shape == (None, 4, 16)


@pytest.mark.lecture3
@pytest.mark.parametrize("src,target,static", [
    ((4,), (-1, 2, 2), (None, 2, 2)),     # the -1 is the batch
    ((4,), (None, -1), (None, 4)),        # None marks the batch, -1 the rest
    ((4,), (None, 2, -1), (None, 2, 2)),
    ((2, 2), (-1,), (None,)),             # everything flattened: batch x 4 values
    ((4,), (-1, 2), (None, 2)),           # the -1 takes the unknown factor: 2 x batch rows
    ((4,), (2, -1), (2, None)),
    ((3, 4), (-1, 4, 1), (None, 4, 1)),
])
def test_reshape_next_to_the_batch_axis_as_numpy(src, target, static, rng):
    xb = rng.normal(size=(6,) + src)
    want = np.reshape(xb, tuple(len(xb) if d is None else d for d in target))
    with gn.Graph():
        x = gn.Input(src, dtype="float64")
        y = gn.reshape(x, target)
        assert y.shape == static
        R = rng.normal(size=want.shape)
        loss = gn.sum(y * gn.constant(R))
        fwd, prog = gn.compile([y, loss]), gn.compile(loss, wrt=[x])
    yv, _ = fwd({x: xb})
    np.testing.assert_array_equal(yv, want)
    _, (dx,) = prog({x: xb})
    # float64 central differences through the batched feed
    num = numeric_gradient(lambda: float(fwd({x: xb})[1]), xb)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, R.reshape(xb.shape))


@pytest.mark.lecture3
def test_impossible_reshapes_next_to_the_batch_axis_name_both_shapes():
    with gn.Graph():
        x = gn.Input((4,))
        with pytest.raises(gn.GraphError, match=r"reshape node .*\(None, 4\) \(size 4\) "
                           r"to \(-1, 3\): 3 does not divide"):
            gn.reshape(x, (-1, 3))
        with pytest.raises(gn.GraphError, match=r"\(None, 4\) \(size 4\) to \(None, 3\)"):
            gn.reshape(x, (None, 3))
        with pytest.raises(gn.GraphError, match=r"\(None, 4\) to \(-1, -1, 2\).*batch"):
            gn.reshape(x, (-1, -1, 2))
        with pytest.raises(gn.GraphError, match=r"\(None, 4\) to \(None, -1, -1\).*only one"):
            gn.reshape(x, (None, -1, -1))


@pytest.mark.lecture3
def test_reshape_errors_name_both_shapes():
    with gn.Graph():
        p = gn.Parameter(np.zeros((2, 3)))
        with pytest.raises(gn.GraphError, match=r"reshape node .*\(2, 3\).*\(4, 2\)"):
            gn.reshape(p, (4, 2))
        with pytest.raises(gn.GraphError, match=r"\(2, 3\) \(size 6\) to \(4, -1\)"):
            gn.reshape(p, (4, -1))
        with pytest.raises(gn.GraphError, match="only one -1"):
            gn.reshape(p, (-1, -1))
        with pytest.raises(gn.GraphError, match="no batch dimension"):
            gn.reshape(p, (None, 6))
        with pytest.raises(gn.GraphError, match="invalid entries"):
            gn.reshape(p, (2, -3))
        x = gn.Input((8, 8))
        with pytest.raises(gn.GraphError, match=r"\(None, 8, 8\) to \(4, 16\).*batch"):
            gn.reshape(x, (4, 16))
        with pytest.raises(gn.GraphError, match=r"\(None, 8, 8\) \(size 64\) to \(-1, 60\)"):
            gn.reshape(x, (-1, 60))


# -- transpose ----------------------------------------------------------------------------

@pytest.mark.lecture2
@pytest.mark.parametrize("axes", [None, (1, 2, 0), (0, 2, 1), (-1, 0, -2)])
def test_transpose_forward_and_gradient(axes, rng):
    out = run_fn(lambda x: gn.transpose(x, axes), A)
    np.testing.assert_array_equal(out, np.transpose(A.astype(np.float32), axes))
    assert out.flags.c_contiguous
    check_gradients(lambda x: gn.transpose(x, axes), rng.normal(size=(2, 3, 4)))


@pytest.mark.lecture2
def test_T_property_and_batch_dimension_moves(rng):
    a = rng.normal(size=(3, 5))
    np.testing.assert_array_equal(run_fn(lambda x: x.T, a), a.astype(np.float32).T)
    xb = rng.normal(size=(2, 3, 4)).astype(np.float32)
    shape, val = _batched(lambda x: gn.transpose(x, (1, 0, 2)), [xb], x=(3, 4))
    assert shape == (3, None, 4)
    np.testing.assert_array_equal(val, xb.transpose(1, 0, 2))


@pytest.mark.lecture2
@pytest.mark.parametrize("axes", [(0, 1), (0, 0, 1), (0, 1, 3), ("a", 1, 2)])
def test_transpose_bad_axes(axes):
    with gn.Graph():
        p = gn.Parameter(np.zeros((2, 3, 4)))
        with pytest.raises(gn.GraphError, match="transpose node"):
            gn.transpose(p, axes)


# -- concatenate --------------------------------------------------------------------------

@pytest.mark.lecture2
@pytest.mark.parametrize("axis,shapes", [(0, [(2, 3), (1, 3)]), (1, [(2, 3), (2, 1), (2, 2)]),
                                         (-1, [(2, 3, 1), (2, 3, 2)]), (1, [(2, 2, 2), (2, 1, 2)])])
def test_concatenate_forward_and_gradient(axis, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    out = run_fn(lambda *xs: gn.concatenate(xs, axis=axis), *arrays)
    np.testing.assert_allclose(out, np.concatenate([a.astype(np.float32) for a in arrays], axis))
    check_gradients(lambda *xs: gn.concatenate(list(xs), axis=axis), *arrays)


@pytest.mark.lecture2
def test_concatenate_default_axis_and_batch(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    np.testing.assert_allclose(run_fn(lambda x, y: gn.concatenate([x, y]), a, b),
                               np.concatenate([a, b]).astype(np.float32))
    xb, yb = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    shape, val = _batched(lambda x, y: gn.concatenate([x, y], axis=1), [xb, yb], x=(3,), y=(2,))
    assert shape == (None, 5)
    np.testing.assert_allclose(val, np.concatenate([xb, yb], 1).astype(np.float32))
    shape, val = _batched(lambda x, y: gn.concatenate([x, y], axis=0), [xb, xb], x=(3,), y=(3,))
    assert shape == (None, 3) and val.shape == (8, 3)


@pytest.mark.lecture2
def test_concatenate_errors():
    with gn.Graph():
        a, b = gn.Parameter(np.zeros((2, 3))), gn.Parameter(np.zeros((2, 4)))
        with pytest.raises(gn.GraphError, match=r"concatenate node .*differ on axis 1"):
            gn.concatenate([a, b], axis=0)
        with pytest.raises(gn.GraphError, match="one rank"):
            gn.concatenate([a, gn.Parameter(np.zeros(3))])
        with pytest.raises(gn.GraphError, match="out of range"):
            gn.concatenate([a, b], axis=2)
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.concatenate([a, gn.Parameter(np.zeros((2, 4)), dtype="float64")], axis=1)
        with pytest.raises(gn.GraphError, match="differ on axis 0"):
            gn.concatenate([gn.Input((3,)), gn.Parameter(np.zeros((2, 4)))], axis=1)


# -- slicing ------------------------------------------------------------------------------

INDEX = [1, -1, (slice(None), 2), (0, slice(1, None), slice(None, None, 2)),
         (slice(None, None, -1), Ellipsis, -2), (Ellipsis, slice(1, 3)), (1, 2, 3),
         (slice(-2, None), 0, slice(3, 0, -2)), Ellipsis]


@pytest.mark.lecture2
@pytest.mark.parametrize("index", INDEX, ids=str)
def test_slice_forward_and_gradient(index, rng):
    out = run_fn(lambda x: x[index], A)
    want = A.astype(np.float32)[index]
    assert out.shape == np.shape(want)
    np.testing.assert_array_equal(out, want)
    check_gradients(lambda x: x[index], rng.normal(size=(2, 3, 4)))


@pytest.mark.lecture2
def test_slice_is_the_getitem_op_and_follows_the_batch(rng):
    with gn.Graph():
        x = gn.Input((5, 3))
        t = x[:, -1]
        assert t.op_name == "slice" and t.shape == (None, 3)
        assert gn.getitem(x, (slice(0, 2), 1, 0)).shape == (None,)
        assert x[0].shape == (5, 3)
        xb = rng.normal(size=(4, 5, 3)).astype(np.float32)
        np.testing.assert_array_equal(gn.compile(t)({x: xb}), xb[:, -1])


@pytest.mark.lecture2
def test_slice_gradient_of_overlapping_reads(rng):
    # two slices read overlapping entries: their scattered gradients must add up
    check_gradients(lambda x: x[1:] * x[:-1] + x[::2].sum(), rng.normal(size=(5,)))


@pytest.mark.lecture2
@pytest.mark.parametrize("index,msg", [(3, "out of range for axis 0"), ((0, 5), "axis 1"),
                                       ((0, 0, 0, 0), "too many"), (None, "newaxis"),
                                       ([0, 1], "basic indexing"), ((..., ...), "single"),
                                       (slice(0, 2, 0), "step"), (slice(0.5, 2), "int")])
def test_slice_errors(index, msg):
    with gn.Graph():
        p = gn.Parameter(np.zeros((3, 4, 2)))
        with pytest.raises(gn.GraphError, match=f"slice node .*{msg}"):
            p[index]


def test_kernels_keep_zero_d_arrays_and_return_c_order():
    cpu = get_backend("cpu")
    assert cpu.transpose(np.array(2.0), ()).shape == ()
    assert cpu.getitem(A, (1, 2, 3)).shape == ()
    assert cpu.reshape(np.array([2.0]), ()).shape == ()
    parts = cpu.split(np.arange(12.0).reshape(3, 4), (1, 3), 1)
    assert [p.shape for p in parts] == [(3, 1), (3, 3)]
    assert all(p.flags.c_contiguous for p in parts)
    g = cpu.getitem_grad(np.ones((2, 2)), (3, 4), (slice(None, None, 2), slice(1, 3)))
    np.testing.assert_array_equal(g, [[0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 0]])


def test_reshape_fold_batch_moves_factors_in_and_out_of_the_batch(rng):
    with gn.Graph():
        x = gn.Input((3, 4))
        folded = gn.reshape(x, (-1, 4), fold_batch=True)
        back = gn.reshape(folded, (-1, 3, 4), fold_batch=True)
    assert folded.shape == (None, 4) and back.shape == (None, 3, 4)
    xb = rng.normal(size=(2, 3, 4)).astype(np.float32)
    f, b = gn.compile([folded, back])({x: xb})
    np.testing.assert_array_equal(f, xb.reshape(6, 4))
    np.testing.assert_array_equal(b, xb)
    with gn.Graph(), pytest.raises(gn.GraphError, match="must take or give whole factors"):
        gn.reshape(gn.Input((3, 4)), (-1, 5), fold_batch=True)
    with gn.Graph():  # without fold_batch a lone -1 folds in as NumPy's does...
        assert gn.reshape(gn.Input((3, 4)), (-1, 4)).shape == (None, 4)
    with gn.Graph(), pytest.raises(gn.GraphError, match="cannot reshape"):
        gn.reshape(gn.Input((4,)), (-1, 3, 4))   # ...but only fold_batch gives factors back
    check_gradients(lambda a: gn.reshape(a, (-1, 2), fold_batch=True) * 1.5,
                    rng.normal(size=(2, 3, 2)))
