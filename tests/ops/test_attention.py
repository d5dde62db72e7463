"""Fused scaled dot-product attention: against NumPy written out here and PyTorch's
scaled_dot_product_attention, finite differences for q, k, v (causal too), the composed
matmul/softmax graph, and shape errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.attention import attention as attention_kernel
from graphnet.kernels.cpu.attention import attention_grad
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture2


def ref(q, k, v, causal=False, scale=None):
    """softmax(scale q k^T) v with the causal mask (key j > query i) written out."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("...id,...jd->...ij", q, k) * scale
    if causal:
        i, j = np.indices(s.shape[-2:])
        s = np.where(j > i, -np.inf, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    return np.einsum("...ij,...jd->...id", a, v), a


def qkv(rng, lead=(2,), tq=3, tk=3, d=4, dv=2):
    return (rng.normal(size=lead + (tq, d)), rng.normal(size=lead + (tk, d)),
            rng.normal(size=lead + (tk, dv)))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lead,tq,tk", [((2,), 3, 3), ((2, 3), 4, 5), ((2, 2), 4, 2)])
def test_forward_matches_numpy(rng, causal, lead, tq, tk):
    q, k, v = qkv(rng, lead, tq, tk)
    out = run_fn(lambda q, k, v: gn.attention(q, k, v, causal=causal), q, k, v)
    assert out.shape == lead + (tq, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref(q, k, v, causal)[0], rtol=2e-5, atol=2e-6)
    y, a = attention_kernel(q, k, v, causal, 0.3)
    yr, ar = ref(q, k, v, causal, 0.3)
    np.testing.assert_allclose(a, ar, rtol=1e-12)
    np.testing.assert_allclose(y, yr, rtol=1e-12)
    if causal:  # query 0 sees key 0 only
        np.testing.assert_array_equal(a[..., 0, 1:], 0)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(rng, causal):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(rng, (2, 3), 4, 5, d=6, dv=3)
    out = run_fn(lambda q, k, v: gn.attention(q, k, v, causal=causal), q, k, v, dtype="float64")
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), is_causal=causal)
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-10, atol=1e-12)


def test_backward_formulas_against_numpy(rng):
    # dV = A^T g, dA = g V^T, dS = A (dA - rowsum(dA A)), dQ = s dS K, dK = s dS^T Q
    q, k, v = qkv(rng, (3,), 4, 5)
    g = rng.normal(size=(3, 4, 2))
    _, a = attention_kernel(q, k, v, True)
    dq, dk, dv = attention_grad(g, q, k, v, a)
    s = 1 / np.sqrt(4)
    dA = g @ np.swapaxes(v, -1, -2)
    dS = a * (dA - (dA * a).sum(-1, keepdims=True))
    np.testing.assert_allclose(dv, np.swapaxes(a, -1, -2) @ g, rtol=1e-12)
    np.testing.assert_allclose(dq, s * dS @ k, rtol=1e-12)
    np.testing.assert_allclose(dk, s * np.swapaxes(dS, -1, -2) @ q, rtol=1e-12)
    only_k = attention_grad(g, q, k, v, a, need=(False, True, False))
    assert only_k[0] is None and only_k[2] is None
    np.testing.assert_allclose(only_k[1], dk, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_gradients(rng, causal):
    q, k, v = qkv(rng, (2,), 3, 4, d=3)
    check_gradients(lambda q, k, v: gn.attention(q, k, v, causal=causal), q, k, v)


def test_gradients_with_heads_and_scale(rng):
    q, k, v = qkv(rng, (2, 2), 3, 2, d=2, dv=3)
    check_gradients(lambda q, k, v: gn.attention(q, k, v, causal=True, scale=0.7), q, k, v)


def test_one_node_matches_composed_ops(rng):
    # the fused node equals matmul -> scale -> mask -> softmax -> matmul, values and gradients
    q, k, v = qkv(rng, (2, 2), 4, 4)
    mask = np.where(np.triu(np.ones((4, 4)), 1) > 0, -1e9, 0.0)
    with gn.Graph() as g:
        qp, kp, vp = (gn.Parameter(a, dtype="float64") for a in (q, k, v))
        fused = gn.attention(qp, kp, vp, causal=True)
        scores = gn.matmul(qp, gn.transpose(kp, (0, 1, 3, 2))) * (1 / np.sqrt(4))
        composed = gn.matmul(gn.softmax(scores + gn.constant(mask, dtype="float64")), vp)
        lf, lc = gn.sum(fused * fused), gn.sum(composed * composed)
    assert sum(t.op_name == "attention" for t in g.nodes) == 1
    a, c = gn.compile([fused, composed])({})
    np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
    _, gf = gn.compile(lf, wrt=[qp, kp, vp])({})
    _, gc = gn.compile(lc, wrt=[qp, kp, vp])({})
    for x, y in zip(gf, gc):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_only_wanted_gradients(rng):
    # with wrt=[k] only, backward skips dQ and dV and dK still matches finite differences
    q, k, v = qkv(rng, (2,), 3, 3)
    check_gradients(lambda q, k, v: gn.attention(q, k, v), q, k, v, wrt=[1])


@pytest.mark.usefixtures("parallel_kernels")
@pytest.mark.parametrize("causal", [False, True])
def test_many_slices_run_the_parallel_loops(rng, causal):
    # 16 slices x 16 x 16 x (8 + 8) multiply-adds: the prange twins, one dA scratch per thread
    q, k, v = (a.astype(np.float32) for a in qkv(rng, (4, 4), 16, 16, d=8, dv=8))
    y, a = attention_kernel(q, k, v, causal)
    yr, ar = ref(q.astype(np.float64), k, v, causal)
    np.testing.assert_allclose(y, yr, rtol=1e-4, atol=1e-5)
    g = np.ones_like(y)
    dq, dk, dv = attention_grad(g, q, k, v, a)
    np.testing.assert_allclose(dv, np.swapaxes(ar, -1, -2) @ g, rtol=1e-4, atol=1e-5)
    dq64, dk64, _ = attention_grad(g.astype(np.float64), q.astype(np.float64),
                                   k.astype(np.float64), v.astype(np.float64), ar)
    np.testing.assert_allclose(dq, dq64, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dk, dk64, rtol=1e-3, atol=1e-5)


# -- heads last: (..., time, heads, depth), the projection's own layout -------------------

def _heads_last(x):
    return np.swapaxes(x, -2, -3)  # (..., H, T, d) <-> (..., T, H, d)


@pytest.mark.parametrize("causal", [False, True])
def test_heads_last_matches_numpy_per_head(rng, causal):
    q, k, v = qkv(rng, (2, 3), 4, 5)  # (batch 2, heads 3, T, d), heads first
    ql, kl, vl = (_heads_last(a) for a in (q, k, v))
    out = run_fn(lambda q, k, v: gn.attention(q, k, v, causal=causal, heads_last=True),
                 ql, kl, vl, dtype="float64")
    yr, ar = ref(q, k, v, causal)
    assert out.shape == (2, 4, 3, 2)
    np.testing.assert_allclose(out, _heads_last(yr), rtol=1e-12, atol=1e-14)
    y, a = attention_kernel(ql, kl, vl, causal, 0.3, heads_last=True)
    yr, ar = ref(q, k, v, causal, 0.3)
    np.testing.assert_allclose(a, ar, rtol=1e-12)  # the weights stay heads first
    np.testing.assert_allclose(y, _heads_last(yr), rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_heads_last_gradients(rng, causal):
    q, k, v = (_heads_last(a) for a in qkv(rng, (2, 2), 3, 4))
    check_gradients(lambda q, k, v: gn.attention(q, k, v, causal=causal, heads_last=True),
                    q, k, v)


@pytest.mark.usefixtures("parallel_kernels")
def test_heads_last_parallel_loops_match_heads_first(rng):
    # 16 slices: the prange twins read the strided (b, :, h, :) views
    q, k, v = (a.astype(np.float32) for a in qkv(rng, (4, 4), 16, 16, d=8, dv=8))
    y, a = attention_kernel(q, k, v, True)
    yl, al = attention_kernel(*(_heads_last(x) for x in (q, k, v)), True, heads_last=True)
    np.testing.assert_allclose(yl, _heads_last(y), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(al, a, rtol=1e-6, atol=1e-7)
    g = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    want = attention_grad(g, q, k, v, a)
    got = attention_grad(_heads_last(g), *(_heads_last(x) for x in (q, k, v)), al,
                         heads_last=True)
    for w, d in zip(want, got):
        np.testing.assert_allclose(d, _heads_last(w), rtol=1e-5, atol=1e-6)


def test_heads_last_build_errors():
    with gn.Graph():
        q = gn.Input((3, 2, 4), name="q")  # (batch, T, heads, depth)
        k, v = gn.Input((5, 2, 4), name="k"), gn.Input((5, 2, 6), name="v")
        assert gn.attention(q, k, v, heads_last=True).shape == (None, 3, 2, 6)
        with pytest.raises(gn.GraphError, match="same number of heads"):
            gn.attention(q, gn.Input((5, 3, 4)), gn.Input((5, 3, 6)), heads_last=True)
        with pytest.raises(gn.GraphError, match="at least 3, with heads last"):
            gn.attention(gn.Input((4,)), gn.Input((4,)), gn.Input((4,)), heads_last=True)
        with pytest.raises(gn.GraphError, match=r"same length.*got 5 and 4"):
            gn.attention(q, k, gn.Input((4, 2, 6)), heads_last=True)


def test_batch_dimension_and_build_errors():
    with gn.Graph():
        q = gn.Input((3, 4), name="q")
        k = gn.Input((5, 4), name="k")
        v = gn.Input((5, 2), name="v")
        assert gn.attention(q, k, v).shape == (None, 3, 2)
        with pytest.raises(gn.GraphError, match=r"attention node.*queries \(None, 3, 4\) "
                                                r"have depth 4 but keys \(None, 5, 3\) have "
                                                r"depth 3"):
            gn.attention(q, gn.Input((5, 3)), v)
        with pytest.raises(gn.GraphError, match=r"same length.*got 5 and 4"):
            gn.attention(q, k, gn.Input((4, 2)))
        with pytest.raises(gn.GraphError, match="leading"):
            gn.attention(q, k, gn.Input((2, 5, 2), batch=False))
        with pytest.raises(gn.GraphError, match="one rank"):
            gn.attention(q, k, gn.Input((2, 5, 2)))
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.attention(q, k, gn.Input((5, 2), dtype="float64"))
        with pytest.raises(gn.GraphError, match="scale must be positive"):
            gn.attention(q, k, v, scale=0.0)
