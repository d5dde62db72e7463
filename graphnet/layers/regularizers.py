"""Weight penalties (Keras' L1, L2, L1L2): each turns a Parameter into a scalar loss Tensor.

A layer builds its penalties once, when it creates its weights; ``Model.compile`` adds them
to the training loss, so the optimizer sees ``loss + sum(penalties)``.
"""

from __future__ import annotations

from typing import Any

from ..core.tensor import Tensor

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get"]


class Regularizer:
    """Base class: ``reg(param)`` builds the penalty node; ``get_config`` saves it."""

    def __call__(self, w: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)``; its gradient is ``l1 * sign(w) + 2 * l2 * w``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: Tensor) -> Tensor:
        from .. import ops
        # scale inside the sum: one reduction, and no elementwise op on a 0-d value
        if self.l1 and self.l2:
            return ops.sum(ops.abs(w) * self.l1 + w * w * self.l2)
        if self.l1:
            return ops.sum(ops.abs(w) * self.l1)
        return ops.sum(w * w * self.l2)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)`` (Keras' default factor 0.01)."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w^2)``: weight decay through the loss (Keras' default factor 0.01)."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(spec: Any) -> Regularizer | None:
    """None, a Regularizer, a name ("l1", "l2", "l1_l2") or a saved ``{"class_name", "config"}``."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _BY_NAME:
            raise ValueError(f"unknown regularizer {spec!r}; choose one of {sorted(_BY_NAME)}")
        return _BY_NAME[key]()
    if isinstance(spec, dict) and spec.get("class_name") in _CLASSES:
        return _CLASSES[spec["class_name"]].from_config(spec.get("config", {}))
    if callable(spec):
        return spec  # a plain function w -> scalar Tensor
    raise ValueError(f"cannot interpret {spec!r} as a regularizer")


def serialize(reg: Any) -> dict[str, Any] | None:
    """The JSON form of a regularizer (None stays None)."""
    if reg is None:
        return None
    if not isinstance(reg, Regularizer):
        raise ValueError(f"cannot save the custom regularizer {reg!r}; use gn.regularizers.L1/L2")
    return {"class_name": type(reg).__name__, "config": reg.get_config()}
