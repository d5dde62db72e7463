"""layer_norm and batch_norm: NumPy written out, PyTorch, float64 gradient checks, the moving
statistics (updated only in training, never read by backward), errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = [pytest.mark.lecture3]


def np_layer_norm(x, gamma, beta, axes, eps=1e-3):
    m = x.mean(axis=axes, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axes, keepdims=True)
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    return (x - m) / np.sqrt(v + eps) * gamma.reshape(shape) + beta.reshape(shape)


def np_batch_norm(x, gamma, beta, mean, var, eps=1e-3):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


LN_CASES = [((4, 5), -1), ((2, 3, 4), -1), ((2, 3, 4), (1, 2)), ((2, 3, 4), 1),
            ((2, 3, 2, 2), (1, 3))]


def _axes(axis, ndim):
    return tuple(sorted(a % ndim for a in ((axis,) if isinstance(axis, int) else axis)))


@pytest.mark.parametrize("shape, axis", LN_CASES)
def test_layer_norm_forward_matches_numpy(shape, axis, rng):
    axes = _axes(axis, len(shape))
    x = rng.normal(loc=1.0, scale=2.0, size=shape).astype(np.float32)
    pshape = tuple(shape[a] for a in axes)
    gamma, beta = rng.normal(size=pshape), rng.normal(size=pshape)
    y = run_fn(lambda t, g, b: gn.layer_norm(t, g, b, axis=axis), x, gamma, beta)
    assert y.shape == shape and y.dtype == np.float32
    np.testing.assert_allclose(y, np_layer_norm(x.astype(np.float64), gamma, beta, axes),
                               rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("shape, axis", LN_CASES)
def test_layer_norm_gradients(shape, axis, rng):
    axes = _axes(axis, len(shape))
    pshape = tuple(shape[a] for a in axes)
    check_gradients(lambda t, g, b: gn.layer_norm(t, g, b, axis=axis, epsilon=1e-2),
                    rng.normal(size=shape), rng.normal(size=pshape), rng.normal(size=pshape))


def _bn_arrays(rng, shape, dtype=np.float64):
    C = shape[-1]
    return (rng.normal(loc=0.5, scale=2.0, size=shape).astype(dtype),
            rng.normal(size=C).astype(dtype), rng.normal(size=C).astype(dtype),
            rng.normal(size=C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype))


def _bn_program(x, gamma, beta, mm, mv, training, momentum=0.9, frozen=False):
    with gn.Graph("bn"):
        xi = gn.Input(x.shape[1:], dtype=x.dtype, name="x")
        ps = [gn.Parameter(a, dtype=a.dtype, name=n, trainable=n in ("gamma", "beta"))
              for a, n in [(gamma, "gamma"), (beta, "beta"), (mm, "mm"), (mv, "mv")]]
        y = gn.batch_norm(xi, *ps, momentum=momentum, frozen=frozen)
    return xi, ps, gn.compile(y, training=training)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 3, 4), (3, 5, 2)])
def test_batch_norm_training_and_inference_match_numpy(shape, rng):
    x, gamma, beta, mm, mv = _bn_arrays(rng, shape, np.float32)
    axes = tuple(range(len(shape) - 1))
    bm, bv = x.mean(axis=axes, dtype=np.float64), x.var(axis=axes, dtype=np.float64)
    xi, ps, train = _bn_program(x, gamma, beta, mm, mv, training=True)
    np.testing.assert_allclose(train({xi: x}), np_batch_norm(x, gamma, beta, bm, bv),
                               rtol=1e-5, atol=2e-5)
    # Keras' update with the biased batch variance, written into the Parameters
    np.testing.assert_allclose(ps[2].value, 0.9 * mm + 0.1 * bm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ps[3].value, 0.9 * mv + 0.1 * bv, rtol=1e-5, atol=1e-6)
    infer = gn.compile(train.outputs[0])
    before = [p.value.copy() for p in ps]
    np.testing.assert_allclose(infer({xi: x}), np_batch_norm(x, gamma, beta, before[2],
                                                             before[3]), rtol=1e-5, atol=2e-5)
    for p, b in zip(ps, before):  # inference changes nothing
        np.testing.assert_array_equal(p.value, b)


def test_batch_norm_frozen_uses_moving_statistics_in_training(rng):
    x, gamma, beta, mm, mv = _bn_arrays(rng, (5, 3), np.float32)
    xi, ps, train = _bn_program(x, gamma, beta, mm, mv, training=True, frozen=True)
    np.testing.assert_allclose(train({xi: x}), np_batch_norm(x, gamma, beta, mm, mv),
                               rtol=1e-5, atol=2e-5)
    np.testing.assert_array_equal(ps[2].value, mm)
    np.testing.assert_array_equal(ps[3].value, mv)


@pytest.mark.parametrize("shape", [(5, 3), (2, 2, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(shape, training, rng):
    # the moving statistics move on every training call; backward never reads them
    check_gradients(lambda t, g, b, m, v: gn.batch_norm(t, g, b, m, v, momentum=0.5),
                    *_bn_arrays(rng, shape), wrt=[0, 1, 2], training=training)


def test_batch_norm_second_run_gives_the_same_loss_and_gradients(rng):
    x, gamma, beta, mm, mv = _bn_arrays(rng, (4, 3))
    with gn.Graph():
        xi = gn.Input((3,), dtype="float64")
        g, b = gn.Parameter(gamma, dtype="float64"), gn.Parameter(beta, dtype="float64")
        m = gn.Parameter(mm, dtype="float64", trainable=False)
        v = gn.Parameter(mv, dtype="float64", trainable=False)
        loss = gn.sum(gn.batch_norm(xi, g, b, m, v) ** 3.0)
    prog = gn.compile(loss, wrt=[xi, g, b], training=True)
    (l1, g1), mm1 = prog({xi: x}), m.value.copy()
    (l2, g2) = prog({xi: x})
    assert l1 == l2 and all(np.array_equal(a, c) for a, c in zip(g1, g2))
    assert not np.array_equal(m.value, mm1)  # but the moving mean moved again


def test_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    gamma, beta = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    want = F.layer_norm(torch.tensor(x), (5,), torch.tensor(gamma), torch.tensor(beta),
                        eps=1e-3).numpy()
    np.testing.assert_allclose(run_fn(gn.layer_norm, x, gamma, beta), want, rtol=1e-5,
                               atol=1e-5)
    # batch norm on (N, H, W, C) is torch's on (N, C, H, W); momentum maps to 1 - momentum
    x4 = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
    rm, rv = torch.zeros(5), torch.ones(5)
    xi, ps, train = _bn_program(x4, gamma, beta, np.zeros(5, np.float32),
                                np.ones(5, np.float32), training=True, momentum=0.9)
    t4 = torch.tensor(x4).permute(0, 3, 1, 2)
    for _ in range(3):
        y = train({xi: x4})
        want = F.batch_norm(t4, rm, rv, torch.tensor(gamma), torch.tensor(beta), training=True,
                            momentum=0.1, eps=1e-3).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ps[2].value, rm.numpy(), rtol=1e-5, atol=1e-6)
    # torch keeps the unbiased variance (n / (n - 1) of Keras' biased one) in running_var
    n, decay = x4.size // 5, 0.9 ** 3
    np.testing.assert_allclose(decay + (ps[3].value - decay) * n / (n - 1), rv.numpy(),
                               rtol=1e-5)
    y = gn.compile(train.outputs[0])({xi: x4})
    want = F.batch_norm(t4, rm, rv * (n - 1) / n + decay / n, torch.tensor(gamma),
                        torch.tensor(beta), training=False, eps=1e-3)
    np.testing.assert_allclose(y, want.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("which", ["layer", "batch"])
def test_gradients_against_pytorch(which, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.normal(size=(4, 3, 5))
    gamma, beta, mm, mv = (rng.normal(size=5), rng.normal(size=5), np.zeros(5), np.ones(5))
    R = rng.normal(size=x.shape)
    with gn.Graph():
        ps = [gn.Parameter(a, dtype="float64") for a in (x, gamma, beta)]
        stats = [gn.Parameter(a, dtype="float64", trainable=False) for a in (mm, mv)]
        y = (gn.layer_norm(*ps) if which == "layer" else gn.batch_norm(*ps, *stats))
        loss = gn.sum(y * gn.constant(R))
    _, grads = gn.compile(loss, wrt=ps, training=True)({})
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    if which == "layer":
        ty = F.layer_norm(tx, (5,), tg, tb, eps=1e-3)
    else:  # (N, T, C) as torch's (N, C, T)
        ty = F.batch_norm(tx.permute(0, 2, 1), torch.zeros(5, dtype=torch.float64),
                          torch.ones(5, dtype=torch.float64), tg, tb, training=True,
                          eps=1e-3).permute(0, 2, 1)
    (ty * torch.tensor(R)).sum().backward()
    for got, t in zip(grads, (tx, tg, tb)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_errors_are_graph_errors():
    with gn.Graph():
        x = gn.Input((3, 4))
        g4 = gn.Parameter(np.ones(4, np.float32))
        g3 = gn.Parameter(np.ones(3, np.float32))
        with pytest.raises(gn.GraphError, match="out of range"):
            gn.layer_norm(x, g4, g4, axis=3)
        with pytest.raises(gn.GraphError, match="shape"):
            gn.layer_norm(x, g3, g3)
        with pytest.raises(gn.GraphError, match="batch axis"):
            gn.layer_norm(x, g4, g4, axis=(0, 2))
        with pytest.raises(gn.GraphError, match="shape"):
            gn.batch_norm(x, g3, g3, g3, g3)
        with pytest.raises(gn.GraphError, match="Parameter"):
            gn.batch_norm(x, g4, g4, gn.constant(np.ones(4, np.float32)), g4)
        with pytest.raises(gn.GraphError, match="momentum"):
            gn.batch_norm(x, g4, g4, g4, g4, momentum=1.5)
        with pytest.raises(gn.GraphError, match="channels"):
            gn.batch_norm(gn.Input(()), g4, g4, g4, g4)
