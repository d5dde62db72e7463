"""The fused recurrent ops: SimpleRNN and LSTM against NumPy loops and PyTorch, float64
gradient checks of every input (backprop through time), and shape errors."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.recurrent import lstm_backward, lstm_forward, rnn_backward
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture2

B, T, N_IN, U = 2, 3, 2, 3  # the tiny shapes of the gradient checks

ACT = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0),
       "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh}


def rnn_ref(x, W, U_, b, h0, act="tanh", m=1.0):
    """h_t = act(x_t W + (h_{t-1} m) U + b), written out step by step."""
    h = np.zeros((x.shape[0], U_.shape[0])) if h0 is None else h0
    hs = []
    for t in range(x.shape[1]):
        h = ACT[act](x[:, t] @ W + (h * m) @ U_ + (0 if b is None else b))
        hs.append(h)
    return np.stack(hs, 1)


def lstm_ref(x, W, U_, b, h0=None, c0=None, m=1.0):
    """Keras' LSTM step by step: gates i, f, c, o in that order along the 4u axis (every
    gate's U reading h_{t-1} m)."""
    u = U_.shape[0]
    sig = ACT["sigmoid"]
    h = np.zeros((x.shape[0], u)) if h0 is None else h0
    c = np.zeros((x.shape[0], u)) if c0 is None else c0
    hs, cs = [], []
    for t in range(x.shape[1]):
        z = x[:, t] @ W + (h * m) @ U_ + (0 if b is None else b)
        i, f, cc, o = sig(z[:, :u]), sig(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), \
            sig(z[:, 3 * u:])
        c = f * c + i * cc
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, 1), np.stack(cs, 1)


def _rnn_data(rng, gates=1):
    x = rng.normal(size=(B, T, N_IN))
    W = rng.normal(size=(N_IN, gates * U)) * 0.7
    U_ = rng.normal(size=(U, gates * U)) * 0.5
    b = rng.normal(size=gates * U) * 0.5
    h0, c0 = rng.normal(size=(B, U)), rng.normal(size=(B, U))
    return x, W, U_, b, h0, c0


# -- forward ------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", list(ACT))
def test_simple_rnn_forward_matches_numpy(rng, activation):
    x, W, U_, b, h0, _ = _rnn_data(rng)
    out = run_fn(lambda *a: gn.simple_rnn(*a, activation=activation), x, W, U_, b, h0)
    assert out.shape == (B, T, U) and out.dtype == np.float32
    f32 = [a.astype(np.float32).astype(np.float64) for a in (x, W, U_, b, h0)]
    np.testing.assert_allclose(out, rnn_ref(*f32, activation), rtol=1e-5, atol=1e-6)
    # without bias and initial state: h_0 = 0
    out = run_fn(lambda x, W, U_: gn.simple_rnn(x, W, U_, activation=activation), x, W, U_,
                 dtype="float64")
    np.testing.assert_allclose(out, rnn_ref(x, W, U_, None, None, activation), rtol=1e-12)


@pytest.mark.parametrize("return_cell", [False, True])
def test_lstm_forward_matches_numpy(rng, return_cell):
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    out = run_fn(lambda *a: gn.lstm(*a, return_cell=return_cell), x, W, U_, b, h0, c0,
                 dtype="float64")
    hs, cs = lstm_ref(x, W, U_, b, h0, c0)
    want = np.concatenate([hs, cs], -1) if return_cell else hs
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    out = run_fn(lambda x, W, U_: gn.lstm(x, W, U_), x, W, U_)  # float32, zero states
    np.testing.assert_allclose(out, lstm_ref(x, W, U_, None)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_simple_rnn_matches_torch(rng, activation):
    torch = pytest.importorskip("torch")
    x, W, U_, b, h0, _ = _rnn_data(rng)
    rnn = torch.nn.RNN(N_IN, U, nonlinearity=activation, batch_first=True).double()
    with torch.no_grad():  # Keras layout -> PyTorch: weight_ih = kernel^T, one bias
        rnn.weight_ih_l0.copy_(torch.from_numpy(W.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(U_.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
        want, _ = rnn(torch.from_numpy(x), torch.from_numpy(h0)[None])
    out = run_fn(lambda *a: gn.simple_rnn(*a, activation=activation), x, W, U_, b, h0,
                 dtype="float64")
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-12, atol=1e-14)


def test_lstm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    net = torch.nn.LSTM(N_IN, U, batch_first=True).double()
    with torch.no_grad():  # the gate orders agree: torch's i, f, g, o is Keras' i, f, c, o
        net.weight_ih_l0.copy_(torch.from_numpy(W.T))
        net.weight_hh_l0.copy_(torch.from_numpy(U_.T))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
        want, (hT, cT) = net(torch.from_numpy(x), (torch.from_numpy(h0)[None],
                                                    torch.from_numpy(c0)[None]))
    out = run_fn(lambda *a: gn.lstm(*a, return_cell=True), x, W, U_, b, h0, c0,
                 dtype="float64")
    np.testing.assert_allclose(out[..., :U], want.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out[:, -1, U:], cT[0].numpy(), rtol=1e-12, atol=1e-14)


# -- gradients (float64 finite differences) -------------------------------------------------

@pytest.mark.parametrize("activation", list(ACT))
def test_simple_rnn_gradients_of_every_input(rng, activation):
    x, W, U_, b, h0, _ = _rnn_data(rng)
    if activation == "relu":  # keep pre-activations away from relu's kink
        z = rnn_ref(x, W, U_, b, h0, "linear")
        assert np.abs(z).min() > 1e-3
    check_gradients(lambda *a: gn.simple_rnn(*a, activation=activation), x, W, U_, b, h0)


def test_simple_rnn_gradients_without_bias_or_state(rng):
    x, W, U_, *_ = _rnn_data(rng)
    check_gradients(lambda x, W, U_: gn.simple_rnn(x, W, U_), x, W, U_)


@pytest.mark.parametrize("return_cell", [False, True])
def test_lstm_gradients_of_every_input(rng, return_cell):
    # with return_cell the upstream gradient also reaches every c_t directly
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    check_gradients(lambda *a: gn.lstm(*a, return_cell=return_cell), x, W, U_, b, h0, c0)


def test_lstm_gradients_one_state_and_other_activations(rng):
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    check_gradients(lambda x, W, U_, c0: gn.lstm(x, W, U_, c0=c0), x, W, U_, c0)
    check_gradients(lambda x, W, U_, h0: gn.lstm(x, W, U_, h0=h0, activation="linear",
                                                 recurrent_activation="tanh"), x, W, U_, h0)


def test_backward_skips_what_is_not_wanted(rng):
    # dx (one GEMM) and dh0 are only formed when asked; the rest does not change
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    g = rng.normal(size=(B, T, U))
    _, st = lstm_forward(x, W, U_, b, h0, c0)
    full = lstm_backward(g, st, W, U_, need_h0=True, need_c0=True)
    part = lstm_backward(g, st, W, U_, need_dx=False, bias=False)
    assert part[0] is None and part[3] is None and part[4] is None and part[5] is None
    for a, p in zip(full[1:3], part[1:3]):
        np.testing.assert_array_equal(a, p)
    # and a program whose x is data never asks for dx
    with gn.Graph():
        xi = gn.Input((T, N_IN), dtype="float64", name="x")
        Wp, Up = gn.Parameter(W, dtype="float64"), gn.Parameter(U_, dtype="float64")
        loss = gn.sum(gn.lstm(xi, Wp, Up) * gn.constant(g))
    _, (dW, dU) = gn.compile(loss, wrt=[Wp, Up])({xi: x})
    _, st = lstm_forward(x, W, U_)
    _, dW_, dU_, *_ = lstm_backward(g, st, W, U_, bias=False)
    np.testing.assert_allclose(dW, dW_, rtol=1e-12)
    np.testing.assert_allclose(dU, dU_, rtol=1e-12)


def test_rnn_backward_dh0_is_the_gradient_through_time(rng):
    # a linear RNN's dh0 is sum_t g_t (U^T)^(t+1): the chain rule through every step
    x, W, U_, b, h0, _ = _rnn_data(rng)
    g = rng.normal(size=(B, T, U))
    from graphnet.kernels.cpu.recurrent import rnn_forward
    _, st = rnn_forward(x, W, U_, b, h0, "linear")
    dh0 = rnn_backward(g, st, W, U_, "linear", need_h0=True)[4]
    want = sum(g[:, t] @ np.linalg.matrix_power(U_.T, t + 1) for t in range(T))
    np.testing.assert_allclose(dh0, want, rtol=1e-12)


# -- the recurrent-dropout mask ----------------------------------------------------------

def _mask(rng):
    return rng.uniform(0.2, 1.8, size=(B, U))  # any values: the math is a product with h


def test_masked_forward_matches_numpy(rng):
    # U reads h_{t-1} m at every step, h_0 included; the input projection is untouched
    x, W, U_, b, h0, _ = _rnn_data(rng)
    m = _mask(rng)
    out = run_fn(lambda *a: gn.simple_rnn(*a[:4], h0=a[4], mask=a[5]), x, W, U_, b, h0, m,
                 dtype="float64")
    np.testing.assert_allclose(out, rnn_ref(x, W, U_, b, h0, "tanh", m), rtol=1e-12)
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    out = run_fn(lambda *a: gn.lstm(*a[:6], return_cell=True, mask=a[6]), x, W, U_, b, h0, c0,
                 m, dtype="float64")
    want = np.concatenate(lstm_ref(x, W, U_, b, h0, c0, m), -1)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    out = run_fn(lambda x, W, U_, m: gn.lstm(x, W, U_, mask=m), x, W, U_, m)  # float32
    np.testing.assert_allclose(out, lstm_ref(x, W, U_, None, m=m)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_h0", [False, True])
def test_masked_gradients_of_every_input_and_the_mask(rng, with_h0):
    x, W, U_, b, h0, c0 = _rnn_data(rng)
    m = _mask(rng)
    if with_h0:
        check_gradients(lambda x, W, U_, b, h0, m: gn.simple_rnn(x, W, U_, b, h0, mask=m),
                        x, W, U_, b, h0, m)
    else:
        check_gradients(lambda x, W, U_, m: gn.simple_rnn(x, W, U_, mask=m), x, W, U_, m)
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    if with_h0:
        check_gradients(lambda *a: gn.lstm(*a[:6], return_cell=True, mask=a[6]),
                        x, W, U_, b, h0, c0, m)
    else:
        check_gradients(lambda x, W, U_, b, m: gn.lstm(x, W, U_, b, mask=m), x, W, U_, b, m)


def test_masked_backward_skips_the_mask_gradient_when_not_wanted(rng):
    x, W, U_, b, h0, c0 = _rnn_data(rng, 4)
    m = _mask(rng)
    g = rng.normal(size=(B, T, U))
    _, st = lstm_forward(x, W, U_, b, h0, c0, mask=m)
    full = lstm_backward(g, st, W, U_, need_h0=True, need_mask=True)
    part = lstm_backward(g, st, W, U_)
    assert full[6].shape == (B, U) and part[6] is None and part[4] is None
    for a, p in zip(full[:4], part[:4]):
        np.testing.assert_array_equal(a, p)
    # a mask of ones is no mask at all
    _, st1 = lstm_forward(x, W, U_, b, h0, c0, mask=np.ones((B, U)))
    _, st0 = lstm_forward(x, W, U_, b, h0, c0)
    for a, p in zip(lstm_backward(g, st1, W, U_, need_h0=True)[:5],
                    lstm_backward(g, st0, W, U_, need_h0=True)[:5]):
        np.testing.assert_allclose(a, p, rtol=1e-13, atol=1e-15)


# -- the parallel time loop ---------------------------------------------------------------

@pytest.mark.parametrize("masked", [False, True])
def test_parallel_loop_matches_the_serial_one(rng, monkeypatch, masked):
    # a long loop splits the batch into one block of rows per thread, each running every
    # step on its own rows: forced on tiny shapes (5 rows in uneven blocks, blocks of one
    # row allowed), the results are the serial loop's and NumPy's, and the float64
    # gradients check
    from graphnet.kernels import threads
    n = 5
    x = rng.normal(size=(n, T, N_IN))
    W, U_ = rng.normal(size=(N_IN, 4 * U)) * 0.7, rng.normal(size=(U, 4 * U)) * 0.5
    b, h0, c0 = rng.normal(size=4 * U) * 0.5, rng.normal(size=(n, U)), rng.normal(size=(n, U))
    m = rng.uniform(0.2, 1.8, size=(n, U)) if masked else None
    g = rng.normal(size=(n, T, 2 * U))
    serial_y, st = lstm_forward(x, W, U_, b, h0, c0, return_cell=True, mask=m)
    serial = lstm_backward(g, st, W, U_, need_h0=True, need_c0=True, need_mask=masked)
    monkeypatch.setattr(threads, "PARALLEL_LOOP", 0)
    monkeypatch.setattr(threads, "MIN_ROWS", 1)
    import numba
    for count in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(count)
        try:
            y, st = lstm_forward(x, W, U_, b, h0, c0, return_cell=True, mask=m)
            grads = lstm_backward(g, st, W, U_, need_h0=True, need_c0=True, need_mask=masked)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        np.testing.assert_allclose(y, serial_y, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(y, np.concatenate(lstm_ref(x, W, U_, b, h0, c0,
                                                              1.0 if m is None else m), -1),
                                   rtol=1e-12, atol=1e-14)
        for a, s in zip(grads, serial):
            assert (a is None) == (s is None)
            if a is not None:
                np.testing.assert_allclose(a, s, rtol=1e-12, atol=1e-14)
    xs, h0s = x[:3], h0[:3]
    check_gradients(lambda x, W, U_, b, h0: gn.lstm(x, W, U_, b, h0), xs, W, U_, b, h0s)


# -- errors -------------------------------------------------------------------------------

def test_build_errors_name_the_shapes():
    with gn.Graph():
        x = gn.Input((T, N_IN), name="x")
        W = gn.Parameter(np.zeros((N_IN, U), np.float32), name="W")
        Uk = gn.Parameter(np.zeros((U, U), np.float32), name="U")
        with pytest.raises(gn.GraphError, match=r"simple_rnn node.*must be 3-D \(batch, "
                                                r"timesteps, features\), got \(None, 2\)"):
            gn.simple_rnn(gn.Input((N_IN,)), W, Uk)
        with pytest.raises(gn.GraphError, match=r"x \(None, 3, 2\) has 2 features, so the "
                                                r"kernel must be \(2, 12\)"):
            gn.lstm(x, W, gn.Parameter(np.zeros((U, 4 * U), np.float32)))
        with pytest.raises(gn.GraphError, match=r"recurrent kernel must be \(units, 4 \* "
                                                r"units\), got \(3, 3\)"):
            gn.lstm(x, W, Uk)
        with pytest.raises(gn.GraphError, match=r"bias must have shape \(3,\)"):
            gn.simple_rnn(x, W, Uk, gn.Parameter(np.zeros(4, np.float32)))
        with pytest.raises(gn.GraphError, match=r"initial state h0 must be \(batch, 3\)"):
            gn.simple_rnn(x, W, Uk, h0=gn.Input((4,)))
        with pytest.raises(gn.GraphError, match=r"recurrent mask must be \(batch, 3\)"):
            gn.simple_rnn(x, W, Uk, mask=gn.Input((4,)))
        with pytest.raises(gn.GraphError, match="activation 'gelu' is not supported"):
            gn.simple_rnn(x, W, Uk, activation="gelu")
        with pytest.raises(gn.GraphError, match="dtypes differ"):
            gn.simple_rnn(x, W, gn.Parameter(np.zeros((U, U)), dtype="float64"))


def test_run_time_batch_mismatch_is_a_graph_error(rng):
    with gn.Graph():
        x = gn.Input((T, N_IN), name="x")
        W = gn.Parameter(np.zeros((N_IN, U), np.float32))
        Uk = gn.Parameter(np.zeros((U, U), np.float32))
        h0 = gn.Parameter(np.zeros((5, U), np.float32), name="h0")
        y = gn.simple_rnn(x, W, Uk, h0=h0)
    with pytest.raises(gn.GraphError, match=r"simple_rnn.*initial state of shape \(5, 3\) "
                                            r"does not fit a batch of 2"):
        gn.compile(y)({x: np.zeros((2, T, N_IN), np.float32)})
