"""graphc.keras: the Keras API on graphc. Keras code runs after changing only its imports::

    import graphc.keras as keras
    from graphc.keras.models import Sequential
    from graphc.keras.layers import Dense

Models compile their training step (forward, loss, gradients, optimizer update) into one
graphc function; :mod:`graphc.keras.config` chooses native or reference execution.
"""
from __future__ import annotations

import importlib
from typing import Any

from graphc.keras import (activations, config, constraints, initializers, layers, losses, metrics, optimizers,
                          regularizers, saving)
from graphc.keras.layers import Input, Layer
from graphc.keras.models import Model, Sequential, load_model, model_from_json
from graphc.keras.serialization import custom_object_scope, register_keras_serializable
from graphc.keras.tensor import KerasTensor

__version__ = "3.0.0-graphc"

# Modules written alongside (callbacks, backend, utils, datasets) load on first use, so a
# problem in one of them cannot break ``import graphc.keras``.
_LAZY = {"callbacks", "backend", "utils", "datasets", "models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"graphc.keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'graphc.keras' has no attribute {name!r}")


__all__ = ["Input", "Layer", "Model", "Sequential", "KerasTensor", "load_model", "model_from_json", "activations",
           "config", "constraints", "initializers", "layers", "losses", "metrics", "optimizers", "regularizers",
           "saving", "callbacks", "backend", "utils", "datasets", "models", "custom_object_scope",
           "register_keras_serializable"]
