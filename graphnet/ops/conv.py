"""Convolution ops: ``conv2d`` and its adjoint ``conv2d_transpose``, one node each, as in Keras.

Channels-last images ``(batch, height, width, channels)``; kernels in Keras' layouts, Conv2D
``(kh, kw, in, filters)`` and Conv2DTranspose ``(kh, kw, filters, in)`` (one array serves a
conv and the transpose that undoes its shapes). ``padding="same"`` pads as TensorFlow does:
``ceil(n / stride)`` outputs, the odd pixel of padding at the bottom and right; conv2d also
takes explicit pads ``((top, bottom), (left, right))`` (Conv1D's "causal" pads on the left).
Conv2DTranspose's ``output_padding`` (Keras') adds rows/columns at the far end of the output.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .activation import check_fused
from .base import Op, pair, same_float_dtype
from .dense import _ALPHA, _NEEDS_Z

__all__ = ["conv2d", "conv2d_transpose"]


def conv_length(n: int | None, k: int, s: int, d: int, padding: str | tuple
                ) -> tuple[int | None, int, int]:
    """``(out, pad_before, pad_after)`` of a convolution along an axis of ``n`` pixels with
    kernel ``k``, stride ``s`` and dilation ``d``: valid pads nothing, same gives
    ``ceil(n / s)`` outputs and pads ``(out - 1) s + (k - 1) d + 1 - n`` in all, half before;
    an explicit ``(before, after)`` pads so much."""
    if n is None:
        return None, 0, 0
    ek = (k - 1) * d + 1
    if isinstance(padding, tuple):
        return (n + padding[0] + padding[1] - ek) // s + 1, padding[0], padding[1]
    if padding == "valid":
        return (n - ek) // s + 1, 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return out, total // 2, total - total // 2


def transpose_length(n: int | None, k: int, s: int, d: int, padding: str,
                     output_padding: int | None = None) -> tuple[int | None, int, int]:
    """``(out, pad_before, pad_after)`` of a transposed convolution: Keras' output length
    (valid: ``n s + max(k_eff - s, 0)``, same: ``n s``; with ``output_padding`` p:
    ``(n - 1) s + k_eff - 2 pad + p``, pad 0 for valid and ``k_eff // 2`` for same) and the
    pads of the conv it undoes (TensorFlow's: the odd pixel after)."""
    if n is None:
        return None, 0, 0
    ek = (k - 1) * d + 1
    if output_padding is not None:
        m = (n - 1) * s + ek - 2 * (ek // 2 if padding == "same" else 0) + output_padding
    else:
        m = n * s + max(ek - s, 0) if padding == "valid" else n * s
    return (m, *conv_length(m, k, s, d, padding)[1:])


class _Conv(Op):
    """What conv2d and its transpose share: attributes, the shape rule, the geometry."""

    family = "conv"
    _in_axis = 2   # the kernel axis that must match the input's channels
    _length = staticmethod(conv_length)
    _explicit = False  # whether explicit pads ((top, bottom), (left, right)) are allowed

    def infer(self, x, k, *b):
        check_fused(self.activation, self.name)
        explicit = (self._explicit and isinstance(self.padding, tuple)
                    and len(self.padding) == 2 and all(
                        isinstance(p, tuple) and len(p) == 2 and min(p) >= 0
                        for p in self.padding))
        if self.padding not in ("valid", "same") and not explicit:
            raise GraphError(f"padding must be 'valid' or 'same'"
                             f"{' or ((top, bottom), (left, right))' if self._explicit else ''}"
                             f", got {self.padding!r}")
        dt = same_float_dtype(x, k, *b)
        if x.ndim != 4:
            raise GraphError(f"{self.name} expects channels-last (batch, height, width, "
                             f"channels) input, got x {fmt_shape(x.shape)}")
        layout = "(kernel_height, kernel_width, " + \
            ("in_channels, filters)" if self._in_axis == 2 else "filters, in_channels)")
        if k.ndim != 4 or None in k.shape:
            raise GraphError(f"the kernel must be 4-D {layout}, got {fmt_shape(k.shape)}")
        cin, filters = k.shape[self._in_axis], k.shape[5 - self._in_axis]
        if x.shape[3] != cin:
            raise GraphError(f"x {fmt_shape(x.shape)} has {x.shape[3]} channels but the kernel "
                             f"{fmt_shape(k.shape)} {layout} expects {cin}")
        if b and b[0].shape != (filters,):
            raise GraphError(f"the bias must have shape ({filters},), one per filter of the "
                             f"kernel {fmt_shape(k.shape)}, got {fmt_shape(b[0].shape)}")
        self._check_fit(x.shape, k.shape)
        oh, ow = self._geometry(x.shape, k.shape)[0]
        return (x.shape[0], oh, ow, filters), dt

    def _check_fit(self, x_shape: tuple, k_shape: tuple) -> None:
        """A transposed convolution takes any input size."""

    def _paddings(self) -> tuple:
        """The padding argument of ``_length`` for each of the two axes."""
        if isinstance(self.padding, tuple):
            return self.padding
        return (self.padding, self.padding)

    def _geometry(self, x_shape: tuple, k_shape: tuple) -> tuple[tuple, tuple]:
        """``((OH, OW), (top, bottom, left, right))`` for an input of ``x_shape``."""
        (oh, t, b), (ow, left, r) = (
            self._length(n, k, s, d, p)
            for n, k, s, d, p in zip(x_shape[1:3], k_shape[:2], self.strides,
                                     self.dilation_rate, self._paddings()))
        return (oh, ow), (t, b, left, r)

    def _act(self) -> tuple[str, float, bool]:
        return self.activation, _ALPHA.get(self.activation, 0.0), self.activation in _NEEDS_Z


class Conv2D(_Conv):
    """z = conv(x, K) + b, y = act(z): x (B, H, W, in), K (kh, kw, in, out), b (out,);
    as GEMMs, z = im2col(x) K2 + b with K2 = K as (kh kw in, out).

    Backward: dZ = g act'(z), db = sum of dZ over (B, OH, OW), dK2 = im2col(x)^T dZ,
    dx = col2im(dZ K2^T) (each column entry summed back onto the pixel it was copied from).
    """

    name = "conv2d"
    _explicit = True

    def _check_fit(self, x_shape: tuple, k_shape: tuple) -> None:
        """A valid convolution needs the dilated kernel to fit inside the (padded) input."""
        for n, kk, d, p in zip(x_shape[1:3], k_shape[:2], self.dilation_rate,
                               self._paddings()):
            ek = (kk - 1) * d + 1
            extra = sum(p) if isinstance(p, tuple) else 0
            if p != "same" and n is not None and n + extra < ek:
                raise GraphError(f"the {k_shape[0]}x{k_shape[1]} kernel"
                                 f"{f' (dilated to {ek} pixels)' if d > 1 else ''} is larger "
                                 f"than the {x_shape[1]}x{x_shape[2]} input with "
                                 f"padding='valid'; use padding='same' or a smaller kernel")

    def forward(self, ctx, x, k, *b):
        act, alpha, keep_z = self._act()
        (oh, ow), ctx.pads = self._geometry(x.shape, k.shape)
        shape = (x.shape[0], oh, ow, k.shape[3])
        z = ctx.buffer("z", shape, x.dtype)
        # a 1x1 kernel at stride 1 without padding reads x itself as its im2col rows
        pointwise = tuple(k.shape)[:2] == (1, 1) and self.strides == (1, 1) and not any(ctx.pads)
        ctx.pointwise = pointwise  # backward then needs no dcols (dense's dx is the image's)
        out = None if z is None else (
            ctx.buffer("y", shape, x.dtype) if keep_z else z, z,
            None if pointwise else ctx.buffer(
                "cols", (x.shape[0] * oh * ow, k.shape[0] * k.shape[1] * k.shape[2]), x.dtype))
        y, ctx.z, ctx.cols = ctx.be.conv2d(x, k, b[0] if b else None, self.strides,
                                           self.dilation_rate, ctx.pads, act, alpha,
                                           keep_z=keep_z, out=out)
        return y

    def backward(self, ctx, g, y, x, k, *b):
        act, alpha, _ = self._act()
        need_dx = ctx.wants(0)
        dz = ctx.buffer("dz", g.shape, g.dtype)
        out = None if dz is None else (
            dz, ctx.buffer("dcols", ctx.cols.shape, g.dtype)
            if need_dx and not ctx.pointwise else None,
            ctx.buffer("dk", k.shape, k.dtype),
            ctx.buffer("dx", x.shape, x.dtype) if need_dx else None,
            ctx.buffer("db", k.shape[3:], k.dtype))
        dx, dk, db = ctx.be.conv2d_grad(g, x, ctx.cols, k, ctx.z, y, self.strides,
                                        self.dilation_rate, ctx.pads, act, alpha,
                                        bias=bool(b), need_dx=need_dx, out=out)
        return (dx, dk, db) if b else (dx, dk)


class Conv2DTranspose(_Conv):
    """The adjoint of conv2d: z = col2im(x K2^T) + b, y = act(z): x (B, H, W, in),
    K (kh, kw, out, in) as K2 (kh kw out, in); conv2d of y gives back H x W.

    Backward: dZ = g act'(z), db = sum of dZ, dx = im2col(dZ) K2 (conv2d's forward),
    dK2 = im2col(dZ)^T x.
    """

    name = "conv2d_transpose"
    _in_axis = 3

    def _check_fit(self, x_shape: tuple, k_shape: tuple) -> None:
        """Keras' rule: each output padding is smaller than its stride."""
        op = getattr(self, "output_padding", None)
        if op is not None and any(not 0 <= p < s for p, s in zip(op, self.strides)):
            raise GraphError(f"output_padding {op} must be non-negative and smaller than the "
                             f"strides {self.strides}")

    def _geometry(self, x_shape: tuple, k_shape: tuple) -> tuple[tuple, tuple]:
        op = getattr(self, "output_padding", None) or (None, None)
        (oh, t, b), (ow, left, r) = (
            transpose_length(n, k, s, d, self.padding, p)
            for n, k, s, d, p in zip(x_shape[1:3], k_shape[:2], self.strides,
                                     self.dilation_rate, op))
        return (oh, ow), (t, b, left, r)

    def forward(self, ctx, x, k, *b):
        act, alpha, keep_z = self._act()
        size, ctx.pads = self._geometry(x.shape, k.shape)
        shape = (x.shape[0], *size, k.shape[2])
        z = ctx.buffer("z", shape, x.dtype)
        out = None if z is None else (
            ctx.buffer("y", shape, x.dtype) if keep_z else z, z,
            ctx.buffer("cols", (x.size // k.shape[3], k.size // k.shape[3]), x.dtype))
        y, ctx.z = ctx.be.conv2d_transpose(x, k, b[0] if b else None, self.strides,
                                           self.dilation_rate, ctx.pads, size, act, alpha,
                                           keep_z=keep_z, out=out)
        return y

    def backward(self, ctx, g, y, x, k, *b):
        act, alpha, _ = self._act()
        need_dx = ctx.wants(0)
        dk = ctx.buffer("dk", k.shape, k.dtype)
        out = None if dk is None else (
            ctx.buffer("dcols", (x.size // k.shape[3], k.size // k.shape[3]), g.dtype), dk,
            ctx.buffer("dx", x.shape, x.dtype) if need_dx else None)
        dx, dk, db = ctx.be.conv2d_transpose_grad(g, x, k, ctx.z, y, self.strides,
                                                  self.dilation_rate, ctx.pads, act, alpha,
                                                  bias=bool(b), need_dx=need_dx, out=out)
        return (dx, dk, db) if b else (dx, dk)


def _padding(padding) -> str | tuple:
    """"valid"/"same" in lower case, or explicit pads as a tuple of int pairs."""
    if isinstance(padding, str):
        return padding.lower()
    try:
        return tuple((int(a), int(b)) for a, b in padding)
    except (TypeError, ValueError):
        return padding


def _attrs(strides, padding, dilation_rate, activation) -> dict:
    return dict(padding=_padding(padding), strides=pair(strides, "strides"),
                activation="linear" if activation is None else activation,
                dilation_rate=pair(dilation_rate, "dilation_rate"))


def conv2d(x, kernel, bias=None, strides: int | tuple = 1, padding: str = "valid",
           dilation_rate: int | tuple = 1, activation: str | None = None) -> Tensor:
    """``activation(conv(x, kernel) + bias)`` as one node: x ``(batch, H, W, in)``, kernel
    ``(kh, kw, in, filters)``, ``padding`` "valid", "same" (TensorFlow's) or explicit
    ``((top, bottom), (left, right))``, strides and dilation an int or a pair;
    ``activation`` as gn.dense takes it."""
    attrs = _attrs(strides, padding, dilation_rate, activation)
    return apply(Conv2D(**attrs), [x, kernel] if bias is None else [x, kernel, bias])


def conv2d_transpose(x, kernel, bias=None, strides: int | tuple = 1, padding: str = "valid",
                     dilation_rate: int | tuple = 1, activation: str | None = None,
                     output_padding: int | tuple | None = None) -> Tensor:
    """Keras' Conv2DTranspose as one node: x ``(batch, H, W, in)``, kernel ``(kh, kw, filters,
    in)``; output ``H s + max(kh - s, 0)`` rows for "valid", ``H s`` for "same", or with
    ``output_padding`` p ``(H - 1) s + kh - 2 pad + p`` (see ``transpose_length``)."""
    attrs = _attrs(strides, padding, dilation_rate, activation)
    if output_padding is not None:
        op = (output_padding,) * 2 if isinstance(output_padding, int) else tuple(output_padding)
        if len(op) != 2 or not all(isinstance(p, int) and p >= 0 for p in op):
            raise GraphError(f"output_padding must be a non-negative int or a pair of them, "
                             f"got {output_padding!r}")
        attrs["output_padding"] = op
    return apply(Conv2DTranspose(**attrs), [x, kernel] if bias is None else [x, kernel, bias])
