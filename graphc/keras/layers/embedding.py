"""Embedding: integer indices to dense vectors, with an optional padding mask.

Masks: there is no general mask propagation in graphc.keras yet. A layer that produces a mask
records it beside its output node with :func:`set_mask`; a layer that consumes one (the
recurrent layers) looks it up with :func:`get_mask`. Nodes are interned, so the lookup finds
the mask of exactly the tensor the Embedding produced, in every replay of a model.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import constraints, initializers, regularizers
from graphc.keras import serialization as ser
from graphc.keras.layers.base import Layer, where

_masks: "weakref.WeakKeyDictionary[Node, Node]" = weakref.WeakKeyDictionary()


def set_mask(output: Node, mask: Node | None) -> None:
    """Record ``mask`` (bool, the output's shape without its last axis) for ``output``."""
    if mask is not None:
        _masks[output] = mask


def get_mask(x: Any) -> Node | None:
    """The mask recorded for ``x`` (None if none)."""
    try:
        return _masks.get(x)
    except TypeError:
        return None


@ser.register("layer")
class Embedding(Layer):
    """``embeddings[inputs]``: ``(batch, ...)`` integer indices to ``(batch, ..., output_dim)``.

    With ``mask_zero=True`` index 0 is padding: the mask ``inputs != 0`` is recorded for the
    output (see module doc) and the recurrent layers skip those steps."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 **kwargs: Any):
        kwargs.pop("input_length", None)
        super().__init__(**kwargs)
        if int(input_dim) <= 0 or int(output_dim) <= 0:
            raise InputError(f"Embedding: input_dim and output_dim must be positive, got {input_dim}, "
                             f"{output_dim}{where()}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)

    def compute_mask(self, inputs: Node, mask: Any = None) -> Node | None:
        if not self.mask_zero:
            return None
        return ops.not_equal(ops.cast(inputs, "int32"), np.int32(0))

    def call(self, inputs: Node) -> Node:
        idx = inputs if inputs.dtype in ("int32", "int64") else ops.cast(inputs, "int32")
        out = ops.take(self.embeddings, idx, axis=0)
        set_mask(out, self.compute_mask(inputs))
        return out

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"input_dim": self.input_dim, "output_dim": self.output_dim,
                    "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                    "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                    "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                    "mask_zero": self.mask_zero})
        return cfg


__all__ = ["Embedding"]
