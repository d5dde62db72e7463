"""Convolution kernels on the GPU: im2col / col2im grid-stride kernels around the tiled GEMM.

The same plan as the CPU family (``kernels/cpu/conv.py``): conv2d is im2col, then the dense
kernels (one GEMM and the fused bias + activation epilogue; backward ``dZ``, the bias sums
and two GEMMs); conv2d_transpose is a GEMM, then col2im with the bias and activation applied
on the way out. ``col2im`` gathers: one thread per image element sums the column entries
that read it, so no atomics are needed and the sums come out in the CPU's order.
"""

from __future__ import annotations

from numba import cuda

from ..cpu.activation import code_of
from ..cpu.conv import _pointwise, out_hw
from . import _base
from .activation import act, activation_grad
from .dense import dense, dense_grad
from .matmul import matmul

__all__ = ["im2col", "col2im", "conv2d", "conv2d_grad", "conv2d_transpose",
           "conv2d_transpose_grad"]


@cuda.jit
def _im2col(x, cols, H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, zero):
    # cols[n, oh, ow, i, j, c] = x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c] (0 off the
    # image); one thread per column entry, so neighbouring threads write neighbouring memory
    for e in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        c = e % C
        r = e // C
        j = r % kw
        r //= kw
        i = r % kh
        r //= kh
        ow = r % OW
        r //= OW
        oh = r % OH
        n = r // OH
        h = oh * sh - pt + i * dh
        w = ow * sw - pl + j * dw
        if 0 <= h < H and 0 <= w < W:
            cols[e] = x[((n * H + h) * W + w) * C + c]
        else:
            cols[e] = zero


@cuda.jit
def _col2im(cols, b, z, y, H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, has_bias, code,
            alpha, zero):
    # z[n, h, w, c] = b[c] + sum of cols[n, oh, ow, i, j, c] over the taps that read (h, w):
    # oh = (h + pt - i*dh) / sh where that divides and lands in range (the same for w);
    # y = act(z). One thread per image element: a gather, no atomics.
    for e in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        n, h, w, c = _base.nhwc(e, H, W, C)
        acc = b[c] if has_bias else zero
        for i in range(kh):
            t = h + pt - i * dh
            if t < 0 or t % sh != 0 or t // sh >= OH:
                continue
            row = (n * OH + t // sh) * OW
            for j in range(kw):
                u = w + pl - j * dw
                if u < 0 or u % sw != 0 or u // sw >= OW:
                    continue
                acc += cols[(((row + u // sw) * kh + i) * kw + j) * C + c]
        z[e] = acc
        y[e] = act(code, acc, alpha)


def im2col(x, ksize: tuple, strides: tuple, dilation: tuple, pads: tuple, out=None):
    """``cols (B*OH*OW, kh*kw*C)``: row ``(n, oh, ow)`` holds output pixel ``(oh, ow)``'s
    receptive field in ``(i, j, c)`` order, zero where it overhangs the image."""
    from . import asarray

    x = asarray(x)
    shape = tuple(x.shape)
    OH, OW = out_hw(shape, ksize, strides, dilation, pads)
    B, H, W, C = shape
    kh, kw = ksize
    if _pointwise(ksize, strides, pads):
        return _base.rows(x, C)
    cols = _base.empty((B * OH * OW, kh * kw * C), x.dtype)
    if cols.size:
        _im2col[_base.blocks(cols.size), _base.TPB](
            _base.flat(x), _base.flat(cols), H, W, C, OH, OW, kh, kw, strides[0], strides[1],
            dilation[0], dilation[1], pads[0], pads[2], x.dtype.type(0))
    return cols


def _gather(cols, x_shape: tuple, ksize: tuple, strides: tuple, dilation: tuple, pads: tuple,
            bias, kind: str | None, alpha: float, keep_z: bool):
    """``(y, z)``: ``z = col2im(cols) + bias``, ``y = act(z)`` (y is z unless keep_z)."""
    from . import asarray

    OH, OW = out_hw(x_shape, ksize, strides, dilation, pads)
    B, H, W, C = x_shape
    kh, kw = ksize
    cols = asarray(cols)
    if tuple(cols.shape) != (B * OH * OW, kh * kw * C):
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not match the image "
                         f"{tuple(x_shape)} ({B * OH * OW} rows of {kh * kw * C} expected)")
    z = _base.empty(x_shape, cols.dtype)
    y = _base.empty(x_shape, cols.dtype) if keep_z else z
    if z.size:
        bb = asarray(bias) if bias is not None else z  # z stands in for no bias (unread)
        _col2im[_base.blocks(z.size), _base.TPB](
            _base.flat(cols), _base.flat(bb), _base.flat(z), _base.flat(y), H, W, C, OH, OW,
            kh, kw, strides[0], strides[1], dilation[0], dilation[1], pads[0], pads[2],
            bias is not None, code_of(kind), cols.dtype.type(alpha), cols.dtype.type(0))
    return y, z


def col2im(cols, x_shape: tuple, ksize: tuple, strides: tuple, dilation: tuple, pads: tuple,
           out=None):
    """The adjoint of ``im2col``: an image of ``x_shape`` where each pixel is the sum of the
    ``cols`` entries that im2col copied from it."""
    return _gather(cols, tuple(x_shape), ksize, strides, dilation, pads, None, None, 0.0,
                   False)[0]


def _check_channels(x, c: int, what: str) -> None:
    if x.ndim != 4 or x.shape[3] != c:
        raise ValueError(f"{what}: the image {tuple(x.shape)} must be (batch, height, width, "
                         f"{c})")


def conv2d(x, kernel, bias, strides: tuple, dilation: tuple, pads: tuple, kind: str | None,
           alpha: float = 0.0, keep_z: bool = False, out=None):
    """``(y, z, cols)``: ``y = act(conv(x, kernel) + bias)`` of shape ``(B, OH, OW, out)``,
    its pre-activation ``z`` and the im2col rows backward reuses (``out`` is ignored)."""
    from . import asarray

    x, kernel = asarray(x), asarray(kernel)
    kh, kw, cin, cout = kernel.shape
    _check_channels(x, cin, "conv2d")
    OH, OW = out_hw(tuple(x.shape), (kh, kw), strides, dilation, pads)
    cols = im2col(x, (kh, kw), strides, dilation, pads)
    y, z = dense(cols, _base.rows(kernel, cout), bias, kind, alpha, keep_z)
    shape = (x.shape[0], OH, OW, cout)
    return y.reshape(shape), z.reshape(shape), cols


def conv2d_grad(g, x, cols, kernel, zy, y, strides: tuple, dilation: tuple, pads: tuple,
                kind: str | None, alpha: float = 0.0, bias: bool = True, need_dx: bool = True,
                out=None):
    """``(dx, dkernel, dbias)`` of conv2d: ``dZ = g act'(z)``, ``dbias`` its column sums,
    ``dkernel = cols^T dZ``, ``dx = col2im(dZ kernel^T)`` (skipped unless ``need_dx``)."""
    from . import asarray

    kernel = asarray(kernel)
    kh, kw, cin, cout = kernel.shape
    dcols, dk2, db = dense_grad(g, cols, _base.rows(kernel, cout), zy, y, kind, alpha, bias,
                                need_dx)
    dx = col2im(dcols, tuple(x.shape), (kh, kw), strides, dilation, pads) if need_dx else None
    return dx, dk2.reshape(kernel.shape), db


def conv2d_transpose(x, kernel, bias, strides: tuple, dilation: tuple, pads: tuple,
                     out_size: tuple, kind: str | None, alpha: float = 0.0, keep_z: bool = False,
                     out=None):
    """``(y, z)``: ``y = act(col2im(x kernel^T) + bias)`` of shape ``(B, *out_size, out)``
    with kernel ``(kh, kw, out, in)``, the adjoint of conv2d (``out`` is ignored)."""
    from . import asarray

    x, kernel = asarray(x), asarray(kernel)
    kh, kw, cout, cin = kernel.shape
    _check_channels(x, cin, "conv2d_transpose")
    y_shape = (x.shape[0], int(out_size[0]), int(out_size[1]), cout)
    if out_hw(y_shape, (kh, kw), strides, dilation, pads) != tuple(x.shape)[1:3]:
        raise ValueError(f"conv2d_transpose: an output of {tuple(out_size)} pixels does not "
                         f"convolve back to the input's {tuple(x.shape)[1:3]} with strides "
                         f"{strides}, dilation {dilation} and pads {pads}")
    cols = matmul(_base.rows(x, cin), _base.rows(kernel, cin), trans_b=True)
    return _gather(cols, y_shape, (kh, kw), strides, dilation, pads, bias, kind, alpha, keep_z)


def conv2d_transpose_grad(g, x, kernel, zy, y, strides: tuple, dilation: tuple, pads: tuple,
                          kind: str | None, alpha: float = 0.0, bias: bool = True,
                          need_dx: bool = True, out=None):
    """``(dx, dkernel, dbias)`` of conv2d_transpose: ``dZ = g act'(z)``, ``dbias`` its sums,
    ``dx = im2col(dZ) kernel`` (conv2d's forward) and ``dkernel = im2col(dZ)^T x``."""
    from . import asarray
    from .reduce import sum as rsum

    g, x, kernel = asarray(g), asarray(x), asarray(kernel)
    kh, kw, cout, cin = kernel.shape
    dz = g if code_of(kind) == 0 else activation_grad(g, zy, y, kind, alpha)
    db = rsum(_base.rows(dz, cout), (0,)) if bias else None
    dcols = im2col(dz, (kh, kw), strides, dilation, pads)
    if dcols.shape[0] != x.size // cin:
        raise ValueError(f"conv2d_transpose_grad: the gradient {tuple(g.shape)} does not "
                         f"convolve back to the input {tuple(x.shape)}")
    x2 = _base.rows(x, cin)
    dk = matmul(dcols, x2, trans_a=True).reshape(kernel.shape)
    dx = matmul(dcols, _base.rows(kernel, cin)).reshape(tuple(x.shape)) if need_dx else None
    return dx, dk, db
