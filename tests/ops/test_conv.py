"""conv2d and conv2d_transpose: forward against naive NumPy loops and PyTorch, float64 gradient
checks (strides, padding, dilation, activations), the im2col/col2im adjoint pair, errors."""

import math

import numpy as np
import pytest

import graphnet as gn
from graphnet.kernels.cpu.conv import col2im, im2col
from graphnet.testing import check_gradients
from tests.conftest import run_fn

pytestmark = pytest.mark.lecture3


# -- independent references -----------------------------------------------------------------

def tf_pads(n, k, s, d, padding):
    """TensorFlow's padding of one axis: (before, after)."""
    if padding == "valid":
        return 0, 0
    ek = (k - 1) * d + 1
    total = max((math.ceil(n / s) - 1) * s + ek - n, 0)
    return total // 2, total - total // 2


def ref_conv2d(x, k, b, s, d, padding, act=lambda z: z):
    """Naive loops over the zero-padded input xp:
    out[oh, ow] = sum over i, j of xp[oh s + i d, ow s + j d] @ k[i, j]."""
    (sh, sw), (dh, dw) = s, d
    kh, kw = k.shape[:2]
    ph, pw = tf_pads(x.shape[1], kh, sh, dh, padding), tf_pads(x.shape[2], kw, sw, dw, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for r in range(oh):
        for c in range(ow):
            for i in range(kh):
                for j in range(kw):
                    out[:, r, c] += xp[:, r * sh + i * dh, c * sw + j * dw] @ k[i, j]
    return act(out + (0 if b is None else b))


def ref_conv2d_transpose(x, k, b, s, d, padding):
    """Scatter every input pixel through the kernel (k: (kh, kw, out, in)) onto a canvas, then
    crop Keras' output: valid H s + max(k_eff - s, 0) rows, same H s rows after (k_eff - s)//2."""
    (sh, sw), (dh, dw) = s, d
    kh, kw = k.shape[:2]
    sizes, before = [], []
    for n, kk, st, dd in ((x.shape[1], kh, sh, dh), (x.shape[2], kw, sw, dw)):
        ek = (kk - 1) * dd + 1
        if padding == "valid":
            sizes.append(n * st + max(ek - st, 0))
            before.append(0)
        else:
            sizes.append(n * st)
            before.append(max(ek - st, 0) // 2)
    canvas = np.zeros((x.shape[0], (x.shape[1] - 1) * sh + (kh - 1) * dh + 1 + sizes[0],
                       (x.shape[2] - 1) * sw + (kw - 1) * dw + 1 + sizes[1], k.shape[2]))
    for r in range(x.shape[1]):
        for c in range(x.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    canvas[:, r * sh + i * dh, c * sw + j * dw] += x[:, r, c] @ k[i, j].T
    out = canvas[:, before[0]:before[0] + sizes[0], before[1]:before[1] + sizes[1]]
    return out + (0 if b is None else b)


# (input H, W), (kh, kw), strides, dilation, padding: square and rectangular, TF's asymmetric
# "same" (even kernels with strides), dilation, and a stride larger than the kernel
CASES = [
    ((6, 7), (3, 3), (1, 1), (1, 1), "valid"),
    ((6, 7), (3, 3), (1, 1), (1, 1), "same"),
    ((7, 6), (3, 2), (2, 2), (1, 1), "same"),
    ((8, 8), (4, 4), (2, 3), (1, 1), "same"),
    ((7, 7), (3, 3), (1, 1), (2, 2), "same"),
    ((9, 8), (3, 2), (2, 1), (2, 1), "valid"),
    ((5, 5), (1, 1), (1, 1), (1, 1), "valid"),
    ((7, 6), (2, 2), (3, 3), (1, 1), "valid"),
]


def _case_data(rng, hw, ksize, cin=2, cout=3, transpose=False):
    x = rng.normal(size=(2, *hw, cin))
    k = rng.normal(size=(*ksize, cout, cin) if transpose else (*ksize, cin, cout))
    return x, k / np.sqrt(k[..., 0].size), rng.normal(size=cout)


@pytest.mark.parametrize("hw,ksize,strides,dilation,padding", CASES)
def test_conv2d_forward_matches_numpy_loops(hw, ksize, strides, dilation, padding, rng):
    x, k, b = _case_data(rng, hw, ksize)
    out = run_fn(lambda x, k, b: gn.conv2d(x, k, b, strides=strides, padding=padding,
                                           dilation_rate=dilation, activation="relu"), x, k, b)
    x32, k32, b32 = (a.astype(np.float32).astype(np.float64) for a in (x, k, b))
    want = ref_conv2d(x32, k32, b32, strides, dilation, padding, lambda z: np.maximum(z, 0))
    assert out.dtype == np.float32 and out.shape == want.shape
    if padding == "same":
        assert out.shape[1:3] == tuple(math.ceil(n / s) for n, s in zip(hw, strides))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw,ksize,strides,dilation,padding", CASES)
def test_conv2d_transpose_forward_matches_numpy_loops(hw, ksize, strides, dilation, padding,
                                                      rng):
    x, k, b = _case_data(rng, hw, ksize, transpose=True)
    out = run_fn(lambda x, k, b: gn.conv2d_transpose(x, k, b, strides=strides, padding=padding,
                                                     dilation_rate=dilation), x, k, b)
    x32, k32, b32 = (a.astype(np.float32).astype(np.float64) for a in (x, k, b))
    want = ref_conv2d_transpose(x32, k32, b32, strides, dilation, padding)
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw,ksize,strides,dilation,padding", CASES)
def test_against_pytorch(hw, ksize, strides, dilation, padding, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, k, b = _case_data(rng, hw, ksize)
    # conv2d: NCHW, weight (out, in, kh, kw); TF's asymmetric "same" as an explicit F.pad
    (pt, pb), (pl, pr) = (tf_pads(n, kk, s, d, padding)
                          for n, kk, s, d in zip(hw, ksize, strides, dilation))
    xt = F.pad(torch.tensor(x).permute(0, 3, 1, 2), (pl, pr, pt, pb))
    want = F.conv2d(xt, torch.tensor(k).permute(3, 2, 0, 1), torch.tensor(b), stride=strides,
                    dilation=dilation).permute(0, 2, 3, 1).numpy()
    got = run_fn(lambda x, k, b: gn.conv2d(x, k, b, strides=strides, padding=padding,
                                           dilation_rate=dilation), x, k, b, dtype="float64")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # conv_transpose2d: weight (in, out, kh, kw); its unpadded output, cropped (or extended
    # with bias-only rows) to Keras' size
    xT, kT, bT = _case_data(rng, hw, ksize, transpose=True)
    full = F.conv_transpose2d(torch.tensor(xT).permute(0, 3, 1, 2),
                              torch.tensor(kT).permute(3, 2, 0, 1), stride=strides,
                              dilation=dilation).permute(0, 2, 3, 1).numpy()
    got = run_fn(lambda x, k, b: gn.conv2d_transpose(x, k, b, strides=strides, padding=padding,
                                                     dilation_rate=dilation),
                 xT, kT, bT, dtype="float64")
    canvas = np.zeros((2, full.shape[1] + got.shape[1], full.shape[2] + got.shape[2], 3))
    canvas[:, :full.shape[1], :full.shape[2]] = full
    # "same": the conv that the transpose undoes pads k_eff - s in all, half of it before
    top, left = (max((kk - 1) * d + 1 - s, 0) // 2 if padding == "same" else 0
                 for kk, s, d in zip(ksize, strides, dilation))
    want = canvas[:, top:top + got.shape[1], left:left + got.shape[2]] + bT
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# -- gradients ------------------------------------------------------------------------------

GRAD_CASES = [
    ((5, 6), (3, 3), (1, 1), (1, 1), "valid", "tanh"),
    ((5, 6), (3, 3), (2, 2), (1, 1), "same", "gelu"),
    ((6, 5), (2, 2), (2, 2), (1, 1), "same", None),
    ((7, 7), (3, 3), (1, 1), (2, 2), "same", "elu"),
    ((7, 6), (3, 2), (2, 1), (2, 1), "valid", "sigmoid"),
    ((5, 4), (1, 1), (1, 1), (1, 1), "valid", "tanh"),  # 1x1: the dense kernels on x's rows
]


@pytest.mark.parametrize("hw,ksize,strides,dilation,padding,act", GRAD_CASES)
def test_conv2d_gradients(hw, ksize, strides, dilation, padding, act, rng):
    x, k, b = _case_data(rng, hw, ksize)
    kw = dict(strides=strides, padding=padding, dilation_rate=dilation, activation=act)
    check_gradients(lambda x, k, b: gn.conv2d(x, k, b, **kw), x, k, b)


@pytest.mark.parametrize("hw,ksize,strides,dilation,padding,act", GRAD_CASES)
def test_conv2d_transpose_gradients(hw, ksize, strides, dilation, padding, act, rng):
    x, k, b = _case_data(rng, (3, 4), ksize, transpose=True)
    kw = dict(strides=strides, padding=padding, dilation_rate=dilation, activation=act)
    check_gradients(lambda x, k, b: gn.conv2d_transpose(x, k, b, **kw), x, k, b)


def test_gradients_without_bias_and_kernel_smaller_than_stride(rng):
    x, k, _ = _case_data(rng, (4, 5), (2, 1))
    check_gradients(lambda x, k: gn.conv2d(x, k, strides=3), x, k)
    xT, kT, _ = _case_data(rng, (3, 2), (2, 1), transpose=True)
    check_gradients(lambda x, k: gn.conv2d_transpose(x, k, strides=3, activation="tanh"),
                    xT, kT)


@pytest.mark.parametrize("padding,strides", [("same", (1, 1)), ("valid", (2, 1))])
def test_one_channel_images_match_numpy_loops_and_their_gradients(padding, strides, rng):
    # a grey image (one input channel) takes im2col's one-value path
    x, k, b = _case_data(rng, (6, 5), (3, 3), cin=1, cout=4)
    kw = dict(strides=strides, padding=padding, activation="tanh")
    out = run_fn(lambda x, k, b: gn.conv2d(x, k, b, **kw), x, k, b)
    x32, k32, b32 = (a.astype(np.float32).astype(np.float64) for a in (x, k, b))
    want = ref_conv2d(x32, k32, b32, strides, (1, 1), padding, np.tanh)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    check_gradients(lambda x, k, b: gn.conv2d(x, k, b, **kw), x, k, b)


def test_relu_gradient_away_from_the_kink(rng):
    # relu's derivative is a step: shift the bias so no pre-activation sits near zero
    x, k, b = _case_data(rng, (5, 5), (3, 3))
    z = ref_conv2d(x, k, None, (1, 1), (1, 1), "same")
    b = b - np.median(z, axis=(0, 1, 2))
    assert np.abs(z + b).min() > 1e-3
    check_gradients(lambda x, k, b: gn.conv2d(x, k, b, padding="same", activation="relu"),
                    x, k, b)


@pytest.mark.parametrize("act", [None, "relu", "gelu"])
def test_blocks_of_one_image_match_one_block(act, rng, monkeypatch):
    # the kernels run by blocks of images (conv.py's _BLOCK_BYTES); with blocks of one image
    # each block's dkernel and dbias add up and its dx is its own: the values and the
    # gradients equal the NumPy loops' and a finite-difference check's
    import graphnet.kernels.cpu.conv as conv

    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1)
    x, k, b = _case_data(rng, (5, 6), (3, 3))
    x = np.concatenate([x, 0.5 * x[::-1]])  # three images, three blocks
    fn = lambda x, k, b: gn.conv2d(x, k, b, padding="same", activation=act)  # noqa: E731
    erf = np.vectorize(math.erf)
    ref = {None: lambda z: z, "relu": lambda z: np.maximum(z, 0),
           "gelu": lambda z: 0.5 * z * (1 + erf(z / math.sqrt(2)))}
    np.testing.assert_allclose(run_fn(fn, x, k, b, dtype="float64"),
                               ref_conv2d(x, k, b, (1, 1), (1, 1), "same", ref[act]),
                               rtol=1e-10, atol=1e-12)
    if act != "relu":  # relu's kink is checked away from zero below
        check_gradients(fn, x, k, b)


@pytest.mark.parametrize("cin", [1, 2])
def test_small_gemm_blocks_sum_the_kernel_gradient(cin, rng, monkeypatch):
    # backward takes blocks of as few images as keep one block's kernel-gradient GEMM within
    # OpenBLAS's small-matrix kernels (blas.SMALL_MNK); with the limit at two images' worth,
    # three images run as blocks of two and one: dk and db are NumPy's sums over all three
    import graphnet.kernels.cpu.conv as conv

    x, k, b = _case_data(rng, (5, 6), (3, 3), cin=cin, cout=4)
    x = np.concatenate([x, 0.5 * x[:1]])
    one = 5 * 6 * 9 * cin * 4  # one image's m n k
    monkeypatch.setattr(conv, "SMALL_MNK", 2 * one)
    assert conv._per_block(3, 30, 9 * cin, 4, 8, small=True) == 2
    G = rng.normal(size=(3, 5, 6, 4))
    with gn.Graph():
        xi = gn.Input((5, 6, cin), dtype="float64")
        kp, bp = gn.Parameter(k, dtype="float64"), gn.Parameter(b, dtype="float64")
        loss = gn.sum(gn.conv2d(xi, kp, bp, padding="same") * gn.constant(G))
    _, (dk, db) = gn.compile(loss, wrt=[kp, bp])({xi: x})
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros_like(k)
    for i in range(3):
        for j in range(3):  # tap (i, j) reads pixel (oh + i - 1, ow + j - 1)
            want[i, j] = np.einsum("nhwc,nhwo->co", xp[:, i:i + 5, j:j + 6], G)
    np.testing.assert_allclose(dk, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, G.sum((0, 1, 2)), rtol=1e-12)


@pytest.mark.parametrize("act", [None, "tanh"])
def test_blocks_of_images_at_once_match_one_block(act, rng, monkeypatch):
    # a large conv runs blocks of images on threads at once (conv.py's _parts), each summing
    # its own kernel and bias gradients: forced on small shapes (three images in blocks of
    # two and one), the values and every gradient equal NumPy's loops and a float64
    # finite-difference check, with and without a dx
    import numba

    import graphnet.kernels.cpu.conv as conv

    monkeypatch.setattr(conv, "_SPLIT_MNK", 0)
    x, k, b = _case_data(rng, (5, 6), (3, 3))
    x = np.concatenate([x, 0.5 * x[:1]])
    fn = lambda x, k, b: gn.conv2d(x, k, b, padding="same", activation=act)  # noqa: E731
    want = ref_conv2d(x, k, b, (1, 1), (1, 1), "same", np.tanh if act else lambda z: z)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        assert conv._parts(3, 1) == min(2, numba.config.NUMBA_NUM_THREADS)
        np.testing.assert_allclose(run_fn(fn, x, k, b, dtype="float64"), want, rtol=1e-10,
                                   atol=1e-12)
        check_gradients(fn, x, k, b)
        G = rng.normal(size=want.shape)
        with gn.Graph():  # x as data: no dx, the kernel's and the bias's gradients only
            xi = gn.Input((5, 6, 2), dtype="float64")
            kp, bp = gn.Parameter(k, dtype="float64"), gn.Parameter(b, dtype="float64")
            loss = gn.sum(gn.conv2d(xi, kp, bp, padding="same") * gn.constant(G))
        _, (dk, db) = gn.compile(loss, wrt=[kp, bp])({xi: x})
        monkeypatch.setattr(conv, "_SPLIT_MNK", 1 << 62)
        _, (dk1, db1) = gn.compile(loss, wrt=[kp, bp])({xi: x})
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_allclose(dk, dk1, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(db, db1, rtol=1e-12, atol=1e-13)


def test_split_convs_keep_each_parts_blas_on_one_thread(rng, monkeypatch):
    # a conv split into parts of the batch on threads at once runs each part's GEMMs on one
    # BLAS thread, forward and backward alike: an OpenBLAS without small-matrix kernels
    # threads even a small block's GEMM, and two parts' GEMMs each on both BLAS threads ran
    # the cnn workload's first conv (one channel) 5x slower in the training step
    import contextlib

    import numba

    import graphnet.kernels.cpu.conv as conv

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: a conv is never split")
    seen = []

    @contextlib.contextmanager
    def spy(step_work=0):
        seen.append(step_work)
        yield

    monkeypatch.setattr(conv, "one_blas_thread", spy)
    monkeypatch.setattr(conv, "_SPLIT_MNK", 0)
    x = rng.normal(size=(4, 6, 6, 1)).astype(np.float32)
    k = rng.normal(size=(3, 3, 1, 8)).astype(np.float32)
    pads = (1, 1, 1, 1)
    numba.set_num_threads(2)
    try:
        y, z, cols = conv.conv2d(x, k, None, (1, 1), (1, 1), pads, "relu")
        conv.conv2d_grad(np.ones_like(y), x, cols, k, z, y, (1, 1), (1, 1), pads, "relu",
                         bias=False)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    fwd = conv._per_block(4, 36, 9, 8, 4) * 36 * 9 * 8
    bwd = conv._per_block(4, 36, 9, 8, 4, small=True) * 36 * 9 * 8
    assert seen == [fwd, bwd] and min(seen) > 0


def ref_conv2d_dx(g, k, pads, hw):
    """conv2d's input gradient by loops: dx[h, w] += g[oh, ow] k[i, j]^T where the forward read
    x[oh - top + i, ow - left + j] (stride 1, no dilation)."""
    B, OH, OW, _ = g.shape
    dx = np.zeros((B, *hw, k.shape[2]))
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            for oh in range(OH):
                for ow in range(OW):
                    h, w = oh - pads[0] + i, ow - pads[2] + j
                    if 0 <= h < hw[0] and 0 <= w < hw[1]:
                        dx[:, h, w] += g[:, oh, ow] @ k[i, j].T
    return dx


def ref_conv2d_dk(x, g, pads):
    """conv2d's kernel gradient by loops: dk[i, j] = sum of xp[oh + i, ow + j]^T g[oh, ow]."""
    xp = np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    OH, OW = g.shape[1:3]
    return np.stack([np.stack([np.einsum("nhwc,nhwd->cd", xp[:, i:i + OH, j:j + OW], g)
                               for j in range(3)]) for i in range(3)])


@pytest.mark.parametrize("shape, pads", [((2, 5, 7, 3), (1, 1, 1, 1)),  # odd: half tiles
                                         ((2, 6, 6, 2), (0, 0, 0, 0)),  # valid: dZ padded by 2
                                         ((3, 7, 5, 2), (2, 1, 0, 2)),
                                         ((1, 4, 4, 1), (1, 1, 1, 1)),
                                         ((1, 6, 5, 2), (3, 0, 1, 1))])  # a pad past 2: col2im
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_3x3_convs_by_winograd_tiles(shape, pads, dtype, rng, monkeypatch):
    # a 3x3 stride-1 conv runs by Winograd's F(2x2, 3x3) tiles (kernels/cpu/winograd.py;
    # forced here for few channels): z = x correlated with k, dk from x's and dZ's tiles,
    # dx = dZ correlated with the flipped kernel; each against loops written out
    import graphnet.kernels.cpu.conv as conv
    from graphnet.kernels.cpu.conv import conv2d, conv2d_grad

    monkeypatch.setattr(conv, "WINOGRAD_MIN_IN", 1)
    x = rng.normal(size=shape).astype(dtype)
    k = (rng.normal(size=(3, 3, shape[3], 4)) / 4).astype(dtype)
    y, z, cols = conv2d(x, k, None, (1, 1), (1, 1), pads, None)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    xp = np.pad(x.astype(float), ((0, 0), pads[:2], pads[2:], (0, 0)))
    want = sum(xp[:, i:i + y.shape[1], j:j + y.shape[2]] @ k[i, j].astype(float)
               for i in range(3) for j in range(3))
    np.testing.assert_allclose(y, want, **tol)
    g = rng.normal(size=y.shape).astype(dtype)
    dx, dk, _ = conv2d_grad(g, x, cols, k, z, y, (1, 1), (1, 1), pads, None, bias=False)
    assert dx.dtype == dk.dtype == dtype
    np.testing.assert_allclose(dx, ref_conv2d_dx(g.astype(float), k.astype(float), pads,
                                                 shape[1:3]), **tol)
    np.testing.assert_allclose(dk, ref_conv2d_dk(x.astype(float), g.astype(float), pads),
                               **tol)
    _, dk1, _ = conv2d_grad(g, x, cols, k, z, y, (1, 1), (1, 1), pads, None, bias=False,
                            need_dx=False)
    np.testing.assert_array_equal(dk, dk1)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_winograd_input_gradient_passes_the_gradient_check(padding, rng, monkeypatch):
    # the conv by Winograd's tiles in a graph, on blocks of images split among threads
    # (forced), and the im2col path it replaces, both against float64 finite differences
    import graphnet.kernels.cpu.conv as conv

    monkeypatch.setattr(conv, "_SPLIT_MNK", 0)
    x, k, b = _case_data(rng, (5, 6), (3, 3), cin=3, cout=4)
    x = np.concatenate([x, 0.5 * x[:1]])
    fn = lambda x, k, b: gn.conv2d(x, k, b, padding=padding, activation="tanh")  # noqa: E731
    transforms = []
    monkeypatch.setattr(conv, "kernel_transform",
                        lambda k, f=conv.kernel_transform: transforms.append(k.shape) or f(k))
    for least in (1, 1 << 30):
        monkeypatch.setattr(conv, "WINOGRAD_MIN_IN", least)
        transforms.clear()
        check_gradients(fn, x, k, b)
        # the kernel (3, 3, in, out) and the flipped one (3, 3, out, in) were transformed for
        # each forward and dx, or never
        assert set(transforms) == ({(3, 3, 3, 4), (3, 3, 4, 3)} if least == 1 else set())


@pytest.mark.parametrize("op", ["conv2d", "conv2d_transpose"])
def test_data_input_skips_dx_and_runs_repeat(op, rng):
    # x is fed data (no gradient wanted): dx is skipped; the kernel's gradient is unchanged,
    # a second run repeats it, and a new batch size resizes the reused buffers
    x, k, b = _case_data(rng, (6, 6), (3, 3), transpose=op == "conv2d_transpose")
    fn = getattr(gn, op)
    with gn.Graph():
        xi = gn.Input((6, 6, 2), dtype="float64")
        kp, bp = gn.Parameter(k, dtype="float64"), gn.Parameter(b, dtype="float64")
        loss = gn.sum(fn(xi, kp, bp, strides=2, padding="same", activation="tanh") ** 2)
        xp = gn.Parameter(x, dtype="float64")
        loss_p = gn.sum(fn(xp, kp, bp, strides=2, padding="same", activation="tanh") ** 2)
    prog = gn.compile(loss, wrt=[kp, bp])
    _, (dk, db) = prog({xi: x})
    _, (dk2, db2) = prog({xi: x})
    _, (dk3, db3, dx) = gn.compile(loss_p, wrt=[kp, bp, xp])({})
    for a, c in [(dk, dk2), (dk, dk3), (db, db2), (db, db3)]:
        np.testing.assert_allclose(a, c, rtol=1e-12)
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    _, (dk1, _) = prog({xi: x[:1]})
    assert dk1.shape == k.shape and not np.allclose(dk1, dk)


# -- the kernels ----------------------------------------------------------------------------

@pytest.mark.parametrize("hw,ksize,strides,dilation,padding", CASES)
def test_col2im_is_the_adjoint_of_im2col(hw, ksize, strides, dilation, padding, rng):
    # <im2col(x), c> = <x, col2im(c)> for every x and c: col2im is im2col's transpose
    x = rng.normal(size=(2, *hw, 3))
    pads = sum((tf_pads(n, kk, s, d, padding) for n, kk, s, d in
                zip(hw, ksize, strides, dilation)), ())
    cols = im2col(x, ksize, strides, dilation, pads)
    c = rng.normal(size=cols.shape)
    back = col2im(c, x.shape, ksize, strides, dilation, pads)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


@pytest.mark.usefixtures("parallel_kernels")
def test_parallel_im2col_and_col2im_match_loops(rng):
    # 4 x 16 x 16 x 8 with a 3x3 kernel: above the lowered threshold, the prange twins run
    x = rng.normal(size=(4, 16, 16, 8)).astype(np.float32)
    k = (rng.normal(size=(3, 3, 8, 4)) / 8).astype(np.float32)
    pads = (1, 1, 1, 1)
    cols = im2col(x, (3, 3), (1, 1), (1, 1), pads)
    assert cols.size >= 1 << 16
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(cols.reshape(4, 16, 16, 3, 3, 8)[:, :, :, 1, 2],
                                  xp[:, 1:17, 2:18])
    out = run_fn(lambda x, k: gn.conv2d(x, k, padding="same"), x, k)
    np.testing.assert_allclose(out, ref_conv2d(x.astype(np.float64), k, None, (1, 1), (1, 1),
                                               "same"), rtol=1e-4, atol=1e-4)
    back = col2im(cols, x.shape, (3, 3), (1, 1), (1, 1), pads)
    # interior pixels are read by all 9 taps, corners by 4
    np.testing.assert_allclose(back[:, 5, 5], 9 * x[:, 5, 5], rtol=1e-5)
    np.testing.assert_allclose(back[:, 0, 0], 4 * x[:, 0, 0], rtol=1e-5)


@pytest.mark.parametrize("ksize,pads", [((1, 1), (0, 0, 0, 0)), ((3, 3), (1, 1, 1, 1))])
def test_kernels_without_buffers(ksize, pads, rng):
    # conv2d_grad called directly (no out=): dx, dkernel and dbias against central
    # differences of the forward kernel's sum(g * y); the 1x1 kernel is the dense path
    from graphnet.kernels.cpu.conv import conv2d, conv2d_grad

    x, k, b = rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(*ksize, 3, 4)), rng.normal(size=4)
    y, _, cols = conv2d(x, k, b, (1, 1), (1, 1), pads, "tanh")
    g = rng.normal(size=y.shape)
    dx, dk, db = conv2d_grad(g, x, cols, k, y, y, (1, 1), (1, 1), pads, "tanh")

    def central(a, i):
        def loss(delta):
            args = [x, k, b]
            args[a] = args[a].copy()
            args[a][i] += delta
            return np.sum(g * conv2d(*args, (1, 1), (1, 1), pads, "tanh")[0])
        return (loss(1e-6) - loss(-1e-6)) / 2e-6

    np.testing.assert_allclose(dx[1, 2, 3, 1], central(0, (1, 2, 3, 1)), rtol=1e-6)
    np.testing.assert_allclose(dk[0, 0, 2, 3], central(1, (0, 0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(db[2], central(2, 2), rtol=1e-6)
    dx2, dk2, _ = conv2d_grad(g, x, cols, k, y, y, (1, 1), (1, 1), pads, "tanh", need_dx=False)
    assert dx2 is None
    np.testing.assert_allclose(dk2, dk, rtol=1e-12)


def test_kernel_errors_are_value_errors(rng):
    x = rng.normal(size=(1, 3, 3, 2))
    with pytest.raises(ValueError, match="spans 5 pixels"):
        im2col(x, (3, 3), (1, 1), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="do not match the image"):
        col2im(np.zeros((4, 18)), x.shape, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0))


# -- build-time errors ----------------------------------------------------------------------

def test_build_errors_name_the_shapes():
    with gn.Graph():
        x = gn.Input((5, 5, 3), name="x")
        k = gn.Parameter(np.zeros((3, 3, 2, 4), np.float32), name="k")
        with pytest.raises(gn.GraphError, match=r"conv2d node 'conv2d'.*x \(None, 5, 5, 3\) has "
                                                r"3 channels but the kernel \(3, 3, 2, 4\)"):
            gn.conv2d(x, k)
        flat = gn.Input((75,), name="flat")
        with pytest.raises(gn.GraphError, match=r"expects channels-last \(batch, height, width, "
                                                r"channels\) input, got x \(None, 75\)"):
            gn.conv2d(flat, k)
        big = gn.Parameter(np.zeros((7, 3, 3, 4), np.float32))
        with pytest.raises(gn.GraphError, match=r"7x3 kernel is larger than the 5x5 input "
                                                r"with padding='valid'"):
            gn.conv2d(x, big)
        with pytest.raises(gn.GraphError, match="dilated to 7 pixels"):
            gn.conv2d(x, gn.Parameter(np.zeros((3, 3, 3, 4), np.float32)), dilation_rate=3)
        k3 = gn.Parameter(np.zeros((3, 3, 3, 4), np.float32))
        assert gn.conv2d(x, big, padding="same").shape == (None, 5, 5, 4)
        with pytest.raises(gn.GraphError, match=r"bias must have shape \(4,\)"):
            gn.conv2d(x, k3, gn.Parameter(np.zeros(3, np.float32)))
        with pytest.raises(gn.GraphError, match="padding must be 'valid' or 'same'"):
            gn.conv2d(x, k3, padding="full")
        with pytest.raises(gn.GraphError, match="strides must be a positive int"):
            gn.conv2d(x, k3, strides=(2, 0))
        with pytest.raises(gn.GraphError, match="the kernel must be 4-D"):
            gn.conv2d(x, gn.Parameter(np.zeros((3, 3, 4), np.float32)))
        with pytest.raises(gn.GraphError, match="unknown activation 'swish'"):
            gn.conv2d(x, k3, activation="swish")
        # the transpose's kernel is (kh, kw, filters, in): in must match x's channels
        with pytest.raises(gn.GraphError, match=r"has 3 channels but the kernel \(3, 3, 2, 4\) "
                                                r"\(kernel_height, kernel_width, filters, "
                                                r"in_channels\) expects 4"):
            gn.conv2d_transpose(x, k)
        assert gn.conv2d_transpose(x, gn.Parameter(np.zeros((3, 3, 2, 3), np.float32)),
                                   strides=2).shape == (None, 11, 11, 2)
        assert gn.conv2d(x, k3, padding="SAME", strides=[2, 1]).shape == (None, 3, 5, 4)


def test_explicit_pads_and_output_padding(rng):
    """conv2d with explicit ((top, bottom), (left, right)) pads is the valid conv of the
    zero-padded image; conv2d_transpose's output_padding adds rows/columns at the end."""
    x, k, b = rng.normal(size=(2, 4, 5, 2)), rng.normal(size=(2, 3, 2, 3)), rng.normal(size=3)
    pads = ((1, 0), (2, 1))
    with gn.Graph():
        y = gn.conv2d(gn.constant(x), gn.constant(k), gn.constant(b), padding=pads)
    want = ref_conv2d(np.pad(x, ((0, 0), *pads, (0, 0))), k, b, (1, 1), (1, 1), "valid")
    assert y.shape == want.shape
    np.testing.assert_allclose(gn.compile(y)({}), want, rtol=1e-6, atol=1e-6)
    check_gradients(lambda x, k, b: gn.conv2d(x, k, b, strides=2, padding=pads), x, k, b)
    kt = rng.normal(size=(3, 3, 2, 2))
    with gn.Graph():
        t = gn.conv2d_transpose(gn.constant(x), gn.constant(kt), strides=2, padding="valid",
                                output_padding=(0, 1))
        t0 = gn.conv2d_transpose(gn.constant(x), gn.constant(kt), strides=2, padding="valid")
    # (n - 1) s + k + p; Keras' default n s + max(k - s, 0) is p = 0 here
    assert (t.shape, t0.shape) == ((2, 9, 12, 2), (2, 9, 11, 2))
    tv, t0v = gn.compile([t, t0])({})
    np.testing.assert_allclose(tv[:, :, :11], t0v)
    np.testing.assert_array_equal(tv[:, :, 11], 0.0)   # the added column: no input reaches it
    with gn.Graph():
        t2 = gn.conv2d_transpose(gn.constant(x), gn.constant(kt), strides=2, padding="valid",
                                 output_padding=0)
    full = ref_conv2d_transpose(x, kt, None, (2, 2), (1, 1), "valid")
    np.testing.assert_allclose(gn.compile(t2)({}), full[:, :9, :11], rtol=1e-6, atol=1e-6)
    check_gradients(lambda x, k: gn.conv2d_transpose(x, k, strides=2, padding="same",
                                                     output_padding=1), x, kt)
    with gn.Graph(), pytest.raises(gn.GraphError, match=r"padding must be 'valid' or 'same' or"):
        gn.conv2d(gn.constant(x), gn.constant(k), padding=((1, -1), (0, 0)))
    with gn.Graph(), pytest.raises(gn.GraphError, match="smaller than the strides"):
        gn.conv2d_transpose(gn.constant(x), gn.constant(kt), strides=2, output_padding=2)
