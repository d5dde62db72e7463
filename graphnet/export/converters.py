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

__all__: list[str] = []  # converters register themselves; nothing to import by name

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def value(t: Tensor) -> np.ndarray:
    """The array of a Parameter or constant input (weights the converters re-lay out)."""
    if t.kind not in ("parameter", "constant"):
        raise GraphError(f"the ONNX export needs {t.name!r} to be a Parameter or constant "
                         f"(its layout is changed at export), got a {t.kind} node")
    return np.asarray(t.value)


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


@converts("dropout")
def _dropout(e: Emitter, t: Tensor, xs: list[str]) -> str:
    return xs[0]  # inference graph: dropout is the identity, so it leaves no node


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
