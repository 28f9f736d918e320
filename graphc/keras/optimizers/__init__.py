"""Optimizers: ``keras.optimizers.Adam(learning_rate=1e-3)`` or a name in ``compile``."""
from __future__ import annotations

from typing import Any, Mapping

from graphc.errors import InputError
from graphc.keras import serialization as _ser
from graphc.keras.optimizers import schedules
from graphc.keras.optimizers.base import Optimizer
from graphc.keras.optimizers.impls import SGD, Adadelta, Adagrad, Adam, AdamW, Nadam, RMSprop

_NAMES = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adadelta": Adadelta, "adam": Adam, "adamw": AdamW,
          "nadam": Nadam}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name (``"adam"``), a config dict, a class or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise InputError(f"unknown optimizer {identifier!r}; valid names: {', '.join(sorted(_NAMES))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise InputError(f"could not interpret optimizer {identifier!r}; pass a name ({', '.join(sorted(_NAMES))}) "
                     "or an Optimizer instance")


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """The config dict of an optimizer."""
    return _ser.serialize(optimizer)


def deserialize(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Optimizer:
    """The inverse of :func:`serialize`."""
    name = config.get("class_name", "")
    cls = _NAMES.get(str(name).lower()) or _ser.lookup("optimizer", name, custom_objects)
    return cls.from_config(config.get("config", {}), custom_objects)


__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Nadam", "schedules", "get",
           "serialize", "deserialize"]
