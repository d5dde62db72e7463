"""Every CUDA kernel against its CPU twin on tiny shapes (simulated unless GRAPHNET_REAL_GPU=1).

Each test runs the CPU kernel on NumPy arrays and the CUDA kernel of the same name on device
copies, and compares the results on the host: float32 to a few ulps, the dropout mask and
argmax indices exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda.parity import F32, check, f32

pytestmark = pytest.mark.cuda


@pytest.fixture
def r():
    return np.random.default_rng(0)


# -- elementwise --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "power"])
def test_binary_broadcasting(K, C, r, name):
    for sa, sb in [((2, 3), (2, 3)), ((2, 1, 3), (4, 1)), ((2, 3), ())]:
        check(K, C, name, f32(r, *sa, lo=0.5, hi=2), f32(r, *sb, lo=0.5, hi=2))


def test_unary_and_backward_rules(K, C, r):
    a, b, g = f32(r, 2, 3, lo=0.5, hi=2), f32(r, 3, lo=0.5, hi=2), f32(r, 2, 3)
    for name in ["neg", "exp", "log", "sqrt", "absolute"]:
        check(K, C, name, a)
    check(K, C, "absolute", f32(r, 2, 3))
    check(K, C, "div_grad_b", g, a, b)
    y = C.power(a, b)
    check(K, C, "power_grad_a", g, a, b, y)
    check(K, C, "power_grad_b", g, np.array([[0.5, -1, 0], [2, 1, 3]], np.float32), y)
    check(K, C, "sqrt_grad", g, a)
    check(K, C, "abs_grad", g, np.array([[0.5, -1, 0], [2, -1, 3]], np.float32))


def test_float64_and_scalars(K, C, r):
    a = r.normal(size=(2, 3))
    check(K, C, "mul", a, r.normal(size=(3,)))
    out = K.to_host(K.add(K.asarray(a.astype(np.float32)), 2.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a.astype(np.float32) + 2)


# -- reductions ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["threads", "block"])
def test_sum_and_max_every_axis_set(K, C, r, mode):
    x = f32(r, 2, 3, 4)
    for axes in [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]:
        np.testing.assert_allclose(K.to_host(K.sum(K.asarray(x), axes, mode=mode)),
                                   C.sum(x, axes), **F32)
        v, i = K.max(K.asarray(x), axes, mode=mode)
        v2, i2 = C.max(x, axes)
        np.testing.assert_array_equal(K.to_host(v), v2)
        np.testing.assert_array_equal(K.to_host(i), i2)


def test_max_ties_pick_the_first(K, C):
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    for mode in ["threads", "block"]:
        _, i = K.max(K.asarray(x), (1,), mode=mode)
        np.testing.assert_array_equal(K.to_host(i), [1, 0])


def test_reduction_backward_rules(K, C, r):
    x = f32(r, 2, 3, 4)
    check(K, C, "sum_to", x, (3, 1))
    check(K, C, "sum_to", x, ())
    check(K, C, "mean", x, (0, 2))
    check(K, C, "broadcast_to", f32(r, 3), (2, 3, 4), (0, 2), 0.125)
    _, arg = C.max(x, (0, 2))
    check(K, C, "max_grad", f32(r, 3), arg, (2, 3, 4), (0, 2), exact=True)


def test_running_sum(K, C):
    # fit's running loss: a float32 loss added, weighted, into a float64 total
    totals = {}
    for B in (K, C):
        total = B.zeros((1,), np.float64)
        for loss, size in ((0.75, 4), (1.5, 3)):
            B.running_sum(total, B.asarray(np.array(loss, np.float32)), size)
        totals[B] = B.to_host(total)
    np.testing.assert_array_equal(totals[K], totals[C])
    np.testing.assert_allclose(totals[C], [0.75 * 4 + 1.5 * 3])


# -- shapes -------------------------------------------------------------------------------

def test_shape_kernels(K, C, r):
    x = f32(r, 2, 3, 4)
    check(K, C, "reshape", x, (6, -1), exact=True)
    check(K, C, "transpose", x, (2, 0, 1), exact=True)
    check(K, C, "concatenate", [x, f32(r, 2, 1, 4)], 1, exact=True)
    check(K, C, "split", x, (1, 2), 1, exact=True)
    for key in [(1,), (slice(None), slice(None, None, -2)), (Ellipsis, 2), (0, slice(1, 3))]:
        check(K, C, "getitem", x, key, exact=True)
        g = C.getitem(x, key)
        check(K, C, "getitem_grad", g, (2, 3, 4), key, exact=True)


# -- matrix products and dense ------------------------------------------------------------

def test_matmul_forms(K, C, r):
    a, b = f32(r, 3, 5), f32(r, 5, 4)
    check(K, C, "matmul", a, b)
    check(K, C, "matmul", a.T.copy(), b, trans_a=True)
    check(K, C, "matmul", a, b.T.copy(), trans_b=True)
    check(K, C, "matmul", f32(r, 2, 3, 5), b)                  # folded rows
    check(K, C, "matmul", f32(r, 2, 1, 3, 5), f32(r, 3, 5, 2))  # broadcast batch
    check(K, C, "matmul", f32(r, 2, 3, 5), f32(r, 2, 4, 5), trans_b=True)
    check(K, C, "matmul_at_sum", f32(r, 2, 3, 5), f32(r, 2, 3, 4))
    check(K, C, "matmul", r.normal(size=(3, 5)), r.normal(size=(5, 2)), tol=dict(rtol=1e-12))


@pytest.mark.parametrize("kind", [None, "relu", "gelu"])
def test_dense_and_its_gradient(K, C, r, kind):
    x, W, b = f32(r, 2, 3, 5), f32(r, 5, 4), f32(r, 4)
    keep = kind == "gelu"
    y, z = check(K, C, "dense", x, W, b if kind else None, kind, 0.0, keep)
    g = f32(r, 2, 3, 4)
    check(K, C, "dense_grad", g, x, W, z, y, kind, 0.0, kind is not None)


def test_activations(K, C, r):
    x = f32(r, 2, 5, lo=-3, hi=3)
    g = f32(r, 2, 5)
    for kind in C.activation.__globals__["CODES"]:
        y = check(K, C, "activation", x, kind, 0.2)
        check(K, C, "activation_grad", g, x, y, kind, 0.2)


# -- softmax, losses, dropout -------------------------------------------------------------

@pytest.mark.parametrize("log", [False, True])
def test_softmax_any_axis(K, C, r, log):
    x, g = f32(r, 2, 3, 4, lo=-5, hi=5), f32(r, 2, 3, 4)
    for axis in (-1, 1, 0):
        y = check(K, C, "softmax", x, axis, log)
        check(K, C, "softmax_grad", g, y, axis, log)


def test_losses(K, C, r):
    p, t = f32(r, 2, 3, lo=0.05, hi=0.95), f32(r, 2, 3, lo=0, hi=1)
    g = np.array(0.5, np.float32)
    for kind in ["mse", "mae", "sigmoid_cross_entropy", "binary_cross_entropy", "huber"]:
        check(K, C, "pointwise_loss", p, t, kind, 1e-7)
        check(K, C, "pointwise_loss_grad", g, p, t, kind, 1e-7)
    # huber's eps is delta: 0.3 puts elements on both sides of |p - t| = delta
    check(K, C, "pointwise_loss", p, t, "huber", 0.3)
    check(K, C, "pointwise_loss_grad", g, p, t, "huber", 0.3)
    z = f32(r, 3, 4, lo=-3, hi=3)
    labels = np.array([0, 3, 1])
    _, lse = check(K, C, "softmax_cross_entropy", z, labels)
    check(K, C, "softmax_cross_entropy_grad", g, z, labels, lse)
    probs = C.softmax(f32(r, 3, 4), -1)
    _, lse = check(K, C, "softmax_cross_entropy", z, probs)
    check(K, C, "softmax_cross_entropy_grad", g, z, probs, lse)
    with pytest.raises(ValueError, match="out of range"):
        K.softmax_cross_entropy(K.asarray(z), K.asarray(np.array([0, 4, 1])))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the hash wraps
def test_dropout_mask_matches_bit_for_bit(K, C, r):
    x = f32(r, 4, 5)
    y = check(K, C, "dropout", x, 0.5, 1234, exact=True)
    assert 0 < (y == 0).sum() < x.size
    check(K, C, "dropout_grad", x, 0.5, 1234, exact=True)


# -- optimizers (in place) ----------------------------------------------------------------

def _inplace(K, C, name, arrays, *rest, **kw):
    # the entry points take lists: two parameters here (each array and its double)
    host = [None if a is None else [a.copy(), 2 * a] for a in arrays]
    dev = [None if h is None else [K.asarray(x) for x in h] for h in host]
    getattr(C, name)(*[[None, None] if h is None else h for h in host], *rest, **kw)
    getattr(K, name)(*[[None, None] if d is None else d for d in dev], *rest, **kw)
    for h, d in zip(host, dev):
        for hk, dk in zip(h or (), d or ()):
            np.testing.assert_allclose(K.to_host(dk), hk, **F32)


def test_optimizer_updates(K, C, r):
    p, g, s = f32(r, 2, 3), f32(r, 2, 3), f32(r, 2, 3)
    _inplace(K, C, "sgd_update", [p, g, s], 0.1, 0.9, True, [0.5, 0.7], 0.3, [0.01, 0.02])
    _inplace(K, C, "sgd_update", [p, g, None], 0.1, 0.0, False)
    v = np.abs(f32(r, 2, 3))
    _inplace(K, C, "adam_update", [p, g, s, v, v.copy()], 0.01, 0.9, 0.999, 1e-7, [1.0, 0.5],
             np.inf, [0.001, 0.0])
    _inplace(K, C, "adam_update", [p, g, s, v, None], 0.01, 0.9, 0.999, 1e-7)
    _inplace(K, C, "rms_update", [p, g, v, s, s * 0.1], 0.01, 0.9, 0.1, 0.5, 1e-7)
    _inplace(K, C, "rms_update", [p, g, v, None, None], 0.01, 1.0, 1.0, 0.0, 1e-7)
    got = K.grad_sq_norms(K.asarray(g), 0.25)
    np.testing.assert_allclose(got, C.grad_sq_norms(g, 0.25), rtol=1e-6)


def test_one_launch_updates_up_to_eight_parameters(K, C, r, monkeypatch):
    # ten float32 parameters (one empty) and two float64 ones: three launches, each update
    # as the CPU's, every parameter with its own scale and decay
    shapes = [(2, 3), (4,), (1,), (3, 3), (0,), (2, 2), (5,), (1, 2), (3,), (6,), (2,), (2, 2)]
    dts = [np.float32] * 10 + [np.float64] * 2
    host = [[r.normal(size=s).astype(d) for s, d in zip(shapes, dts)] for _ in range(4)]
    host[3] = [np.abs(v) for v in host[3]]
    scales = list(np.linspace(0.5, 1.0, len(shapes)))
    decays = list(np.linspace(0.0, 0.01, len(shapes)))
    dev = [[K.asarray(a) for a in kind] for kind in host]
    launches = []
    kernel_type = type(K.optim._adam)
    launch = kernel_type.__getitem__
    monkeypatch.setattr(kernel_type, "__getitem__",
                        lambda k, cfg: launches.append(cfg) or launch(k, cfg))
    for _ in range(2):  # the second step reuses the first's groups
        p, g, m, v = dev
        K.adam_update(p, g, m, v, [None] * len(p), 0.01, 0.9, 0.999, 1e-7, scales, np.inf,
                      decays)
        p, g, m, v = host
        C.adam_update(p, g, m, v, [None] * len(p), 0.01, 0.9, 0.999, 1e-7, scales, np.inf,
                      decays)
    assert len(launches) == 6
    for hk, dk in zip(host, dev):
        for h, d in zip(hk, dk):
            np.testing.assert_allclose(K.to_host(d), h, **F32)


def test_adam_row_form(K, C, r):
    # rows 1 and 3 of a (5, 3) table named (row 3 twice), the others zero; AMSGrad and not
    ids, vals = np.array([[3, 1], [3, 0]]), f32(r, 2, 2, 3)
    for ams in (True, False):
        host = [f32(r, 5, 3), f32(r, 5, 3), np.abs(f32(r, 5, 3))]
        host.append(host[2] + 0.5 if ams else None)
        dev = [None if a is None else K.asarray(a) for a in host]
        args = (0.01, 0.9, 0.999, 1e-7, 0.5, 0.3, 0.001)
        C.adam_rows_update(host[0], ids, vals, *host[1:], *args)
        K.adam_rows_update(dev[0], K.asarray(ids), K.asarray(vals), *dev[1:], *args)
        for h, d in zip(host, dev):
            if h is not None:
                np.testing.assert_allclose(K.to_host(d), h, **F32)
    # src: id i adds values row src[i] (a mean's gradient, one row per bag)
    bags, src = f32(r, 2, 3), np.array([1, 0, 1, 1])
    host = [f32(r, 5, 3), f32(r, 5, 3), np.abs(f32(r, 5, 3)), None]
    dev = [None if a is None else K.asarray(a) for a in host]
    C.adam_rows_update(host[0], ids, bags, *host[1:], *args, src=src)
    K.adam_rows_update(dev[0], K.asarray(ids), K.asarray(bags), *dev[1:], *args,
                       src=K.asarray(src))
    for h, d in zip(host[:3], dev[:3]):
        np.testing.assert_allclose(K.to_host(d), h, **F32)


# -- the backend's array helpers ----------------------------------------------------------

def test_array_helpers_and_coverage(K, C):
    assert K.name == "cuda" and K.badge == "cuda.jit"
    z = K.zeros((2, 3), np.float32)
    assert K.to_host(z).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert K.empty((2,), np.float64).dtype == np.float64
    a = K.asarray(np.arange(3), np.float32)
    assert K.to_host(a).dtype == np.float32 and K.asarray(a) is a
    assert K.to_host(K.asarray(a, np.float64)).dtype == np.float64
    assert K.is_finite(a) and not K.is_finite(K.asarray(np.array([1.0, np.inf])))
    # every CPU kernel has a CUDA twin; a missing one would raise MissingKernel by name
    assert K.missing() == []
    assert not hasattr(K, "no_such_kernel")


def test_split_k_gemm_matches(K, C, r, monkeypatch):
    # a long inner dimension and one output tile: the k range runs as slices summed after
    import importlib

    mm = importlib.import_module("graphnet.kernels.cuda.matmul")  # the module, not the kernel
    monkeypatch.setattr(mm, "SPLIT_MIN_K", 8)  # slices this small on the GPU too
    assert mm.split_k(1, 64) > 1
    a, g = f32(r, 64, 3), f32(r, 64, 5)
    check(K, C, "matmul", a.T.copy(), g)
    check(K, C, "matmul", a, g, trans_a=True)
    check(K, C, "matmul_at_sum", f32(r, 2, 40, 3), f32(r, 2, 40, 2))


def test_block_sum_split_across_blocks(K, C, r):
    # a full sum of many elements runs on several blocks, then adds their shares
    x = f32(r, 5, 40)
    for mode in ("block", None):
        np.testing.assert_allclose(K.to_host(K.sum(K.asarray(x), (0, 1), mode=mode)),
                                   C.sum(x, (0, 1)), rtol=1e-5)
    np.testing.assert_allclose(K.to_host(K.sum(K.asarray(x), (1,), mode="block")),
                               C.sum(x, (1,)), rtol=1e-5)
    np.testing.assert_allclose(K.to_host(K.mean(K.asarray(x), (0, 1))), C.mean(x, (0, 1)),
                               rtol=1e-5)
