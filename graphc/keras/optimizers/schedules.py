"""Learning-rate schedules (Keras 3 formulas): ``schedule(step)`` works on a graph node (inside
the compiled training step, where ``step`` is the optimizer's iteration counter) and on plain
numbers (giving a float)."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import serialization as ser


def _backend(step: Any) -> Any:
    return ops if isinstance(step, Node) else np


def _f32(step: Any) -> Any:
    return ops.cast(step, "float32") if isinstance(step, Node) else np.float64(step)


class LearningRateSchedule:
    """Base class: ``__call__(step)`` returns the learning rate at ``step`` (0-based)."""

    def __call__(self, step: Any) -> Any:
        raise NotImplementedError

    def value(self, step: int) -> float:
        """The learning rate at ``step`` as a float."""
        return float(self(int(step)))

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LearningRateSchedule":
        return cls(**config)


@ser.register("schedule")
class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored if ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "ExponentialDecay"):
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def __call__(self, step):
        b = _backend(step)
        p = _f32(step) / float(self.decay_steps)
        if self.staircase:
            p = b.floor(p)
        if b is np:
            return self.initial_learning_rate * np.power(self.decay_rate, p)
        return ops.multiply(np.float32(self.initial_learning_rate), ops.power(np.float32(self.decay_rate), p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@ser.register("schedule")
class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored if ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "InverseTimeDecay"):
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def __call__(self, step):
        b = _backend(step)
        p = _f32(step) / float(self.decay_steps)
        if self.staircase:
            p = b.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@ser.register("schedule")
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while ``step <= boundaries[1]``, ...,
    ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[float], values: Sequence[float], name: str = "PiecewiseConstant"):
        if len(values) != len(boundaries) + 1:
            from graphc.errors import InputError
            raise InputError(f"PiecewiseConstantDecay: needs one more value than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries, self.values, self.name = list(boundaries), [float(v) for v in values], name

    def __call__(self, step):
        if not isinstance(step, Node):
            for b, v in zip(self.boundaries, self.values):
                if step <= b:
                    return v
            return self.values[-1]
        s = ops.cast(step, "float32")
        out = ops.as_tensor(np.float32(self.values[-1]))
        for b, v in reversed(list(zip(self.boundaries, self.values))):
            out = ops.where(ops.less_equal(s, float(b)), np.float32(v), out)
        return out

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@ser.register("schedule")
class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha`` times it over ``decay_steps``,
    after an optional linear warmup to ``warmup_target`` over ``warmup_steps``."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str = "CosineDecay",
                 warmup_target: float | None = None, warmup_steps: int = 0):
        self.initial_learning_rate, self.decay_steps, self.alpha = float(initial_learning_rate), decay_steps, float(alpha)
        self.name, self.warmup_target, self.warmup_steps = name, warmup_target, warmup_steps

    def _decay(self, step, decay_from):
        b = _backend(step)
        frac = step / float(self.decay_steps)
        cosine = 0.5 * (1.0 + b.cos(math.pi * frac))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        b = _backend(step)
        s = _f32(step)
        if self.warmup_target is None:
            s = b.minimum(s, float(self.decay_steps))
            return self._decay(s, self.initial_learning_rate)
        s = b.minimum(s, float(self.decay_steps + self.warmup_steps))
        warm = (self.warmup_target - self.initial_learning_rate) * (s / float(max(self.warmup_steps, 1))) \
            + self.initial_learning_rate
        decayed = self._decay(s - float(self.warmup_steps), self.warmup_target)
        return b.where(s < float(self.warmup_steps), warm, decayed) if b is ops else \
            (float(warm) if s < self.warmup_steps else float(decayed))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """The config dict of a schedule."""
    return ser.serialize(schedule)


def deserialize(config: Any, custom_objects: Mapping[str, Any] | None = None) -> LearningRateSchedule:
    """The inverse of :func:`serialize`."""
    return ser.deserialize("schedule", config, custom_objects)
