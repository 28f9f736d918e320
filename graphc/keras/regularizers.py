"""Weight regularizers: ``reg(weight_tensor) -> scalar tensor`` added to the training loss."""
from __future__ import annotations

from typing import Any, Mapping

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import serialization as ser


class Regularizer:
    """Base class: ``__call__(x)`` returns a scalar penalty tensor."""

    def __call__(self, x: Node) -> Node:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Regularizer":
        return cls(**config)


@ser.register("regularizer", "l1_l2")
class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x: Node) -> Node:
        out = ops.zeros((), x.dtype)
        if self.l1:
            out = ops.add(out, ops.multiply(self.l1, ops.sum(ops.abs(x))))
        if self.l2:
            out = ops.add(out, ops.multiply(self.l2, ops.sum(ops.square(x))))
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@ser.register("regularizer", "l1")
class L1(Regularizer):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1: float = 0.01):
        self.l1 = float(l1)

    def __call__(self, x: Node) -> Node:
        return ops.multiply(self.l1, ops.sum(ops.abs(x)))

    def get_config(self):
        return {"l1": self.l1}


@ser.register("regularizer", "l2")
class L2(Regularizer):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2: float = 0.01):
        self.l2 = float(l2)

    def __call__(self, x: Node) -> Node:
        return ops.multiply(self.l2, ops.sum(ops.square(x)))

    def get_config(self):
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> L1:  # noqa: D103 - Keras's function-style constructor
    return L1(l1)


def l2(l2: float = 0.01) -> L2:  # noqa: D103
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Keras's ``l1_l2`` (both default to 0.01)."""
    return L1L2(l1, l2)


def get(identifier: Any) -> Any:
    """A regularizer from None, a name, a config dict, an instance or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        obj = ser.deserialize("regularizer", identifier)
        return obj() if isinstance(obj, type) else obj
    if callable(identifier):
        return identifier
    raise InputError(f"could not interpret regularizer {identifier!r}")


def serialize(reg: Any) -> Any:
    """The config dict of a regularizer."""
    return ser.serialize(reg)


def deserialize(config: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The inverse of :func:`serialize`."""
    obj = ser.deserialize("regularizer", config, custom_objects)
    return obj() if isinstance(obj, type) else obj
