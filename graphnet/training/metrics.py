"""Metrics by name and as objects, computed with NumPy on the predictions a program returns.

A Metric is stateful as in Keras: ``update_state(y_true, y_pred)`` per batch, ``result()``
over everything seen since ``reset_state()``. Functions of the same names compute one value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import GraphError

__all__ = ["Metric", "Mean", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "accuracy",
           "binary_accuracy", "get"]


class Metric:
    """Base class: a running mean of a per-sample score."""

    name = "metric"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        scores = np.asarray(self.score(np.asarray(y_true), np.asarray(y_pred)), np.float64)
        self.total += float(scores.sum())
        self.count += scores.size

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Per-sample values whose mean is the metric."""
        raise NotImplementedError

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        """One value on one batch (the state is left untouched)."""
        return float(np.mean(self.score(np.asarray(y_true), np.asarray(y_pred))))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class Mean(Metric):
    """The mean of given values (``update_state(values)``), e.g. a loss over batches."""

    name = "mean"

    def update_state(self, values: Any, weight: Any = None) -> None:  # type: ignore[override]
        v = np.asarray(values, np.float64)
        w = np.ones_like(v) if weight is None else np.broadcast_to(weight, v.shape)
        self.total += float((v * w).sum())
        self.count += float(w.sum())


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose argmax class equals the int label."""

    name = "sparse_categorical_accuracy"

    def score(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == y_true.reshape(y_pred.shape[:-1])).astype(float)


class CategoricalAccuracy(Metric):
    """Fraction of samples whose argmax class equals the one-hot target's argmax."""

    name = "categorical_accuracy"

    def score(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(float)


class BinaryAccuracy(Metric):
    """Fraction of predictions on the right side of ``threshold`` (0.5 for probabilities)."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__(name)

    def score(self, y_true, y_pred):
        return ((y_pred > self.threshold) == (y_true.reshape(y_pred.shape) > 0.5)).astype(float)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


class Accuracy(Metric):
    """Keras' "accuracy": argmax against int labels or one-hot, thresholded for one output."""

    name = "accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__(name)

    def score(self, y_true, y_pred):
        if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
            if y_true.shape == y_pred.shape:  # one-hot
                return CategoricalAccuracy.score(self, y_true, y_pred)
            return SparseCategoricalAccuracy.score(self, y_true, y_pred)
        return BinaryAccuracy.score(self, y_true, y_pred)  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def score(self, y_true, y_pred):
        d = y_pred - y_true.reshape(y_pred.shape)
        return np.mean(d.reshape(len(d), -1) ** 2, axis=1) if d.ndim > 1 else d ** 2


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def score(self, y_true, y_pred):
        d = np.abs(y_pred - y_true.reshape(y_pred.shape))
        return np.mean(d.reshape(len(d), -1), axis=1) if d.ndim > 1 else d


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Accuracy of predictions (class scores or one probability per sample) on one batch."""
    return Accuracy()(y_true, y_pred)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    return BinaryAccuracy(threshold=threshold)(y_true, y_pred)


_NAMES = {"accuracy": Accuracy, "acc": Accuracy, "binary_accuracy": BinaryAccuracy,
          "categorical_accuracy": CategoricalAccuracy,
          "sparse_categorical_accuracy": SparseCategoricalAccuracy,
          "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
          "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError}
_CLASSES = {c.__name__: c for c in (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                    SparseCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError)}


def get(spec: str | Metric, from_logits: bool = False) -> Metric:
    """A fresh Metric by name (named as given, as Keras logs it) or the object itself.

    ``from_logits`` (set by compile when the loss reads logits) moves the threshold of
    binary accuracy from 0.5 to 0, where sigmoid(z) = 0.5.
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        cls = _NAMES.get(spec.lower())
        if cls is None:
            raise GraphError(f"unknown metric {spec!r}; choose one of {sorted(_NAMES)} or a "
                             "gn.metrics.Metric")
        if cls in (Accuracy, BinaryAccuracy):
            return cls(name=spec, threshold=0.0 if from_logits else 0.5)
        return cls(name=spec)
    raise GraphError(f"cannot interpret {spec!r} as a metric; give a name or a gn.metrics.Metric")


def serialize(metric: Metric) -> dict[str, Any]:
    if type(metric).__name__ not in _CLASSES:
        raise GraphError(f"cannot save the custom metric {metric.name!r}")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(spec: dict[str, Any]) -> Metric:
    return _CLASSES[spec["class_name"]](**spec.get("config", {}))
