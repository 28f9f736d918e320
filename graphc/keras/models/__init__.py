"""Models: ``Sequential``, ``Model`` (functional and subclassed), and loading/saving."""
from __future__ import annotations

import json
from typing import Any, Mapping

from graphc.errors import ModelFileError
from graphc.keras.models.model import Functional, Model
from graphc.keras.models.sequential import Sequential


def model_from_config(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Model:
    """A model (untrained weights) from ``{"class_name": ..., "config": ...}``."""
    from graphc.keras import serialization as ser
    name = config.get("class_name")
    cls = {"Sequential": Sequential, "Functional": Model, "Model": Model}.get(name) or \
        ser.lookup("layer", str(name), custom_objects)
    with ser.custom_object_scope(custom_objects):
        if hasattr(cls, "from_config"):
            try:
                return cls.from_config(config.get("config", {}), custom_objects=custom_objects)
            except TypeError:
                return cls.from_config(config.get("config", {}))
        return cls(**config.get("config", {}))


def model_from_json(json_string: str, custom_objects: Mapping[str, Any] | None = None) -> Model:
    """A model from ``model.to_json()`` (weights are not included)."""
    try:
        config = json.loads(json_string)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"model_from_json: not valid JSON ({e})") from None
    return model_from_config(config, custom_objects)


def load_model(filepath: str, custom_objects: Mapping[str, Any] | None = None, compile: bool = True,
               safe_mode: bool = True) -> Model:
    """Load a model saved with ``model.save`` (see graphc.keras.saving)."""
    from graphc.keras.saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile)


def save_model(model: Model, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
    """Same as ``model.save(filepath)``."""
    model.save(filepath, overwrite=overwrite)


def clone_model(model: Model, custom_objects: Mapping[str, Any] | None = None) -> Model:
    """A new model with the same architecture and freshly initialised weights."""
    return model_from_config({"class_name": type(model).__name__ if type(model).__name__ != "Model" else "Functional",
                              "config": model.get_config()}, custom_objects)


__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "model_from_json", "model_from_config",
           "clone_model"]
