"""One ONNX converter per graphnet op (the table ``emitter.CONVERTERS``), by family.

Each function gets the Emitter ``e``, the graphnet node ``t`` (its static attributes on
``t.op``, its inputs' shapes on ``t.inputs``) and the ONNX names ``xs`` of its inputs, and
returns the ONNX name of its result. graphnet is channels-last (NHWC, conv kernels
``(kh, kw, in, out)``); ONNX's Conv, ConvTranspose, the poolings and RoiAlign are NCHW, so
those converters transpose at their boundaries (ONNX Runtime folds the Transpose pairs of
neighbouring convs away) and transpose the weights. Inference only: dropout is the
identity. Keras' gate orders become ONNX's in the recurrent converters.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor
from .emitter import Emitter, converts

__all__ = ["TRAINING_ONLY"]  # converters register themselves in emitter.CONVERTERS

# ops the inference export leaves out on purpose: the losses (export the predictions)
TRAINING_ONLY = ("mse", "mae", "huber", "binary_cross_entropy", "sigmoid_cross_entropy",
                 "softmax_cross_entropy")

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def value(t: Tensor) -> np.ndarray:
    """The array of a Parameter or constant input (weights the converters re-lay out), or of
    a node computed from those alone (Conv1D's kernel reshaped for conv2d), folded here."""
    if t.kind in ("parameter", "constant"):
        return np.asarray(t.value)
    if t.kind == "op" and all(a.kind in ("parameter", "constant", "op")
                              for a in t.graph.ancestors([t])):
        from ..core.program import compile as _compile
        return np.asarray(_compile(t)({}))
    raise GraphError(f"the ONNX export needs {t.name!r} to be a Parameter or constant "
                     f"(its layout is changed at export), got a {t.kind} node")


# -- activations ------------------------------------------------------------------------------

# leaky_relu's slope and elu's scale when a fused node (dense, conv) applies them
FUSED_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}


def activation(e: Emitter, x: str, kind: str, alpha: float | None = None) -> str:
    """``kind(x)`` as ONNX nodes: one node each, gelu composed (exact erf form)."""
    if kind == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if kind in simple:
        return e.node(simple[kind], [x])
    if kind in ("leaky_relu", "elu"):
        a = FUSED_ALPHA[kind] if alpha is None else alpha
        return e.node("LeakyRelu" if kind == "leaky_relu" else "Elu", [x], alpha=float(a))
    if kind == "gelu":  # x/2 (1 + erf(x / sqrt 2)); ONNX's Gelu op needs opset 20
        dt = None if e.tensor is None else e.tensor.dtype
        erf = e.node("Erf", [e.node("Div", [x, e.const(math.sqrt(2.0), dt)])])
        half = e.node("Mul", [x, e.const(0.5, dt)])
        return e.node("Mul", [half, e.node("Add", [erf, e.const(1.0, dt)])])
    raise GraphError(f"activation {kind!r} has no ONNX form")


@converts("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu")
def _activation(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return activation(e, xs[0], t.op.kind, t.op.alpha)


@converts("softmax", "log_softmax")
def _softmax(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("LogSoftmax" if t.op.log else "Softmax", xs, axis=int(t.op.axis))


# -- elementwise, matmul, dense -----------------------------------------------------------------

_ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
                "neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs",
                "matmul": "MatMul"}


@converts(*_ELEMENTWISE)
def _elementwise(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node(_ELEMENTWISE[t.op.name], xs)  # NumPy broadcasting, as ONNX's


@converts("dense")
def _dense(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """act(x W + b): MatMul (+ Add) + the activation, for x of any rank."""
    y = e.node("MatMul", xs[:2])
    if len(xs) > 2:
        y = e.node("Add", [y, xs[2]])
    return activation(e, y, t.op.activation)


@converts("dropout", "stop_gradient")
def _dropout(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return xs[0]  # inference graph: both are the identity, so they leave no node


# -- shape ----------------------------------------------------------------------------------------

@converts("reshape")
def _reshape(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("Reshape", [xs[0], e.ints(t.op.run_shape)])  # -1 marks the batch


@converts("transpose")
def _transpose(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("Transpose", xs, perm=list(t.op.perm))


@converts("concatenate")
def _concatenate(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("Concat", xs, axis=int(t.op.ax))


@converts("slice")
def _slice(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """Basic indexing: one Slice for every axis, then Squeeze for the int-indexed ones."""
    starts, ends, axes, steps, drop = [], [], [], [], []
    for axis, k in enumerate(t.op.key):
        if isinstance(k, slice):
            if k == slice(None):
                continue
            step = 1 if k.step is None else int(k.step)
            start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
            stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
            starts.append(int(start)), ends.append(int(stop)), steps.append(step)
        else:
            i = int(k)
            starts.append(i), ends.append(INT64_MAX if i == -1 else i + 1), steps.append(1)
            drop.append(axis)
        axes.append(axis)
    y = xs[0]
    if axes:
        y = e.node("Slice", [y, e.ints(starts), e.ints(ends), e.ints(axes), e.ints(steps)])
    if drop:
        y = e.node("Squeeze", [y, e.ints(drop)])
    return y if y != xs[0] else e.node("Identity", [y])


# -- reductions -------------------------------------------------------------------------------

@converts("sum", "mean", "max")
def _reduce(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """ReduceSum / ReduceMean / ReduceMax, axes as an input (opset 18)."""
    kind = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}[t.op.name]
    return e.node(kind, [xs[0], e.ints(t.op.axes)], keepdims=int(t.op.keepdims))


# -- convolution, pooling, up-sampling (NHWC in graphnet, NCHW in ONNX) ---------------------------

def _nchw(e: Emitter, x: str) -> str:
    """x as NCHW: the value before the NHWC Transpose that made x, where one did (so two
    convs in a row leave no Transpose pair between them), else a Transpose."""
    return e.layouts.get(x) or e.node("Transpose", [x], perm=list(TO_NCHW))


def _nhwc(e: Emitter, x: str) -> str:
    y = e.node("Transpose", [x], perm=list(TO_NHWC))
    e.layouts[y] = x
    return y


def _onnx_pads(pads: tuple) -> list[int]:
    """graphnet's (top, bottom, left, right) as ONNX's (top, left, bottom, right): TF's
    "same" padding written out, the odd pixel at the bottom and right."""
    top, bottom, left, right = pads
    return [int(top), int(left), int(bottom), int(right)]


@converts("conv2d", "conv2d_transpose")
def _conv(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """Conv / ConvTranspose between Transposes; the kernel laid out as ONNX wants it:
    Conv2D (kh, kw, in, out) -> (out, in, kh, kw), Conv2DTranspose (kh, kw, out, in) ->
    (in, out, kh, kw): both are the axes (3, 2, 0, 1)."""
    op, x, k = t.op, t.inputs[0], t.inputs[1]
    w = e.const(value(k).transpose(3, 2, 0, 1), base=f"{k.name}/oihw")
    (oh, ow), pads = op._geometry(x.shape, k.shape)
    attrs = dict(kernel_shape=list(k.shape[:2]), strides=list(op.strides),
                 dilations=list(op.dilation_rate), pads=_onnx_pads(pads))
    if op.name == "conv2d_transpose":
        # the output size Keras gives, where (n - 1) s + k_eff - pads falls short of it
        attrs["output_padding"] = [
            int(m - ((n - 1) * s + (kk - 1) * d + 1 - a - b))
            for m, n, s, kk, d, (a, b) in zip((oh, ow), x.shape[1:3], op.strides, k.shape[:2],
                                              op.dilation_rate, (pads[:2], pads[2:]))]
    y = e.node("Conv" if op.name == "conv2d" else "ConvTranspose",
               [_nchw(e, xs[0]), w, *xs[2:3]], **attrs)
    return _nhwc(e, activation(e, y, op.activation))


@converts("max_pool2d", "avg_pool2d")
def _pool(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """MaxPool / AveragePool; padded cells never count (count_include_pad=0, TF's rule)."""
    op = t.op
    y = e.node("MaxPool" if op.kind == "max" else "AveragePool", [_nchw(e, xs[0])],
               kernel_shape=list(op.pool_size), strides=list(op.strides),
               pads=_onnx_pads(op.pads))
    return _nhwc(e, y)


@converts("upsample2d")
def _upsample(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """Resize on the NHWC axes: nearest repeats (asymmetric, floor), bilinear samples at
    half-pixel centres (TF2's resize, PyTorch's align_corners=False)."""
    sh, sw = t.op.size
    scales = e.const(np.array([1, sh, sw, 1], np.float32))
    if t.op.interpolation == "nearest":
        return e.node("Resize", [xs[0], "", scales], mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return e.node("Resize", [xs[0], "", scales], mode="linear",
                  coordinate_transformation_mode="half_pixel")


# -- embeddings -------------------------------------------------------------------------------

@converts("embedding")
def _embedding(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("Gather", [xs[1], xs[0]], axis=0)  # table rows by id


@converts("take")
def _take(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return e.node("Gather", xs, axis=0)


@converts("one_hot")
def _one_hot(e: Emitter, t: Tensor, xs: list[str]) -> str:
    off_on = e.const(np.array([0, 1], dtype=t.dtype))
    return e.node("OneHot", [xs[0], e.ints([t.op.depth]), off_on], axis=-1)


# -- recurrent --------------------------------------------------------------------------------
# ONNX's RNN / LSTM / GRU read time-major x (T, B, in) and weights (dirs, G u, in) with
# bias [W_b | R_b]; graphnet (as Keras) is batch-major with kernels (in, G u), bias (G u,).

_RNN_ACT = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "linear": "Affine"}
# Keras' LSTM gate blocks i, f, c, o in ONNX's order i, o, f, c
LSTM_GATES = (0, 3, 1, 2)


def _gates(a: np.ndarray, order: tuple[int, ...], axis: int) -> np.ndarray:
    """The gate blocks of ``a`` along ``axis`` in the given order."""
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def _recurrent(e: Emitter, t: Tensor, xs: list[str], kind: str, order: tuple[int, ...],
               acts: list[str], n_states: int, **attrs: object) -> tuple[str, list[str]]:
    """The ONNX recurrent node for SimpleRNN (order (0,)), LSTM or GRU; returns the
    batch-major sequence (B, T, u) and the last states' names (1, B, u). A bias of two rows
    (GRU's reset_after) is ONNX's [W_b | R_b]; one row is W_b, with R_b zero."""
    op = t.op
    W, U = value(t.inputs[1]), value(t.inputs[2])
    u = U.shape[0]
    bias = value(t.inputs[3]) if op.use_bias else np.zeros(W.shape[1], W.dtype)
    wb, rb = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
    w = e.const(_gates(W, order, 1).T[None], base=f"{t.inputs[1].name}/onnx")
    r = e.const(_gates(U, order, 1).T[None], base=f"{t.inputs[2].name}/onnx")
    b = e.const(np.concatenate([_gates(wb, order, 0), _gates(rb, order, 0)])[None],
                base=f"{t.inputs[3].name}/onnx" if op.use_bias else None)
    if getattr(op, "with_mask", False):  # recurrent dropout's mask: ones at inference
        if t.inputs[-1].op_name != "dropout":
            raise GraphError(f"{t.op_name} node {t.name!r} reads a recurrent mask from "
                             f"{t.inputs[-1].op_name} node {t.inputs[-1].name!r}; the ONNX "
                             "export takes it from recurrent dropout only (ones at inference)")
        xs = xs[:-1]
    states = xs[3 + int(op.use_bias):]
    init = [e.node("Unsqueeze", [s, e.ints([0])]) for s in states]
    if kind == "LSTM" and op.with_c0 and not op.with_h0:  # ONNX takes them in order h, c
        init = ["", *init]
    x = e.node("Transpose", [xs[0]], perm=[1, 0, 2])
    alpha_beta = {}
    if "Affine" in acts:  # consumed by the activations that take them only (onnxruntime)
        n = acts.count("Affine")
        alpha_beta = dict(activation_alpha=[1.0] * n, activation_beta=[0.0] * n)
    ys = e.node(kind, [x, w, r, b, "", *init], n_out=1 + n_states, hidden_size=int(u),
                activations=acts, **alpha_beta, **attrs)
    seq = e.node("Transpose", [e.node("Squeeze", [ys[0], e.ints([1])])], perm=[1, 0, 2])
    return seq, ys[1:]


@converts("simple_rnn")
def _simple_rnn(e: Emitter, t: Tensor, xs: list[str]) -> str:
    seq, _ = _recurrent(e, t, xs, "RNN", (0,), [_RNN_ACT[t.op.activation]], 1)
    return seq


@converts("lstm")
def _lstm(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """ONNX's LSTM (gates i, o, f, c; activations f = recurrent_activation, g = h =
    activation). With ``return_cell`` graphnet's node outputs [h_t | c_t] for every step,
    but ONNX's LSTM gives the last cell state only: that form exports when every reader
    takes the cell state at the last step only (what the layers' return_state does)."""
    op = t.op
    acts = [_RNN_ACT[op.recurrent_activation]] + [_RNN_ACT[op.activation]] * 2
    seq, (_, c_last) = _recurrent(e, t, xs, "LSTM", LSTM_GATES, acts, 2)
    if not op.return_cell:
        return seq
    u = t.inputs[2].shape[0]
    for r in e.readers(t):
        if not _reads_last_cell(r, u, t.shape[1]):
            who = "is an output" if r is None else f"is read by {r.op_name} node {r.name!r}"
            raise GraphError(f"lstm node {t.name!r} (return_cell=True, [h | c] for every step) "
                             f"{who}; the ONNX export can give the cell state of the last "
                             "step only (ONNX's LSTM), as the layers' return_state reads it")
    # [h_t | c_T]: the last cell state repeated over time, right for every allowed reader
    c = e.node("Transpose", [c_last], perm=[1, 0, 2])  # (B, 1, u)
    c = e.node("Expand", [c, e.node("Shape", [seq])])
    return e.node("Concat", [seq, c], axis=-1)


@converts("gru")
def _gru(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """ONNX's GRU. Keras' gates z, r, h are ONNX's z, r, h (same order), both take
    h_t = z h_{t-1} + (1 - z) h~; Keras' reset_after=True, h~ = g(x W_h + b_h + r (h U_h +
    b'_h)), is ONNX's linear_before_reset=1 with the bias rows as W_b and R_b, and
    reset_after=False, h~ = g(x W_h + b_h + (r h) U_h), is linear_before_reset=0 with R_b
    zero. go_backwards is the reversing slice the layer puts before the node."""
    op = t.op
    acts = [_RNN_ACT[op.recurrent_activation], _RNN_ACT[op.activation]]
    seq, _ = _recurrent(e, t, xs, "GRU", (0, 1, 2), acts, 1,
                        linear_before_reset=int(op.reset_after))
    return seq


def _reads_last_cell(r: Tensor, u: int, steps: int) -> bool:
    """Whether node r reads [h | c] as ``y[:, t, :u]`` (hidden states) or ``y[:, -1, u:]``
    (the last cell state)."""
    if r is None or r.op_name != "slice" or len(r.op.key) != 3:
        return False
    _, tk, fk = r.op.key
    if fk == slice(None, u) or fk == slice(0, u):
        return True
    return fk == slice(u, None) and not isinstance(tk, slice) and int(tk) in (-1, steps - 1)


# -- attention --------------------------------------------------------------------------------

@converts("attention")
def _attention(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """softmax(scale Q K^T (+ causal mask)) V as MatMul, Mul, Add, Softmax, MatMul; with
    heads last, (..., T, H, d) transposed to (..., H, T, d) around them."""
    op, q, k = t.op, t.inputs[0], t.inputs[1]
    n = q.ndim
    tq, tk = (q.shape[-3], k.shape[-3]) if op.heads_last else (q.shape[-2], k.shape[-2])
    swap = [*range(n - 3), n - 2, n - 3, n - 1]  # heads last <-> first (its own inverse)
    if op.heads_last:
        xs = [e.node("Transpose", [x], perm=swap) for x in xs]
    scale = op.scale if op.scale is not None else 1.0 / math.sqrt(q.shape[-1])
    kt = e.node("Transpose", [xs[1]], perm=[*range(n - 2), n - 1, n - 2])
    s = e.node("Mul", [e.node("MatMul", [xs[0], kt]), e.const(scale, t.dtype)])
    if op.causal:
        mask = np.where(np.triu(np.ones((tq, tk), bool), 1), np.finfo(t.dtype).min / 2, 0)
        s = e.node("Add", [s, e.const(mask.astype(t.dtype), base=f"{t.name}/causal_mask")])
    y = e.node("MatMul", [e.node("Softmax", [s], axis=-1), xs[2]])
    return e.node("Transpose", [y], perm=swap) if op.heads_last else y


# -- detection --------------------------------------------------------------------------------

@converts("roi_align")
def _roi_align(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """RoiAlign (half_pixel: torchvision's aligned=True); boxes (y1, x1, y2, x2) become
    ONNX's (x1, y1, x2, y2), the output NHWC again."""
    op = t.op
    boxes = e.node("Gather", [xs[1], e.ints([1, 0, 3, 2])], axis=1)
    idx = e.node("Cast", [xs[2]], to=7)  # int64
    y = e.node("RoiAlign", [_nchw(e, xs[0]), boxes, idx], mode="avg",
               output_height=int(op.output_size[0]), output_width=int(op.output_size[1]),
               sampling_ratio=max(int(op.sampling_ratio), 0),
               spatial_scale=float(op.spatial_scale),
               coordinate_transformation_mode="half_pixel")
    return _nhwc(e, y)


@converts("non_max_suppression")
def _nms(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """NonMaxSuppression on one image and class (corners (y1, x1, y2, x2), TF's form); the
    selected (batch, class, box) triples reduced to the box indices."""
    op = t.op
    boxes = e.node("Unsqueeze", [xs[0], e.ints([0])])
    scores = e.node("Unsqueeze", [xs[1], e.ints([0, 1])])
    extra = [e.const(np.array([op.score_threshold], np.float32))] \
        if math.isfinite(op.score_threshold) else []
    sel = e.node("NonMaxSuppression", [boxes, scores, e.ints([op.max_output_size]),
                                       e.const(np.array([op.iou_threshold], np.float32)),
                                       *extra], center_point_box=0)
    return e.node("Gather", [sel, e.const(np.array(2, np.int64))], axis=1)


# -- normalization ----------------------------------------------------------------------------

@converts("layer_norm")
def _layer_norm(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """LayerNormalization (opset 17) over the node's trailing ``naxes`` axes (other axes
    are the transposes graphnet puts around the node); gamma and beta as Scale and B."""
    return e.node("LayerNormalization", xs, axis=-int(t.op.naxes),
                  epsilon=float(t.op.epsilon))


@converts("batch_norm")
def _batch_norm(e: Emitter, t: Tensor, xs: list[str]) -> str:
    """BatchNormalization in inference form: the moving mean and variance as initializers
    (training_mode 0). ONNX's channels are axis 1: NHWC is read as the NCHW value of the conv
    before it where there is one (conv, batch norm, conv: no Transposes between them, and
    onnxruntime folds the batch norm into the conv), other ranks are transposed around it."""
    n = t.ndim
    attrs = dict(epsilon=float(t.op.epsilon), momentum=float(t.op.momentum))
    if n == 2:
        return e.node("BatchNormalization", xs, **attrs)
    if n == 4:
        return _nhwc(e, e.node("BatchNormalization", [_nchw(e, xs[0]), *xs[1:]], **attrs))
    first = [0, n - 1, *range(1, n - 1)]
    x = e.node("Transpose", [xs[0]], perm=first)
    y = e.node("BatchNormalization", [x, *xs[1:]], **attrs)
    return e.node("Transpose", [y], perm=[first.index(a) for a in range(n)])
