"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot
(and their functional forms add, multiply, ...)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from graphc.errors import GraphcError, InputError, ShapeError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.layers.base import Layer, where
from graphc.keras.tensor import keras_shape


class _Merge(Layer):
    """Base of the elementwise merges: a list of same-shape (or broadcastable) tensors in."""

    _min_inputs = 2

    def _merge(self, inputs: Sequence[Node]) -> Node:
        raise NotImplementedError

    def _check(self, inputs: Any) -> list[Node]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self._min_inputs:
            raise InputError(f"layer {self.name!r} ({type(self).__name__}) must be called on a list of at least "
                             f"{self._min_inputs} tensors{where()}")
        return list(inputs)

    def call(self, inputs: Any) -> Node:
        xs = self._check(inputs)
        try:
            return self._merge(xs)
        except GraphcError as e:
            shapes = ", ".join(str(keras_shape(x.shape)) for x in xs)
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) cannot merge inputs of shapes "
                             f"{shapes}{where()}") from e


def _fold(fn: Callable[[Node, Node], Node], xs: Sequence[Node]) -> Node:
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


def _same_shapes(layer: Layer, xs: Sequence[Node]) -> None:
    shapes = [keras_shape(x.shape) for x in xs]
    for s in shapes[1:]:
        if len(s) != len(shapes[0]) or any(a is not None and b is not None and a != b and a != 1 and b != 1
                                           for a, b in zip(s, shapes[0])):
            raise ShapeError(f"layer {layer.name!r} ({type(layer).__name__}) needs inputs of the same shape, got "
                             f"{', '.join(map(str, shapes))}{where()}")


@ser.register("layer")
class Add(_Merge):
    """Elementwise sum of the inputs."""

    def _merge(self, xs):
        _same_shapes(self, xs)
        return _fold(ops.add, xs)


@ser.register("layer")
class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""

    def _merge(self, xs):
        if len(xs) != 2:
            raise InputError(f"layer {self.name!r} (Subtract) takes exactly 2 inputs, got {len(xs)}{where()}")
        _same_shapes(self, xs)
        return ops.subtract(xs[0], xs[1])


@ser.register("layer")
class Multiply(_Merge):
    """Elementwise product of the inputs."""

    def _merge(self, xs):
        _same_shapes(self, xs)
        return _fold(ops.multiply, xs)


@ser.register("layer")
class Average(_Merge):
    """Elementwise mean of the inputs."""

    def _merge(self, xs):
        _same_shapes(self, xs)
        return ops.divide(_fold(ops.add, xs), float(len(xs)))


@ser.register("layer")
class Maximum(_Merge):
    """Elementwise maximum of the inputs."""

    def _merge(self, xs):
        _same_shapes(self, xs)
        return _fold(ops.maximum, xs)


@ser.register("layer")
class Minimum(_Merge):
    """Elementwise minimum of the inputs."""

    def _merge(self, xs):
        _same_shapes(self, xs)
        return _fold(ops.minimum, xs)


@ser.register("layer")
class Concatenate(_Merge):
    """Join the inputs along ``axis`` (the other axes must match)."""

    _min_inputs = 1

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _merge(self, xs):
        shapes = [keras_shape(x.shape) for x in xs]
        rank = len(shapes[0])
        ax = self.axis % rank if rank else 0
        for s in shapes[1:]:
            if len(s) != rank or any(i != ax and a is not None and b is not None and a != b
                                     for i, (a, b) in enumerate(zip(s, shapes[0]))):
                raise ShapeError(f"layer {self.name!r} (Concatenate) needs inputs whose shapes match except on axis "
                                 f"{self.axis}, got {', '.join(map(str, shapes))}{where()}")
        return ops.concatenate(xs, axis=ax)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


@ser.register("layer")
class Dot(_Merge):
    """Dot product of two ``(batch, n)`` inputs along ``axes`` (optionally L2-normalised first)."""

    def __init__(self, axes: int | Sequence[int] = -1, normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = axes if isinstance(axes, int) else tuple(axes)
        self.normalize = bool(normalize)

    def _merge(self, xs):
        if len(xs) != 2:
            raise InputError(f"layer {self.name!r} (Dot) takes exactly 2 inputs{where()}")
        a, b = xs
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"layer {self.name!r} (Dot) supports inputs of rank 2, got {keras_shape(a.shape)} and "
                             f"{keras_shape(b.shape)}{where()}")
        if self.normalize:
            a = ops.divide(a, ops.sqrt(ops.maximum(ops.sum(ops.square(a), axis=-1, keepdims=True), 1e-12)))
            b = ops.divide(b, ops.sqrt(ops.maximum(ops.sum(ops.square(b), axis=-1, keepdims=True), 1e-12)))
        return ops.sum(ops.multiply(a, b), axis=-1, keepdims=True)

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"axes": self.axes if isinstance(self.axes, int) else list(self.axes), "normalize": self.normalize})
        return cfg


def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Add`."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Subtract`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Average`."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Maximum`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional form of :class:`Minimum`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """Functional form of :class:`Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: Sequence[Any], axes: int | Sequence[int] = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Functional form of :class:`Dot`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
