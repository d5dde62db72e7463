"""Learning-rate schedules: callables of the optimizer's step, with Keras' names and formulas.

An optimizer given a schedule evaluates it at ``opt.iterations`` (0 on the first update).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "StepDecay",
           "CosineDecay", "serialize", "deserialize"]


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; ``get_config`` / ``from_config``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``lr = initial * decay_rate ** (step / decay_steps)``; the exponent is floored when
    ``staircase`` (a drop every ``decay_steps`` steps)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "ExponentialDecay") -> None:
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[int], values: Sequence[float],
                 name: str = "PiecewiseConstant") -> None:
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values needs one more entry than boundaries; got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries must increase, got {list(boundaries)}")
        self.boundaries = list(boundaries)
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step: int) -> float:
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


StepDecay = PiecewiseConstantDecay  # the usual name for a step schedule


class CosineDecay(LearningRateSchedule):
    """``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, T) / T)) + alpha)``, T =
    ``decay_steps``; with ``warmup_target``, first a linear ramp over ``warmup_steps`` from
    ``initial`` to ``warmup_target``, then the cosine from ``warmup_target`` (Keras 3)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: float | None = None,
                 warmup_steps: int = 0) -> None:
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.alpha = float(alpha)
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            frac = step / self.warmup_steps
            return self.initial_learning_rate + frac * (
                self.warmup_target - self.initial_learning_rate)
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}
_CLASSES["StepDecay"] = PiecewiseConstantDecay


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, as Keras writes a schedule into a config."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    """The schedule that :func:`serialize` wrote."""
    name = config.get("class_name")
    if name not in _CLASSES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[name].from_config(dict(config.get("config", {})))
