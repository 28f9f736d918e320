"""``KerasTensor`` (a symbolic tensor of the functional API) and nested-structure helpers."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from graphc.frontend.variables import placeholder
from graphc.ir.node import Node


def keras_shape(shape: Sequence[Any]) -> tuple:
    """A graph shape with symbolic sizes shown as None (Keras's convention)."""
    return tuple(d if isinstance(d, int) else None for d in shape)


def placeholder_for(shape: Sequence[int | None], dtype: str, name: str | None = None) -> Node:
    """A placeholder with the given Keras shape (None sizes become symbols)."""
    return placeholder(tuple(shape), dtype, name)


class KerasTensor:
    """The symbolic output of a layer called in the functional API.

    ``shape`` has None for the batch size; ``_keras_history`` is (layer, call index, output
    index), what a ``Model`` follows to find its layers. ``_node`` is the graph node the layer
    produced when traced (used for shapes and for chaining further traces).
    """

    def __init__(self, node: Node, history: tuple, name: str | None = None):
        self._node = node
        self._keras_history = history
        self.name = name or history[0].name

    @property
    def shape(self) -> tuple:
        return keras_shape(self._node.shape)

    @property
    def dtype(self) -> str:
        return self._node.dtype

    @property
    def ndim(self) -> int:
        return self._node.ndim

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise TypeError("a symbolic KerasTensor has no truth value")

    # Arithmetic on functional-API tensors becomes a small recorded op layer.
    def _op(self, fn: Callable[..., Node], *others: Any, name: str) -> "KerasTensor":
        from graphc.keras.layers.core import TensorOp
        return TensorOp(fn, name_hint=name)([self, *others])

    def __add__(self, o): return self._op(lambda a, b: a + b, o, name="add")
    def __radd__(self, o): return self._op(lambda a, b: b + a, o, name="add")
    def __sub__(self, o): return self._op(lambda a, b: a - b, o, name="subtract")
    def __rsub__(self, o): return self._op(lambda a, b: b - a, o, name="subtract")
    def __mul__(self, o): return self._op(lambda a, b: a * b, o, name="multiply")
    def __rmul__(self, o): return self._op(lambda a, b: b * a, o, name="multiply")
    def __truediv__(self, o): return self._op(lambda a, b: a / b, o, name="divide")
    def __rtruediv__(self, o): return self._op(lambda a, b: b / a, o, name="divide")
    def __pow__(self, o): return self._op(lambda a, b: a ** b, o, name="power")
    def __matmul__(self, o): return self._op(lambda a, b: a @ b, o, name="matmul")
    def __neg__(self): return self._op(lambda a: -a, name="negative")
    def __getitem__(self, idx): return self._op(lambda a: a[idx], name="getitem")


def is_leaf_default(x: Any) -> bool:
    return not isinstance(x, (list, tuple, dict))


def flatten(x: Any) -> list:
    """The leaves of nested lists, tuples and dicts (dicts in key order)."""
    if isinstance(x, dict):
        return [leaf for k in x for leaf in flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in flatten(v)]
    return [x]


def map_structure(fn: Callable[[Any], Any], x: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``fn`` applied to every leaf, keeping the nesting."""
    if is_leaf is not None and is_leaf(x):
        return fn(x)
    if isinstance(x, dict):
        return {k: map_structure(fn, v, is_leaf) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(map_structure(fn, v, is_leaf) for v in x)
    if isinstance(x, list):
        return [map_structure(fn, v, is_leaf) for v in x]
    return fn(x)
