"""Interned, immutable IR nodes.

Equal nodes (same op, same inputs, same attributes) are the same Python object, so common
subexpressions merge as the graph is built and every pass is a pure function of nodes.
Where a node came from (the user's file and line, the layer that made it) is kept beside the
node in a weak table, not in its identity.
"""
from __future__ import annotations

import os
import sys
import weakref
from typing import Any, Iterator, Mapping

import numpy as np

from graphc.ir.ops import Op
from graphc.ir.shapes import Dim, format_shape

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConstValue:
    """A hashable, read-only wrapper around a constant's NumPy array (compared by content)."""

    __slots__ = ("array", "_key")

    def __init__(self, array: np.ndarray):
        array = np.array(array, copy=True)
        array.setflags(write=False)
        self.array = array
        self._key = (array.dtype.str, array.shape, array.tobytes())

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstValue) and self._key == other._key

    def __repr__(self) -> str:
        if self.array.size <= 6:
            return repr(self.array.tolist())
        return f"<{self.array.dtype} array {self.array.shape}>"


class Attrs(Mapping[str, Any]):
    """An immutable, hashable attribute mapping of a node."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._items = tuple(sorted((items or {}).items()))
        self._hash = hash(self._items)

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def __repr__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._items)


_interned: "weakref.WeakValueDictionary[tuple, Node]" = weakref.WeakValueDictionary()
_origin: "weakref.WeakKeyDictionary[Node, str]" = weakref.WeakKeyDictionary()
_label: "weakref.WeakKeyDictionary[Node, str]" = weakref.WeakKeyDictionary()


_inside_graphc: dict[str, bool] = {}  # code filename -> whether it is graphc's own (abspath is slow)


def user_location() -> str | None:
    """``file:line`` of the innermost caller outside the graphc package, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = _inside_graphc.get(filename)
        if inside is None:
            inside = _inside_graphc[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR)
        if not inside:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


class Node:
    """One value in the graph: an op applied to input nodes, with a static shape and dtype.

    Build nodes with :func:`make_node`, never directly. Python operators (``+``, ``@``,
    indexing, ...) are available on nodes and delegate to :mod:`graphc.ops`.
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "__weakref__")

    op: Op
    inputs: tuple["Node", ...]
    attrs: Attrs
    shape: tuple[Dim, ...]
    dtype: str

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("graph nodes are immutable")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str | None:
        return self.attrs.get("name")

    @property
    def origin(self) -> str | None:
        """The user's ``file:line`` where this node was first built, if known."""
        return _origin.get(self)

    @property
    def label(self) -> str | None:
        """The layer or scope that built this node, if any."""
        return _label.get(self)

    def __repr__(self) -> str:
        nm = f" {self.name!r}" if self.name else ""
        return f"<{self.op.value}{nm} {format_shape(self.shape)} {self.dtype}>"

    # Python operators delegate to graphc.frontend.ops (imported lazily: ir has no
    # import-time dependency on the frontend).
    def __add__(self, o): return _ops().add(self, o)
    def __radd__(self, o): return _ops().add(o, self)
    def __sub__(self, o): return _ops().subtract(self, o)
    def __rsub__(self, o): return _ops().subtract(o, self)
    def __mul__(self, o): return _ops().multiply(self, o)
    def __rmul__(self, o): return _ops().multiply(o, self)
    def __truediv__(self, o): return _ops().divide(self, o)
    def __rtruediv__(self, o): return _ops().divide(o, self)
    def __pow__(self, o): return _ops().power(self, o)
    def __rpow__(self, o): return _ops().power(o, self)
    def __matmul__(self, o): return _ops().matmul(self, o)
    def __rmatmul__(self, o): return _ops().matmul(o, self)
    def __neg__(self): return _ops().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().abs(self)
    def __invert__(self): return _ops().logical_not(self)
    def __and__(self, o): return _ops().logical_and(self, o)
    def __or__(self, o): return _ops().logical_or(self, o)
    def __xor__(self, o): return _ops().logical_xor(self, o)
    def __lt__(self, o): return _ops().less(self, o)
    def __le__(self, o): return _ops().less_equal(self, o)
    def __gt__(self, o): return _ops().greater(self, o)
    def __ge__(self, o): return _ops().greater_equal(self, o)
    def __getitem__(self, index): return _ops().getitem(self, index)

    # Nodes are compared by identity (they are interned); ``==`` stays Python equality so that
    # nodes can live in sets and dicts. Use graphc.ops.equal for the elementwise comparison.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError("a symbolic tensor has no truth value; use graphc.ops.where or a comparison op")

    def __len__(self) -> int:
        if not self.shape or not isinstance(self.shape[0], int):
            raise TypeError(f"len() of a tensor with shape {format_shape(self.shape)}")
        return self.shape[0]

    def __iter__(self):
        raise TypeError("a symbolic tensor is not iterable; index it or use graphc.ops.unstack")

    @property
    def T(self) -> "Node":
        return _ops().transpose(self)

    def reshape(self, *shape) -> "Node":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops().reshape(self, shape)

    def astype(self, dtype) -> "Node":
        return _ops().cast(self, dtype)

    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops().min(self, axis, keepdims)


def _ops():
    from graphc.frontend import ops
    return ops


def make_node(op: Op, inputs: tuple[Node, ...] = (), attrs: Mapping[str, Any] | None = None) -> Node:
    """The unique node for ``op(inputs, attrs)``: infers its shape and dtype (raising a
    :class:`~graphc.errors.ShapeError` or :class:`~graphc.errors.DTypeError` that names the op,
    the shapes and the user's line) or returns the existing equal node."""
    attrs_ = attrs if isinstance(attrs, Attrs) else Attrs(attrs)
    key = (op, inputs, attrs_)
    node = _interned.get(key)
    if node is not None:
        return node
    from graphc.ir.infer import infer  # the table lives beside; imported late to avoid a cycle
    shape, dtype = infer(op, inputs, attrs_)
    node = object.__new__(Node)
    object.__setattr__(node, "op", op)
    object.__setattr__(node, "inputs", inputs)
    object.__setattr__(node, "attrs", attrs_)
    object.__setattr__(node, "shape", tuple(shape))
    object.__setattr__(node, "dtype", dtype)
    _interned[key] = node
    where = user_location()
    if where:
        _origin[node] = where
    return node


def set_label(node: Node, label: str) -> None:
    """Record which layer or scope built ``node`` (first label wins)."""
    _label.setdefault(node, label)


def copy_origin(src: Node, dst: Node) -> None:
    """Let a rewritten node keep pointing at the user's line of the node it replaces."""
    if src.origin and dst not in _origin:
        _origin[dst] = src.origin
    if src.label and dst not in _label:
        _label[dst] = src.label
