"""Registries of serializable classes and ``{"class_name", "config"}`` (de)serialization.

Each kind of object (layer, initializer, regularizer, constraint, loss, metric, optimizer,
schedule, activation) has its own registry; ``custom_objects`` and
:func:`register_keras_serializable` add user classes. Deserialization only ever looks names up
in these tables: nothing from a file is evaluated as code.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

from graphc.errors import InputError

_REGISTRIES: dict[str, dict[str, Any]] = {}
_GLOBAL_CUSTOM: dict[str, Any] = {}
_SCOPES: list[Mapping[str, Any]] = []


@contextmanager
def custom_object_scope(custom_objects: Mapping[str, Any] | None) -> Iterator[None]:
    """Within it, ``custom_objects`` are known to every deserialization (as in Keras)."""
    _SCOPES.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        _SCOPES.pop()


def scoped_custom_objects() -> dict[str, Any]:
    """All custom objects of the enclosing scopes and the global registrations."""
    out = dict(_GLOBAL_CUSTOM)
    for scope in _SCOPES:
        out.update(scope)
    return out


def registry(kind: str) -> dict[str, Any]:
    """The (mutable) name -> class table of one kind of object."""
    return _REGISTRIES.setdefault(kind, {})


def register(kind: str, *names: str) -> Callable[[Any], Any]:
    """Class decorator: register under its own name and any ``names`` given."""
    def deco(obj: Any) -> Any:
        table = registry(kind)
        table[obj.__name__] = obj
        for n in names:
            table[n] = obj
        return obj
    return deco


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Make a user class or function known to ``load_model`` without ``custom_objects``
    (as ``keras.saving.register_keras_serializable``)."""
    def deco(obj: Any) -> Any:
        key = name or obj.__name__
        _GLOBAL_CUSTOM[f"{package}>{key}"] = obj
        _GLOBAL_CUSTOM[key] = obj
        return obj
    return deco


def global_custom_objects() -> dict[str, Any]:
    """Objects registered with :func:`register_keras_serializable`."""
    return _GLOBAL_CUSTOM


def lookup(kind: str, name: str, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The class or function called ``name``: custom objects first, then the registry."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    scoped = scoped_custom_objects()
    if name in scoped:
        return scoped[name]
    table = registry(kind)
    if name in table:
        return table[name]
    raise InputError(f"unknown {kind} {name!r}: pass it in custom_objects={{{name!r}: ...}} or register it "
                     f"with graphc.keras.saving.register_keras_serializable(); known {kind}s: "
                     f"{', '.join(sorted(table))}")


def serialize(obj: Any) -> Any:
    """``{"class_name": ..., "config": ...}`` for an object with ``get_config``; plain values pass."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    if callable(obj) and hasattr(obj, "__name__"):
        return obj.__name__
    raise InputError(f"cannot serialize {obj!r}: it has no get_config()")


def deserialize(kind: str, config: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """Rebuild an object from :func:`serialize`'s output."""
    if isinstance(config, dict) and "class_name" in config:
        cls = lookup(kind, config["class_name"], custom_objects)
        cfg = config.get("config", {}) or {}
        if hasattr(cls, "from_config"):
            return cls.from_config(cfg)
        return cls(**cfg)
    if isinstance(config, str):
        return lookup(kind, config, custom_objects)
    return config
