"""Convolution kernels: conv2d and its adjoint conv2d_transpose, as im2col / col2im around GEMMs.

Channels-last (NHWC) images, kernels ``(kh, kw, in, out)``. ``im2col`` copies every output
pixel's receptive field into one row of ``cols (B*OH*OW, kh*kw*C)``, so that the convolution
is a GEMM ``cols @ kernel.reshape(kh*kw*C, out)``. conv2d runs it by blocks of whole images
(``_conv_fwd``: a block's im2col rows, its GEMM, then the bias and activation pass, while the
block is in the cache), and so does backward (``_conv_bwd``: ``dZ = g act'(z)`` with the bias
sums, ``dkernel += cols^T dZ``, ``dcols = dZ kernel^T`` and col2im per block); a large conv
runs one part of the batch's images per thread at once (``_by_images``), each part summing
its own kernel and bias gradients; a 1x1 stride-1 conv is the dense kernels (``dense.py``)
on the image's rows. ``col2im`` is im2col's
adjoint: it sums each ``dcols`` entry back onto the pixel it was copied from. It gathers (one
output pixel sums the entries that read it) instead of scattering, so the parallel loop over
image rows never writes one element from two threads, and it can apply a bias and an
activation on the way out, which makes it the forward pass of conv2d_transpose.

Geometry is always ``(input shape, ksize, strides, dilation, pads)`` with ``pads = (top,
bottom, left, right)``; output pixel ``(oh, ow)`` tap ``(i, j)`` reads input pixel
``(oh*sh - top + i*dh, ow*sw - left + j*dw)``, zero outside the image.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..blas import SMALL_MNK, gemm, gemm_rows
from ..jit import kernel, pick, rows, specializing
from ..threads import one_blas_thread, split_rows
from .activation import act, act_grad, activation_grad, code_of
from .dense import dense, dense_grad
from .winograd import correlate3x3, k_grad_from, kernel_grad3x3, kernel_transform, tiles

__all__ = ["im2col", "col2im", "conv2d", "conv2d_grad", "conv2d_transpose",
           "conv2d_transpose_grad"]


@kernel(inline=True)
def _im2col_row(x, n, oh, kh, kw, sh, sw, dh, dw, pt, pl, cols):
    # cols[n, oh, ow, i, j, :] = x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, :] (0 off the
    # image), for every ow of output row oh
    # One channel (a grey image) copies one value per tap: a channel loop of one element
    # costs the vectorizer's run-time checks at every tap (the cnn workload's first
    # layer's im2col took 0.97 ms, 0.16 without the loop)
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    for ow in range(cols.shape[2]):
        for i in range(kh):
            h = oh * sh - pt + i * dh
            for j in range(kw):
                w = ow * sw - pl + j * dw
                inside = 0 <= h < H and 0 <= w < W
                if C == 1:
                    cols[n, oh, ow, i, j, 0] = x[n, h, w, 0] if inside else 0
                elif inside:
                    for c in range(C):
                        cols[n, oh, ow, i, j, c] = x[n, h, w, c]
                else:
                    for c in range(C):
                        cols[n, oh, ow, i, j, c] = 0


@kernel(parallel=True)
def _im2col(x, kh, kw, sh, sw, dh, dw, pt, pl, cols):
    # one iteration per (image, output row): the rows' columns never overlap
    OH = cols.shape[1]
    for r in prange(x.shape[0] * OH):
        n = r // OH
        _im2col_row(x, n, r - n * OH, kh, kw, sh, sw, dh, dw, pt, pl, cols)


@kernel(inline=True)
def _outputs(t0, s, n_in, n_out):
    # the outputs o in [0, n_out) whose input cell t0 + o s lies in [0, n_in): [lo, hi)
    lo = 0 if t0 >= 0 else (s - 1 - t0) // s
    hi = min(n_out, (n_in - t0 + s - 1) // s) if n_in > t0 else 0
    return lo, max(lo, hi)


@kernel(inline=True)
def _gather_row(cols, n, h, kh, kw, sh, sw, dh, dw, pt, pl, zr):
    # zr[w, :] += the cols[n, oh, ow, i, j, :] that im2col copied from pixel (h, w): tap row
    # i reads output row oh = (h + pt - i*dh) / sh when that divides, and tap (i, j) adds
    # the contiguous run of outputs ow whose w lands in the row, so no index is tested per
    # pixel (a test and a division per tap and pixel took 2-6x longer). Each pixel sums its
    # taps in (i, j) order.
    OH, OW, W, C = cols.shape[1], cols.shape[2], zr.shape[0], zr.shape[1]
    for i in range(kh):
        th = h + pt - i * dh
        oh = th // sh
        if th < 0 or oh * sh != th or oh >= OH:
            continue
        cr = cols[n, oh]
        for j in range(kw):
            t0 = j * dw - pl  # pixel w = t0 + ow*sw
            lo, hi = _outputs(t0, sw, W, OW)
            for ow in range(lo, hi):
                tap, zp = cr[ow, i, j], zr[t0 + ow * sw]
                for c in range(C):
                    zp[c] += tap[c]


CODE = 0  # the activation each compiled copy of the kernels below fixes (jit.specializing)
# GEOM = 1: the compiled copy fixes a 3x3 kernel at stride 1 without dilation (most CNNs'
# every layer), so LLVM unrolls the nine taps: the cnn workload's first im2col took 0.93 ms
# with the geometry read at run time, 0.16-0.23 ms with it fixed. GEOM = 0 reads it.
GEOM = 0


@specializing("CODE", parallel=True)
def _col2im(cols, kh, kw, sh, sw, dh, dw, pt, pl, b, alpha, inplace, z, y):
    # z[n, h, w, :] = b + the taps that read pixel (h, w) (_gather_row); then y = act(z).
    # One iteration per (image, input row): no element is written by two threads.
    # ``inplace``: y is z (the activation pass then reads and writes z alone, which
    # vectorizes; none for identity).
    B, H, W, C = z.shape
    has_b = b.shape[0] > 0
    zero = type(alpha)(0)
    for r in prange(B * H):
        n = r // H
        h = r - n * H
        zr = z[n, h]
        for w in range(W):
            for c in range(C):
                zr[w, c] = b[c] if has_b else zero
        _gather_row(cols, n, h, kh, kw, sh, sw, dh, dw, pt, pl, zr)
        if inplace and CODE != 0:
            for w in range(W):
                for c in range(C):
                    zr[w, c] = act(CODE, zr[w, c], alpha)
        elif not inplace:
            yr = y[n, h]
            for w in range(W):
                for c in range(C):
                    yr[w, c] = act(CODE, zr[w, c], alpha)


# conv2d's forward and backward run by blocks of whole images: a block's im2col rows, its
# GEMMs and its elementwise passes follow one another while the block is in the cache. In
# the cnn workload's training step (64 images, 28x28x1 -> 32 -> 64 channels, 3x3) the step
# took 21.5-28 ms as one im2col, one GEMM and one pass over the whole batch, 19-20 ms by
# blocks. A large conv's images are also split among threads (``_by_images``: each part
# its own blocks, its GEMMs on one BLAS thread, the forward's by blocks of rows on
# OpenBLAS's small-matrix kernels); the same split as a Numba parallel loop over blocks,
# with the ordinary GEMM path, had been slower in the step (docs/architecture.md, tenth
# and thirteenth rounds). The bias + activation and g act'(z) passes are dense.py's,
# written out: shared as inlined row helpers they measured slower here (the first conv's
# forward 1.8-1.9 -> 2.6 ms in alternating processes, dense's own unchanged).

@specializing("CODE", "GEOM")
def _conv_fwd(x, k2, b, kh, kw, sh, sw, dh, dw, pt, pl, alpha, inplace, per, cols6, cols, y,
              z, tiled, tbufs, span, lo, hi):
    # images lo:hi, per block of images: im2col rows, z = cols k2 (BLAS, in blocks of rows
    # for its small-matrix kernels), then z += b and y = act(z), in place where y is z (as
    # dense.py's pass). ``tiled`` (3x3 stride 1 only): z is x correlated with the kernel by
    # Winograd's tiles instead, without im2col (winograd.py; tbufs = (u, z as images, and
    # each part's pad, v, m), part lo // span)
    if GEOM == 1:
        kh, kw, sh, sw, dh, dw = 3, 3, 1, 1, 1, 1
    OH = cols6.shape[1]
    P, N = OH * cols6.shape[2], z.shape[1]
    has_b = b.shape[0] > 0
    part = lo // span
    for s in range(lo, hi, per):
        e = min(s + per, hi)
        if GEOM == 1 and tiled:
            u, z4, tpad, tv, tm = tbufs
            correlate3x3(x, u, tpad[part], tv[part], tm[part], z4, s, e, pt, pl)
        else:
            for n in range(s, e):
                for oh in range(OH):
                    _im2col_row(x, n, oh, kh, kw, sh, sw, dh, dw, pt, pl, cols6)
            gemm_rows(cols[s * P:e * P], k2, z[s * P:e * P])
        for i in range(s * P, e * P):
            if inplace:
                for j in range(N):
                    v = z[i, j] + b[j] if has_b else z[i, j]
                    z[i, j] = act(CODE, v, alpha)
            else:
                for j in range(N):
                    v = z[i, j] + b[j] if has_b else z[i, j]
                    z[i, j] = v
                    y[i, j] = act(CODE, v, alpha)


@specializing("CODE", "GEOM")
def _conv_bwd(g2, cols, k2, zy, y, alpha, H, P, kh, kw, sh, sw, dh, dw, pt, pl, per,
              need_dx, dz, dcols6, dcols, dkts, tmps, dbs, dx, dz4, tiled, kbufs, xbufs, span,
              lo, hi):
    # images lo:hi (H rows, P output pixels each), per block of images: dZ = g act'(z) with
    # its column sums into this block of images' db, dkernel += cols^T dZ, and with need_dx
    # dcols = dZ k2^T gathered onto the block's pixels (col2im). The images lo:hi are part
    # lo // span of the batch: its sums go to dkts[part] and dbs[part].
    # ``tiled`` (3x3 stride 1 only; 1: dk, 2: dk and dx) by Winograd's tiles (winograd.py):
    # dk from x and dZ (dz4, dZ as images) into this part's 16 sums (kbufs = (x, and each
    # part's pad, v, m, tmp, sums); cols is not read), and dx as dZ correlated with the
    # flipped kernel (xbufs = (its transform, and each part's pad, v, m)), not dcols and
    # col2im: the cnn workload's second conv's backward (dx only) went 6.9-8.3 -> 5.8-7.0
    # ms alone, 8.0 -> 7.0 in the step
    # The kernel's gradient is summed transposed, dk^T = dZ^T cols: OpenBLAS ran the cnn
    # workload's second layer's (64 x 12544) (12544 x 288) in 4.1 ms, its transpose
    # (288 x 12544) (12544 x 64) in 4.8
    if GEOM == 1:
        kh, kw, sh, sw, dh, dw = 3, 3, 1, 1, 1, 1
    K, N = k2.shape
    part = lo // span
    dkt, tmp, db = dkts[part], tmps[part], dbs[part]
    kx, kpad, kv, km, ktmp, ksums = kbufs
    u, xpad, xv, xm = xbufs
    zero = type(alpha)(0)
    for j in range(N):
        db[j] = zero
        for a in range(K):
            dkt[j, a] = zero
    if GEOM == 1 and tiled:
        ks = ksums[part]
        for q in range(ks.shape[0]):
            for a in range(ks.shape[1]):
                for j in range(N):
                    ks[q, a, j] = zero
    for s in range(lo, hi, per):
        e = min(s + per, hi)
        for i in range(s * P, e * P):
            gi, zi, yi, di = g2[i], zy[i], y[i], dz[i]
            for j in range(N):
                d = gi[j] * act_grad(CODE, zi[j], yi[j], alpha)
                di[j] = d
                db[j] += d
        if GEOM == 1 and tiled:
            kernel_grad3x3(kx, dz4, kpad[part], kv[part], km[part], ktmp[part], ks, s, e, pt,
                           pl)
        else:
            gemm(dz[s * P:e * P].T, cols[s * P:e * P], tmp)
            for j in range(N):
                for a in range(K):
                    dkt[j, a] += tmp[j, a]
        if GEOM == 1 and tiled == 2:
            correlate3x3(dz4, u, xpad[part], xv[part], xm[part], dx, s, e, 2 - pt, 2 - pl)
        elif need_dx:
            gemm(dz[s * P:e * P], k2.T, dcols[s * P:e * P])
            for n in range(s, e):
                for h in range(H):
                    xr = dx[n, h]
                    for w in range(xr.shape[0]):
                        for q in range(xr.shape[1]):
                            xr[w, q] = zero
                    _gather_row(dcols6, n, h, kh, kw, sh, sw, dh, dw, pt, pl, xr)


def out_hw(x_shape: tuple, ksize: tuple, strides: tuple, dilation: tuple,
           pads: tuple) -> tuple[int, int]:
    """``(OH, OW)`` of a convolution of an ``(B, H, W, C)`` image; ValueError when the (padded)
    image is smaller than the dilated kernel or an argument is malformed."""
    if len(x_shape) != 4:
        raise ValueError(f"conv expects a channels-last (batch, height, width, channels) "
                         f"image, got shape {tuple(x_shape)}")
    if min(strides) < 1 or min(dilation) < 1 or min(ksize) < 1 or min(pads) < 0:
        raise ValueError(f"conv needs positive kernel sizes, strides and dilations and "
                         f"non-negative pads; got ksize={ksize}, strides={strides}, "
                         f"dilation={dilation}, pads={pads}")
    out = []
    for n, k, s, d, p in zip(x_shape[1:3], ksize, strides, dilation, (pads[:2], pads[2:])):
        ek = (k - 1) * d + 1
        if n + p[0] + p[1] < ek:
            raise ValueError(f"the {ksize[0]}x{ksize[1]} kernel (dilation {dilation}) spans "
                             f"{ek} pixels, more than the padded image's {n + p[0] + p[1]} "
                             f"(image {tuple(x_shape)}, pads {pads})")
        out.append((n + p[0] + p[1] - ek) // s + 1)
    return out[0], out[1]


def _pointwise(ksize: tuple, strides: tuple, pads: tuple) -> bool:
    # a 1x1 kernel, stride 1, no padding: im2col is the image itself, seen as rows
    return tuple(ksize) == (1, 1) and tuple(strides) == (1, 1) and not any(pads)


def _geom(ksize: tuple, strides: tuple, dilation: tuple) -> int:
    # which compiled geometry serves this conv: 1 fixes 3x3, stride 1, no dilation
    return int(tuple(ksize) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1))


def im2col(x: np.ndarray, ksize: tuple, strides: tuple, dilation: tuple, pads: tuple,
           out: np.ndarray | None = None) -> np.ndarray:
    """``cols (B*OH*OW, kh*kw*C)``: row ``(n, oh, ow)`` holds output pixel ``(oh, ow)``'s
    receptive field in ``(i, j, c)`` order (the kernel's), zero where it overhangs the image."""
    OH, OW = out_hw(x.shape, ksize, strides, dilation, pads)
    B, _, _, C = x.shape
    kh, kw = ksize
    if _pointwise(ksize, strides, pads):
        return np.ascontiguousarray(x).reshape(-1, C)
    cols = np.empty((B * OH * OW, kh * kw * C), x.dtype) if out is None else out
    pick(_im2col, cols.size)(np.ascontiguousarray(x), kh, kw, strides[0], strides[1],
                             dilation[0], dilation[1], pads[0], pads[2],
                             cols.reshape(B, OH, OW, kh, kw, C))
    return cols


def _gather(cols: np.ndarray, x_shape: tuple, ksize: tuple, strides: tuple, dilation: tuple,
            pads: tuple, bias: np.ndarray | None, kind: str | None, alpha: float,
            keep_z: bool, out: tuple | None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, z)``: ``z = col2im(cols) + bias``, ``y = act(z)`` (y is z unless keep_z)."""
    OH, OW = out_hw(x_shape, ksize, strides, dilation, pads)
    B, _, _, C = x_shape
    kh, kw = ksize
    if cols.shape != (B * OH * OW, kh * kw * C):
        raise ValueError(f"col2im: cols of shape {cols.shape} do not match the image "
                         f"{tuple(x_shape)} ({B * OH * OW} rows of {kh * kw * C} expected)")
    if out is None:
        z = np.empty(x_shape, cols.dtype)
        y = np.empty_like(z) if keep_z else z
    else:
        y, z = out
    bb = cols[0, :0] if bias is None else bias  # an empty vector of cols' dtype: no bias
    pick(_col2im.of(CODE=code_of(kind)), z.size)(
        np.ascontiguousarray(cols).reshape(B, OH, OW, kh, kw, C), kh, kw, strides[0],
        strides[1], dilation[0], dilation[1], pads[0], pads[2], bb, cols.dtype.type(alpha),
        y is z, z, y)
    return y, z


def col2im(cols: np.ndarray, x_shape: tuple, ksize: tuple, strides: tuple, dilation: tuple,
           pads: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """The adjoint of ``im2col``: an image of ``x_shape`` where each pixel is the sum of the
    ``cols`` entries that im2col copied from it."""
    return _gather(cols, tuple(x_shape), ksize, strides, dilation, pads, None, None, 0.0,
                   False, None if out is None else (out, out))[0]


def _check_channels(x: np.ndarray, c: int, what: str) -> None:
    if x.ndim != 4 or x.shape[3] != c:
        raise ValueError(f"{what}: the image {x.shape} must be (batch, height, width, {c})")


# a block of the blocked passes: about this many bytes of im2col rows and outputs (the
# cores' L2 here is 1 MB each; blocks of 1 to 16 images all ran the cnn step in 19-20 ms)
_BLOCK_BYTES = 1 << 20


def _per_block(B: int, P: int, K: int, N: int, itemsize: int, small: bool = False) -> int:
    """Images per block of a blocked pass: P output pixels of K inputs and N outputs each.
    ``small``: where one image's (N x P) (P x K) GEMM fits OpenBLAS's small-matrix kernels
    (blas.SMALL_MNK), no more images than keep it there: the cnn workload's first layer's
    backward took 2.15 ms in blocks of 8 images (past the limit) and 0.95-1.0 in blocks
    of 1 to 4."""
    per = max(1, min(B, _BLOCK_BYTES // max(P * (K + N) * itemsize, 1)))
    if small and P * K * N <= SMALL_MNK:
        per = min(per, SMALL_MNK // (P * K * N))
    return per


# a conv of fewer multiply-adds than this runs on the calling thread alone
_SPLIT_MNK = 1 << 22


def _parts(B: int, mnk: int) -> int:
    """Blocks of images a conv of ``mnk`` multiply-adds runs at once: one per Numba thread
    (``threads.balance_threads`` leaves one on a busy machine), or one for a small conv."""
    return max(1, min(numba.get_num_threads(), B)) if mnk >= _SPLIT_MNK else 1


def _by_images(fn, args: tuple, B: int, parts: int, gemm_mnk: int) -> None:
    """``fn(*args, lo, hi)`` on ``parts`` blocks of the batch's images at once
    (``threads.split_rows``), BLAS on one thread inside each where a block's GEMMs of
    ``gemm_mnk`` would otherwise thread. An image's rows meet no other image's until the
    kernel gradient's sum: the cnn workload's second conv took 2.6-2.95 ms forward on two
    blocks against 3.6-3.8 as one, 6.7-6.9 backward against 7.8-8.9."""
    with one_blas_thread(gemm_mnk if parts > 1 else 0):
        split_rows(fn, args, B, parts)


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, strides: tuple,
           dilation: tuple, pads: tuple, kind: str | None, alpha: float = 0.0,
           keep_z: bool = False, out: tuple | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, z, cols)``: ``y = act(conv(x, kernel) + bias)`` of shape ``(B, OH, OW, out)``,
    its pre-activation ``z`` (y itself unless keep_z) and the im2col rows backward reuses
    (left unwritten by a conv through Winograd's tiles, whose backward reads x).
    ``out = (y, z, cols)`` are arrays to write into."""
    kh, kw, cin, cout = kernel.shape
    _check_channels(x, cin, "conv2d")
    OH, OW = out_hw(x.shape, (kh, kw), strides, dilation, pads)
    B = x.shape[0]
    shape = (B, OH, OW, cout)
    k2 = np.ascontiguousarray(kernel).reshape(kh * kw * cin, cout)
    yz = None
    if out is not None:  # y and z as rows, one array where y is z (run in place)
        z2 = out[1].reshape(-1, cout)
        yz = (z2 if out[0] is out[1] else out[0].reshape(-1, cout), z2)
    if _pointwise((kh, kw), strides, pads):  # the image itself is the GEMM's rows
        cols = np.ascontiguousarray(x).reshape(-1, cin)
        y, z = dense(cols, k2, bias, kind, alpha, keep_z, out=yz)
        return y.reshape(shape), z.reshape(shape), cols
    K = kh * kw * cin
    cols = np.empty((B * OH * OW, K), x.dtype) if out is None else out[2]
    if yz is None:
        z2 = np.empty((B * OH * OW, cout), x.dtype)
        yz = (np.empty_like(z2) if keep_z else z2, z2)
    y2, z2 = yz
    bb = k2[0, :0] if bias is None else bias  # an empty vector of the dtype: no bias
    geom = _geom((kh, kw), strides, dilation)
    fwd = _conv_fwd.of(CODE=code_of(kind), GEOM=geom)
    per = _per_block(B, OH * OW, K, cout, x.itemsize)
    parts = _parts(B, cols.shape[0] * K * cout)
    tiled = _tiled(geom, cin)  # cols are not written: backward reads x
    t = _tile_bufs(kernel if tiled else None, (OH, OW), parts, per, x.dtype, "f")
    args = (np.ascontiguousarray(x), k2, bb, kh, kw, strides[0], strides[1], dilation[0],
            dilation[1], pads[0], pads[2], x.dtype.type(alpha), y2 is z2, per,
            cols.reshape(B, OH, OW, kh, kw, cin), cols, y2, z2, tiled,
            (t[0], z2.reshape(shape) if tiled else _empty(4, x.dtype), *t[1:]), -(-B // parts))
    # BLAS on one thread inside the parts even where a block's rows take the small-matrix
    # kernels: a build without them (OpenBLAS's Haswell kernels, which a Zen 3 runs) threads
    # the same GEMMs, and two parts' GEMMs each on both BLAS threads made the cnn workload's
    # first conv 8-10 ms in the step against 1.5 (the step 34-37 -> 21-23 ms)
    _by_images(fwd, args, B, parts, per * OH * OW * K * cout)
    return y2.reshape(shape), z2.reshape(shape), cols


# the fewest input channels for which a 3x3 stride-1 conv runs by Winograd's tiles: with
# few, the tiles' transforms outweigh the GEMM they save. Batch 32 of 28x28, dx by tiles
# against col2im (ms): in -> out channels 32 -> 4: 3.5 / 5.3, 16 -> 1: 1.7 / 3.1,
# 16 -> 16: 3.4 / 4.0, 8 -> 8: 1.1 / 1.3, 8 -> 32: 3.5 / 3.2, 4 -> 32: 2.0 / 1.7,
# 1 -> 16: 2.3 / 1.2; the cnn workload's one-channel first conv forward: 1.87 / 0.60
WINOGRAD_MIN_IN = 16
_SCRATCH: dict = {}  # (name, shape, dtype) -> a scratch array the next call of that shape reuses


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A reused array (fresh large arrays fault their pages in as they are first written)."""
    key = (name, shape, np.dtype(dtype))
    a = _SCRATCH.get(key)
    if a is None:
        if len(_SCRATCH) > 32:
            _SCRATCH.clear()
        a = _SCRATCH[key] = np.empty(shape, dtype)
    return a


def _tiled(geom: int, cin: int) -> bool:
    """Whether a conv runs by Winograd's tiles: 3x3 stride 1, enough input channels."""
    return geom == 1 and cin >= WINOGRAD_MIN_IN


def _empty(ndim: int, dt) -> np.ndarray:
    return np.empty((0,) * ndim, dt)


def _tile_bufs(k: np.ndarray | None, ohw: tuple, parts: int, per: int, dt,
               name: str) -> tuple:
    """``(u, pad, v, m)`` for ``correlate3x3`` with kernel ``k (3, 3, C, D)`` onto ``ohw``
    output pixels: k's transform and each part's scratch (``name`` keeps the uses apart);
    ``k`` None: empty arrays of the same types, for a conv that takes the other path."""
    if k is None:
        return _empty(3, dt), _empty(5, dt), _empty(4, dt), _empty(4, dt)
    C, D = k.shape[2:]
    th, tw = tiles(*ohw)
    return (kernel_transform(np.ascontiguousarray(k)).astype(dt, copy=False),
            _scratch(name + "pad", (parts, per, 2 * th + 2, 2 * tw + 2, C), dt),
            _scratch(name + "v", (parts, 16, per * th * tw, C), dt),
            _scratch(name + "m", (parts, 16, per * th * tw, D), dt))


def conv2d_grad(g: np.ndarray, x: np.ndarray, cols: np.ndarray, kernel: np.ndarray,
                zy: np.ndarray, y: np.ndarray, strides: tuple, dilation: tuple, pads: tuple,
                kind: str | None, alpha: float = 0.0, bias: bool = True,
                need_dx: bool = True, out: tuple | None = None
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(dx, dkernel, dbias)`` of conv2d: ``dZ = g act'(z)``, ``dbias`` its column sums,
    ``dkernel = cols^T dZ``, ``dx = col2im(dZ kernel^T)`` (skipped unless ``need_dx``).
    ``out = (dz, dcols, dkernel, dx, dbias)`` are scratch and result arrays to write into."""
    kh, kw, cin, cout = kernel.shape
    K = kh * kw * cin
    k2 = np.ascontiguousarray(kernel).reshape(K, cout)
    pointwise = _pointwise((kh, kw), strides, pads)
    if out is None:
        dz = np.empty((cols.shape[0], cout), g.dtype)
        dcols = np.empty(cols.shape, g.dtype) if need_dx and not pointwise else None
        dk, dx, db = np.empty(kernel.shape, kernel.dtype), None, np.empty(cout, g.dtype)
    else:
        dz, dcols, dk, dx, db = out
        dz = dz.reshape(-1, cout)
    if need_dx and dx is None:
        dx = np.empty(x.shape, x.dtype)
    if pointwise:  # dense's backward on the image's rows
        dx2, _, db = dense_grad(g, cols, k2, zy, y, kind, alpha, bias, need_dx,
                                out=(dz, dx if need_dx else cols[:0], dk.reshape(K, cout), db))
        return (dx2.reshape(x.shape) if need_dx else None), dk, db
    B, H = x.shape[:2]
    OH, OW = out_hw(x.shape, (kh, kw), strides, dilation, pads)
    if not need_dx:  # nothing is read or written: shapes only
        dcols, dx = cols[:0], np.empty((0, 0, 0, cin), x.dtype)
    parts = _parts(B, cols.shape[0] * K * cout)
    per = _per_block(B, OH * OW, K, cout, x.itemsize, small=True)
    # each block of images sums its own kernel and bias gradients; they are added after
    dkts, dbs = np.empty((parts, cout, K), k2.dtype), np.empty((parts, cout), g.dtype)
    geom = _geom((kh, kw), strides, dilation)
    dt = g.dtype
    # tiled as conv2d's forward (which then wrote no cols): dk from x and dZ's tiles; dx
    # too where dZ's padding is a correlation's (dx[h] reads dZ rows h + pt - i, i < 3: dZ
    # correlated with the flipped kernel, its channels swapped, padded by 2 - pt)
    tiled = _tiled(geom, cin) * (2 if need_dx and pads[0] <= 2 and pads[2] <= 2 else 1)
    kb = _tile_bufs(kernel if tiled else None, (OH, OW), parts, per, dt, "k")[1:]
    kbufs = ((np.ascontiguousarray(x), *kb,
              _scratch("ktmp", (parts, 16, cin, cout), dt),
              _scratch("ksums", (parts, 16, cin, cout), dt))
             if tiled else (_empty(4, dt), *kb, _empty(4, dt), _empty(4, dt)))
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2) if tiled == 2 else None
    xbufs = _tile_bufs(flipped, x.shape[1:3], parts, per, dt, "x")
    bwd = _conv_bwd.of(CODE=code_of(kind), GEOM=geom)
    args = (rows(g, cout), cols, k2, rows(zy, cout), rows(y, cout), dt.type(alpha), H,
            OH * OW, kh, kw, strides[0], strides[1], dilation[0], dilation[1], pads[0],
            pads[2], per, need_dx, dz, dcols.reshape(-1, OH, OW, kh, kw, cin), dcols, dkts,
            np.empty_like(dkts), dbs, dx, dz.reshape(B, OH, OW, cout), tiled, kbufs, xbufs,
            -(-B // parts))
    _by_images(bwd, args, B, parts, per * OH * OW * K * cout)
    if tiled:
        dk[...] = k_grad_from(kbufs[-1].sum(0))
    else:
        dk.reshape(K, cout)[...] = dkts.sum(0).T
    db[...] = dbs.sum(0)
    return (dx if need_dx else None), dk, db if bias else None


def conv2d_transpose(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                     strides: tuple, dilation: tuple, pads: tuple, out_size: tuple,
                     kind: str | None, alpha: float = 0.0, keep_z: bool = False,
                     out: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, z)``: the adjoint of conv2d applied to ``x``, ``y = act(col2im(x kernel^T) +
    bias)`` of shape ``(B, *out_size, out)`` with kernel ``(kh, kw, out, in)``; the conv2d of
    such a ``y`` (same strides, dilation, pads) has ``x``'s height and width.
    ``out = (y, z, cols)`` are arrays to write into."""
    kh, kw, cout, cin = kernel.shape
    _check_channels(x, cin, "conv2d_transpose")
    y_shape = (x.shape[0], int(out_size[0]), int(out_size[1]), cout)
    if out_hw(y_shape, (kh, kw), strides, dilation, pads) != x.shape[1:3]:
        raise ValueError(f"conv2d_transpose: an output of {tuple(out_size)} pixels does not "
                         f"convolve back to the input's {x.shape[1:3]} with strides {strides}, "
                         f"dilation {dilation} and pads {pads}")
    k2 = np.ascontiguousarray(kernel).reshape(kh * kw * cout, cin)
    cols = np.empty((x.size // cin, k2.shape[0]), x.dtype) if out is None else out[2]
    np.dot(np.ascontiguousarray(x).reshape(-1, cin), k2.T, out=cols)
    return _gather(cols, y_shape, (kh, kw), strides, dilation, pads, bias, kind, alpha, keep_z,
                   None if out is None else out[:2])


def conv2d_transpose_grad(g: np.ndarray, x: np.ndarray, kernel: np.ndarray, zy: np.ndarray,
                          y: np.ndarray, strides: tuple, dilation: tuple, pads: tuple,
                          kind: str | None, alpha: float = 0.0, bias: bool = True,
                          need_dx: bool = True, out: tuple | None = None
                          ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(dx, dkernel, dbias)`` of conv2d_transpose: ``dZ = g act'(z)``, ``dbias`` its sums,
    ``dx = im2col(dZ) kernel`` (conv2d's forward, skipped unless ``need_dx``) and
    ``dkernel = im2col(dZ)^T x``. ``out = (dcols, dkernel, dx)`` are arrays to write into."""
    kh, kw, cout, cin = kernel.shape
    dz = g if code_of(kind) == 0 else activation_grad(g, zy, y, kind, alpha)
    db = dz.reshape(-1, cout).sum(0) if bias else None
    dcols = im2col(dz, (kh, kw), strides, dilation, pads, out=None if out is None else out[0])
    if dcols.shape[0] != x.size // cin:
        raise ValueError(f"conv2d_transpose_grad: the gradient {g.shape} does not convolve "
                         f"back to the input {x.shape}")
    k2 = np.ascontiguousarray(kernel).reshape(kh * kw * cout, cin)
    dk = np.empty(kernel.shape, kernel.dtype) if out is None else out[1]
    np.dot(dcols.T, np.ascontiguousarray(x).reshape(-1, cin), out=dk.reshape(k2.shape))
    dx = None
    if need_dx:
        dx = np.empty(x.shape, x.dtype) if out is None else out[2]
        np.dot(dcols, k2, out=dx.reshape(-1, cin))
    return dx, dk, db
