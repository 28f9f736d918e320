"""Weight constraints: ``c(w) -> w'`` applied after each optimizer update, inside the compiled step."""
from __future__ import annotations

from typing import Any, Mapping

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import config, serialization as ser


class Constraint:
    """Base class: ``__call__(w)`` returns the constrained weight tensor."""

    def __call__(self, w: Node) -> Node:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Constraint":
        return cls(**config_)


def _norms(w: Node, axis: Any) -> Node:
    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


@ser.register("constraint", "max_norm")
class MaxNorm(Constraint):
    """Rescale so the norm along ``axis`` is at most ``max_value`` (Keras's formula)."""

    def __init__(self, max_value: float = 2.0, axis: Any = 0):
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w: Node) -> Node:
        norms = _norms(w, self.axis)
        desired = ops.clip(norms, 0.0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(norms, config.epsilon())))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@ser.register("constraint", "non_neg")
class NonNeg(Constraint):
    """Zero the negative entries."""

    def __call__(self, w: Node) -> Node:
        return ops.multiply(w, ops.cast(ops.greater_equal(w, 0.0), w.dtype))


@ser.register("constraint", "unit_norm")
class UnitNorm(Constraint):
    """Rescale to unit norm along ``axis``."""

    def __init__(self, axis: Any = 0):
        self.axis = axis

    def __call__(self, w: Node) -> Node:
        return ops.divide(w, ops.add(config.epsilon(), _norms(w, self.axis)))

    def get_config(self):
        return {"axis": self.axis}


@ser.register("constraint", "min_max_norm")
class MinMaxNorm(Constraint):
    """Keep the norm along ``axis`` between ``min_value`` and ``max_value``."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Any = 0):
        self.min_value, self.max_value, self.rate, self.axis = float(min_value), float(max_value), float(rate), axis

    def __call__(self, w: Node) -> Node:
        norms = _norms(w, self.axis)
        desired = ops.add(ops.multiply(self.rate, ops.clip(norms, self.min_value, self.max_value)),
                          ops.multiply(1.0 - self.rate, norms))
        return ops.multiply(w, ops.divide(desired, ops.add(norms, config.epsilon())))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


def get(identifier: Any) -> Any:
    """A constraint from None, a name, a config dict, an instance or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        obj = ser.deserialize("constraint", identifier)
        return obj() if isinstance(obj, type) else obj
    if callable(identifier):
        return identifier
    raise InputError(f"could not interpret constraint {identifier!r}")


def serialize(c: Any) -> Any:
    """The config dict of a constraint."""
    return ser.serialize(c)


def deserialize(config_: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The inverse of :func:`serialize`."""
    obj = ser.deserialize("constraint", config_, custom_objects)
    return obj() if isinstance(obj, type) else obj
