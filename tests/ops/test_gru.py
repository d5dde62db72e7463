"""The fused GRU op: against a NumPy loop (both reset_after forms) and torch.nn.GRU, float64
gradient checks of every input (backprop through time), and shape errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.gru import gru_backward, gru_forward
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture2

B, T, N_IN, U = 2, 3, 2, 3


def sig(z):
    return 1 / (1 + np.exp(-z))


def gru_ref(x, W, U_, b, h0=None, reset_after=True, m=None):
    """Keras 3's GRU step by step: gates z, r, h along the 3u axis; h = z h + (1 - z) h~;
    with a recurrent-dropout mask m every U reads h m, the direct path z h does not."""
    u = U_.shape[0]
    h = np.zeros((x.shape[0], u)) if h0 is None else h0
    if b is None:
        b = np.zeros((2, 3 * u)) if reset_after else np.zeros(3 * u)
    bi, br = (b[0], b[1]) if reset_after else (b, np.zeros(3 * u))
    m = np.ones((x.shape[0], u)) if m is None else m
    hs = []
    for t in range(x.shape[1]):
        xz = x[:, t] @ W + bi
        hm = h * m
        if reset_after:
            rec = hm @ U_ + br
            z = sig(xz[:, :u] + rec[:, :u])
            r = sig(xz[:, u:2 * u] + rec[:, u:2 * u])
            hh = np.tanh(xz[:, 2 * u:] + r * rec[:, 2 * u:])
        else:
            z = sig(xz[:, :u] + hm @ U_[:, :u])
            r = sig(xz[:, u:2 * u] + hm @ U_[:, u:2 * u])
            hh = np.tanh(xz[:, 2 * u:] + (r * hm) @ U_[:, 2 * u:])
        h = z * h + (1 - z) * hh
        hs.append(h)
    return np.stack(hs, 1)


def _data(rng, reset_after=True):
    x = rng.normal(size=(B, T, N_IN))
    W = rng.normal(size=(N_IN, 3 * U)) * 0.7
    U_ = rng.normal(size=(U, 3 * U)) * 0.5
    b = rng.normal(size=(2, 3 * U) if reset_after else 3 * U) * 0.5
    return x, W, U_, b, rng.normal(size=(B, U))


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_forward_matches_numpy(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    fn = lambda *a: gn.gru(*a, reset_after=reset_after)  # noqa: E731
    out = run_fn(fn, x, W, U_, b, h0, dtype="float64")
    assert out.shape == (B, T, U)
    np.testing.assert_allclose(out, gru_ref(x, W, U_, b, h0, reset_after), rtol=1e-12,
                               atol=1e-14)
    out = run_fn(lambda x, W, U_: gn.gru(x, W, U_, reset_after=reset_after), x, W, U_)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, gru_ref(x, W, U_, None, None, reset_after), rtol=1e-5,
                               atol=1e-6)


def test_forward_leaves_the_bias_alone(rng):
    x, W, U_, b, h0 = _data(rng)
    keep = b.copy()
    gru_forward(x, W, U_, b, h0)
    np.testing.assert_array_equal(b, keep)


def test_gru_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, W, U_, b, h0 = _data(rng)
    net = torch.nn.GRU(N_IN, U, batch_first=True).double()

    def torch_order(m):  # Keras' z, r, h blocks -> torch's r, z, n along the gate axis
        return np.concatenate([m[..., U:2 * U], m[..., :U], m[..., 2 * U:]], -1)
    with torch.no_grad():  # torch's n = tanh(W_in x + b_in + r (W_hn h + b_hn)): reset after
        net.weight_ih_l0.copy_(torch.from_numpy(torch_order(W).T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(torch_order(U_).T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(torch_order(b[0])))
        net.bias_hh_l0.copy_(torch.from_numpy(torch_order(b[1])))
        want, _ = net(torch.from_numpy(x), torch.from_numpy(h0)[None])
    out = run_fn(gn.gru, x, W, U_, b, h0, dtype="float64")
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-12, atol=1e-14)
    # and the gradients of a loss through every weight and the input
    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0)[None].requires_grad_()
    y, _ = net(xt, h0t)
    gt = rng.normal(size=(B, T, U))
    (y * torch.from_numpy(gt)).sum().backward()
    with gn.Graph():
        ps = [gn.Parameter(a, dtype="float64") for a in (x, W, U_, b, h0)]
        loss = gn.sum(gn.gru(*ps) * gn.constant(gt))
    _, (dx, dW, dU, db, dh0) = gn.compile(loss, wrt=ps)({})
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dh0, h0t.grad[0].numpy(), rtol=1e-10)
    np.testing.assert_allclose(torch_order(dW).T, net.weight_ih_l0.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(torch_order(dU).T, net.weight_hh_l0.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(torch_order(db[0]), net.bias_ih_l0.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(torch_order(db[1]), net.bias_hh_l0.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradients_of_every_input(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    check_gradients(lambda *a: gn.gru(*a, reset_after=reset_after), x, W, U_, b, h0)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradients_without_bias_or_state_and_other_activations(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    check_gradients(lambda x, W, U_: gn.gru(x, W, U_, reset_after=reset_after), x, W, U_)
    check_gradients(lambda x, W, U_, h0: gn.gru(x, W, U_, h0=h0, activation="linear",
                                                recurrent_activation="tanh",
                                                reset_after=reset_after), x, W, U_, h0)


def test_backward_skips_what_is_not_wanted(rng):
    x, W, U_, b, h0 = _data(rng)
    g = rng.normal(size=(B, T, U))
    _, st = gru_forward(x, W, U_, b, h0)
    full = gru_backward(g, st, W, U_, need_h0=True)
    part = gru_backward(g, st, W, U_, need_dx=False, bias=False)
    assert part[0] is None and part[3] is None and part[4] is None and part[5] is None
    assert full[3].shape == (2, 3 * U)
    for a, p in zip(full[1:3], part[1:3]):
        np.testing.assert_array_equal(a, p)


# -- the recurrent-dropout mask ----------------------------------------------------------

def _mask(rng):
    return rng.uniform(0.2, 1.8, size=(B, U))  # any values: the math is a product with h


@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_forward_matches_numpy(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    m = _mask(rng)
    out = run_fn(lambda *a: gn.gru(*a[:5], reset_after=reset_after, mask=a[5]),
                 x, W, U_, b, h0, m, dtype="float64")
    np.testing.assert_allclose(out, gru_ref(x, W, U_, b, h0, reset_after, m), rtol=1e-12,
                               atol=1e-14)
    out = run_fn(lambda x, W, U_, m: gn.gru(x, W, U_, reset_after=reset_after, mask=m),
                 x, W, U_, m)  # float32, no bias, no h0
    np.testing.assert_allclose(out, gru_ref(x, W, U_, None, None, reset_after, m), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_gradients_of_every_input_and_the_mask(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    m = _mask(rng)
    check_gradients(lambda *a: gn.gru(*a[:5], reset_after=reset_after, mask=a[5]),
                    x, W, U_, b, h0, m)
    check_gradients(lambda x, W, U_, m: gn.gru(x, W, U_, reset_after=reset_after, mask=m),
                    x, W, U_, m)


@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_backward_skips_the_mask_gradient_when_not_wanted(rng, reset_after):
    x, W, U_, b, h0 = _data(rng, reset_after)
    m = _mask(rng)
    g = rng.normal(size=(B, T, U))
    _, st = gru_forward(x, W, U_, b, h0, reset_after=reset_after, mask=m)
    full = gru_backward(g, st, W, U_, reset_after=reset_after, need_h0=True, need_mask=True)
    part = gru_backward(g, st, W, U_, reset_after=reset_after)
    assert full[5].shape == (B, U) and part[5] is None and part[4] is None
    for a, p in zip(full[:4], part[:4]):
        np.testing.assert_array_equal(a, p)
    # a mask of ones is no mask at all
    _, st1 = gru_forward(x, W, U_, b, h0, reset_after=reset_after, mask=np.ones((B, U)))
    _, st0 = gru_forward(x, W, U_, b, h0, reset_after=reset_after)
    for a, p in zip(gru_backward(g, st1, W, U_, reset_after=reset_after, need_h0=True)[:5],
                    gru_backward(g, st0, W, U_, reset_after=reset_after, need_h0=True)[:5]):
        np.testing.assert_allclose(a, p, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_blocks_of_rows_at_once_match_one_block(rng, monkeypatch, reset_after, masked):
    # a long loop runs one block of batch rows per thread (threads.time_loop): forced on
    # tiny shapes (5 rows in uneven blocks), the results are one block's and NumPy's, and
    # the float64 gradients check
    import numba

    from graphnet.kernels import threads
    n = 5
    x = rng.normal(size=(n, T, N_IN))
    W, U_ = rng.normal(size=(N_IN, 3 * U)) * 0.7, rng.normal(size=(U, 3 * U)) * 0.5
    b = rng.normal(size=(2, 3 * U) if reset_after else 3 * U) * 0.5
    h0, g = rng.normal(size=(n, U)), rng.normal(size=(n, T, U))
    m = rng.uniform(0.2, 1.8, size=(n, U)) if masked else None
    kw = dict(reset_after=reset_after)
    one_y, st = gru_forward(x, W, U_, b, h0, mask=m, **kw)
    one = gru_backward(g, st, W, U_, need_h0=True, need_mask=masked, **kw)
    monkeypatch.setattr(threads, "PARALLEL_LOOP", 0)
    monkeypatch.setattr(threads, "MIN_ROWS", 1)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    y, st = gru_forward(x, W, U_, b, h0, mask=m, **kw)
    grads = gru_backward(g, st, W, U_, need_h0=True, need_mask=masked, **kw)
    np.testing.assert_allclose(y, one_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, gru_ref(x, W, U_, b, h0, reset_after, m), rtol=1e-12,
                               atol=1e-14)
    for a, o in zip(grads, one):
        assert (a is None) == (o is None)
        if a is not None:
            np.testing.assert_allclose(a, o, rtol=1e-12, atol=1e-14)
    check_gradients(lambda x, W, U_, b, h0: gn.gru(x, W, U_, b, h0, **kw), x[:3], W, U_, b,
                    h0[:3])


def test_build_errors_name_the_shapes():
    with gn.Graph():
        x = gn.Input((T, N_IN), name="x")
        W = gn.Parameter(np.zeros((N_IN, 3 * U), np.float32), name="W")
        Uk = gn.Parameter(np.zeros((U, 3 * U), np.float32), name="U")
        with pytest.raises(gn.GraphError, match=r"gru node.*must be 3-D"):
            gn.gru(gn.Input((N_IN,)), W, Uk)
        with pytest.raises(gn.GraphError, match=r"recurrent kernel must be \(units, 3 \* "
                                                r"units\), got \(3, 12\)"):
            gn.gru(x, W, gn.Parameter(np.zeros((U, 4 * U), np.float32)))
        with pytest.raises(gn.GraphError, match=r"kernel must be \(2, 9\)"):
            gn.gru(x, gn.Parameter(np.zeros((N_IN, 4 * U), np.float32)), Uk)
        with pytest.raises(gn.GraphError, match=r"bias must have shape \(2, 9\) for 3 units "
                                                r"with reset_after=True, got \(9,\)"):
            gn.gru(x, W, Uk, gn.Parameter(np.zeros(9, np.float32)))
        with pytest.raises(gn.GraphError, match=r"bias must have shape \(9,\)"):
            gn.gru(x, W, Uk, gn.Parameter(np.zeros((2, 9), np.float32)), reset_after=False)
        with pytest.raises(gn.GraphError, match=r"initial state h0 must be \(batch, 3\)"):
            gn.gru(x, W, Uk, h0=gn.Input((4,)))
        with pytest.raises(gn.GraphError, match=r"recurrent mask must be \(batch, 3\)"):
            gn.gru(x, W, Uk, mask=gn.Input((4,)))
        with pytest.raises(gn.GraphError, match="activation 'gelu' is not supported"):
            gn.gru(x, W, Uk, activation="gelu")
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.gru(x, W, Uk, gn.Parameter(np.zeros((2, 9)), dtype="float64"))


def test_run_time_batch_mismatch_is_a_graph_error():
    with gn.Graph():
        x = gn.Input((T, N_IN), name="x")
        W = gn.Parameter(np.zeros((N_IN, 3 * U), np.float32))
        Uk = gn.Parameter(np.zeros((U, 3 * U), np.float32))
        h0 = gn.Parameter(np.zeros((5, U), np.float32), name="h0")
        y = gn.gru(x, W, Uk, h0=h0)
    with pytest.raises(gn.GraphError, match=r"gru.*initial state of shape \(5, 3\) does not "
                                            r"fit a batch of 2"):
        gn.compile(y)({x: np.zeros((2, T, N_IN), np.float32)})
