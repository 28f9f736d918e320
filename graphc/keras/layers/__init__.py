"""Keras layers: ``from graphc.keras.layers import Dense, Dropout, Input, ...``.

Convolutional, normalisation, embedding and recurrent layers live in their own modules
(another issue) and are imported here when present.
"""
from __future__ import annotations

from typing import Any, Mapping

from graphc.keras import serialization as _ser
from graphc.keras.layers.base import InputSpec, Layer
from graphc.keras.layers.core import (Activation, Dense, Dropout, Flatten, Input, InputLayer, Lambda, Permute,
                                      RepeatVector, Reshape)
from graphc.keras.layers.merge import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add,
                                       average, concatenate, dot, maximum, minimum, multiply, subtract)
from graphc.keras.layers.conv import *  # noqa: F401,F403  (issue 4: conv/pool/norm/embedding/recurrent)
from graphc.keras.layers.conv import __all__ as _conv_all
from graphc.keras.layers.pooling import *  # noqa: F401,F403
from graphc.keras.layers.pooling import __all__ as _pooling_all
from graphc.keras.layers.normalization import *  # noqa: F401,F403
from graphc.keras.layers.normalization import __all__ as _norm_all
from graphc.keras.layers.embedding import *  # noqa: F401,F403
from graphc.keras.layers.embedding import __all__ as _embedding_all
from graphc.keras.layers.recurrent import *  # noqa: F401,F403
from graphc.keras.layers.recurrent import __all__ as _recurrent_all


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` of a layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Layer:
    """A layer from :func:`serialize`'s output (custom classes through ``custom_objects``)."""
    with _ser.custom_object_scope(custom_objects):
        return _ser.deserialize("layer", dict(config), custom_objects)


__all__ = ["Layer", "InputSpec", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
           "Permute", "RepeatVector", "Lambda", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "Dot", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
           "dot", "serialize", "deserialize"]
# Keras aliases (Convolution2D, MaxPool2D, ...) are importable but not listed in __all__.
__all__ += [n for n in _conv_all + _pooling_all + _norm_all + _embedding_all + _recurrent_all if n not in (
    "Convolution1D", "Convolution2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D",
    "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D")]
