"""Losses by name and as objects, in Keras' calling order ``loss(y_true, y_pred)``.

Each Loss builds a scalar graph node (the batch mean) from graphnet's loss ops, says what its
target Input looks like (int class ids for the sparse cross-entropies, the prediction's shape
otherwise), and checks target arrays before training (lengths, class ranges, 0/1 labels).

Names: graphnet's (``sparse_softmax_cross_entropy`` and ``softmax_cross_entropy`` on logits,
``sigmoid_cross_entropy`` on logits) and Keras' (``mse``, ``mae``, ``binary_crossentropy``,
``categorical_crossentropy``, ``sparse_categorical_crossentropy``, on probabilities unless
``from_logits=True``). On probabilities made by a softmax or sigmoid node, the loss reads the
logits under that node instead, which is exact and numerically stable (Keras does the same).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import ops
from ..core.errors import FeedError, GraphError
from ..core.tensor import Tensor, fmt_shape

__all__ = ["Loss", "MeanSquaredError", "MeanAbsoluteError", "Huber", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "LossFunctionWrapper",
           "get", "serialize", "deserialize"]

_EPS = 1e-7  # Keras' epsilon: keeps log(p) finite on probabilities of exactly 0


def _logits_under(y_pred: Tensor, op_name: str) -> Tensor | None:
    """The input of a softmax/sigmoid node (its logits), or None when y_pred is not one."""
    if y_pred.op is not None and y_pred.op.name == op_name:
        axis = getattr(y_pred.op, "axis", -1)
        if op_name != "softmax" or axis in (-1, y_pred.ndim - 1):
            return y_pred.inputs[0]
    return None


class Loss:
    """Base class: ``loss(y_true, y_pred)`` builds the scalar batch-mean loss node."""

    name = "loss"
    target_dtype = "float32"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return self.call(y_true, y_pred)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def target_shape(self, pred_shape: tuple) -> tuple:
        """The target's shape, batch dim included (None), for a prediction of ``pred_shape``."""
        return tuple(pred_shape)

    def check_targets(self, y: np.ndarray, pred_shape: tuple, what: str = "y") -> np.ndarray:
        """Validate and convert a target array; raises FeedError saying what is wrong."""
        want = self.target_shape(pred_shape)
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise FeedError(f"{what} must hold numbers, got dtype {y.dtype}")
        # (n,) targets for (None, 1) predictions, and (n, 1) class ids for (None,) targets
        if y.ndim == len(want) - 1 and want[-1] == 1:
            y = y[..., None]
        elif y.ndim == len(want) + 1 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.ndim != len(want) or any(d is not None and d != s for d, s in zip(want, y.shape)):
            raise FeedError(f"{what} has shape {fmt_shape(y.shape)}, but loss {self.name!r} on a "
                            f"prediction of shape {fmt_shape(pred_shape)} needs targets of shape "
                            f"{fmt_shape(want)}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise FeedError(f"{what} contains NaN or Inf")
        return y.astype(self.target_dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)`` over the batch (graphnet's ``mse`` node)."""

    name = "mean_squared_error"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mse(y_pred, y_true)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over the batch (graphnet's ``mae`` node)."""

    name = "mean_absolute_error"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mae(y_pred, y_true)


class Huber(Loss):
    """``mean(0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta))``, ``d = y_pred - y_true``
    (graphnet's ``huber`` node; Keras' ``Huber``)."""

    name = "huber_loss"

    def __init__(self, delta: float = 1.0, name: str | None = None) -> None:
        super().__init__(name)
        self.delta = float(delta)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.huber(y_pred, y_true, self.delta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}


class _CrossEntropy(Loss):
    def __init__(self, from_logits: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits}


class BinaryCrossentropy(_CrossEntropy):
    """``-mean(y log p + (1-y) log(1-p))``; labels in [0, 1]; logits with ``from_logits``."""

    name = "binary_crossentropy"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        if self.from_logits:
            return ops.sigmoid_cross_entropy(y_pred, y_true)
        logits = _logits_under(y_pred, "sigmoid")
        if logits is not None:
            return ops.sigmoid_cross_entropy(logits, y_true)
        return ops.binary_cross_entropy(y_pred, y_true)

    def check_targets(self, y, pred_shape, what="y"):
        y = super().check_targets(y, pred_shape, what)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise FeedError(f"{what} holds values outside [0, 1] ({y.min()} .. {y.max()}); "
                            f"loss {self.name!r} needs 0/1 labels or probabilities")
        return y


class CategoricalCrossentropy(_CrossEntropy):
    """``-mean_i sum_k y_ik log p_ik`` with one-hot (or soft) targets of the prediction's shape."""

    name = "categorical_crossentropy"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.softmax_cross_entropy(_logits(y_pred, self.from_logits), y_true)


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy against int class ids: targets ``(batch,)`` for predictions ``(batch, k)``."""

    name = "sparse_categorical_crossentropy"
    target_dtype = "int64"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.softmax_cross_entropy(_logits(y_pred, self.from_logits), y_true)

    def target_shape(self, pred_shape: tuple) -> tuple:
        if len(pred_shape) < 2:
            raise GraphError(f"loss {self.name!r} needs predictions of shape (batch, classes); "
                             f"got {fmt_shape(pred_shape)}")
        return tuple(pred_shape[:-1])

    def check_targets(self, y, pred_shape, what="y"):
        y = np.asarray(y)
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise FeedError(f"{what} must hold integer class ids for loss {self.name!r}; "
                                f"got non-integer floats (one-hot targets need "
                                f"'categorical_crossentropy')")
        elif y.dtype.kind not in "iub":
            raise FeedError(f"{what} must hold integer class ids, got dtype {y.dtype}")
        y = super().check_targets(y, pred_shape, what)
        k = pred_shape[-1]
        if y.size and (y.min() < 0 or y.max() >= k):
            raise FeedError(f"{what} holds class ids {y.min()} .. {y.max()}, but the model "
                            f"predicts {k} classes (ids 0 .. {k - 1})")
        return y


def _logits(y_pred: Tensor, from_logits: bool) -> Tensor:
    """Logits for softmax cross-entropy: given, read under a softmax node, or log(p)."""
    if from_logits:
        return y_pred
    logits = _logits_under(y_pred, "softmax")
    if logits is not None:
        return logits
    op = y_pred.op
    if op is not None and op.name == "dense" and getattr(op, "activation", None) in (
            None, "linear"):
        # the usual slip: a linear last layer's logits read as probabilities (log of a
        # negative one is NaN; Keras clips them to epsilon and trains on a wrong loss)
        warnings.warn(f"the cross-entropy reads {y_pred.name!r}, a Dense layer's output "
                      "without an activation, as probabilities (log p): if these are "
                      "logits, pass from_logits=True (or loss='sparse_softmax_cross_entropy')"
                      "; else give the layer activation='softmax'", stacklevel=4)
    # On probabilities p that sum to 1, softmax(log p) = p, so CE(log p) = -log p[y].
    return ops.log(y_pred + _EPS)


class LossFunctionWrapper(Loss):
    """A user function ``fn(y_true, y_pred) -> scalar Tensor``; targets shaped as predictions."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], name: str | None = None) -> None:
        super().__init__(name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        out = self.fn(y_true, y_pred)
        if not isinstance(out, Tensor) or out.shape != ():
            raise GraphError(f"loss function {self.name!r} must return a scalar Tensor, got "
                             f"{out!r}")
        return out


_NAMES: dict[str, Callable[[], Loss]] = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "binary_cross_entropy": BinaryCrossentropy,
    "sigmoid_cross_entropy": lambda: BinaryCrossentropy(from_logits=True),
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "sparse_softmax_cross_entropy": lambda: SparseCategoricalCrossentropy(from_logits=True),
    "softmax_cross_entropy": lambda: SparseCategoricalCrossentropy(from_logits=True),
}
# graphnet's loss functions (pred, target) passed directly map to the matching Loss
_OPS = {"mse": "mse", "mae": "mae", "huber": "huber",
        "sigmoid_cross_entropy": "sigmoid_cross_entropy",
        "binary_cross_entropy": "binary_crossentropy",
        "softmax_cross_entropy": "softmax_cross_entropy"}
_CLASSES = {c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
                                    CategoricalCrossentropy, SparseCategoricalCrossentropy)}


def get(spec: str | Callable | Loss) -> Loss:
    """A Loss from a name, a Loss object, a graphnet loss op or a ``fn(y_true, y_pred)``."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _NAMES:
            raise GraphError(f"unknown loss {spec!r}; choose one of {sorted(_NAMES)}, a "
                             "gn.losses.Loss or a function (y_true, y_pred) -> scalar Tensor")
        loss = _NAMES[key]()
        loss.name = key
        return loss
    if callable(spec):
        fname = getattr(spec, "__name__", "")
        if getattr(ops, fname, None) is spec and fname in _OPS:
            return get(_OPS[fname])
        return LossFunctionWrapper(spec)
    raise GraphError(f"cannot interpret {spec!r} as a loss")


def serialize(loss: Loss) -> dict[str, Any]:
    """JSON form for model files; custom function losses cannot be saved."""
    if type(loss).__name__ not in _CLASSES:
        raise GraphError(f"cannot save the custom loss {loss.name!r}")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(spec: dict[str, Any]) -> Loss:
    return _CLASSES[spec["class_name"]](**spec.get("config", {}))
