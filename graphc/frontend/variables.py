"""Graph leaves a user creates: placeholders, shared variables (values outside the graph), constants."""
from __future__ import annotations

import itertools
import weakref
from typing import Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.ir import dtypes as dt
from graphc.ir.node import ConstValue, Node, make_node
from graphc.ir.ops import Op
from graphc.ir.shapes import as_dim, format_shape, new_symbol

_uids = itertools.count()


class SharedStorage:
    """The value of a shared variable: one C-contiguous array, updated in place so that
    compiled code can keep writing into the same buffer. The buffer never changes (``array``
    has no setter): compiled functions bind its address once."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray):
        self._array = array

    @property
    def array(self) -> np.ndarray:
        return self._array


_storage: "weakref.WeakKeyDictionary[Node, SharedStorage]" = weakref.WeakKeyDictionary()


def placeholder(shape: Sequence[int | None], dtype: str = "float32", name: str | None = None) -> Node:
    """A graph input. ``None`` in ``shape`` is a size known only when the function runs."""
    uid = next(_uids)
    name = name or f"input{uid}"
    dims = tuple(new_symbol(f"{name}_d{i}_") if d is None else as_dim(d) for i, d in enumerate(shape))
    return make_node(Op.PLACEHOLDER, (), {"name": name, "uid": uid, "shape": dims, "dtype": dt.as_dtype(dtype)})


def shared(value: np.ndarray, name: str | None = None, dtype: str | None = None) -> Node:
    """A variable whose value lives outside the graph and persists across calls
    (weights, optimizer state). Read it with ``get_value``, write with ``set_value`` or a
    compiled function's ``updates``."""
    array = np.array(value, dtype=dtype, copy=True, order="C")
    dtype_ = dt.as_dtype(array.dtype)
    uid = next(_uids)
    node = make_node(Op.SHARED, (), {"name": name or f"shared{uid}", "uid": uid,
                                     "shape": tuple(int(d) for d in array.shape), "dtype": dtype_})
    _storage[node] = SharedStorage(array)
    return node


def storage(node: Node) -> SharedStorage:
    """The storage behind a shared variable node."""
    try:
        return _storage[node]
    except KeyError:
        raise InputError(f"{node!r} is not a shared variable") from None


def get_value(node: Node, borrow: bool = False) -> np.ndarray:
    """The current value of a shared variable (a copy unless ``borrow``)."""
    array = storage(node).array
    return array if borrow else array.copy()


def set_value(node: Node, value: np.ndarray) -> None:
    """Overwrite a shared variable's value in place; the shape must stay the same."""
    st = storage(node)
    value = np.asarray(value)
    if value.shape != st.array.shape:
        raise ShapeError(f"set_value on {node.name!r}: expected shape {format_shape(st.array.shape)}, "
                         f"got {format_shape(value.shape)}")
    np.copyto(st.array, value, casting="same_kind")


def constant(value: object, dtype: str | None = None) -> Node:
    """A constant tensor (NumPy arrays keep their dtype, Python floats become float32)."""
    if isinstance(value, Node):
        return value if dtype is None else make_node(Op.CAST, (value,), {"dtype": dt.as_dtype(dtype)})
    if dtype is None:
        if isinstance(value, (bool, int, float, np.generic)):
            dtype = dt.scalar_dtype(value)
        else:
            arr = np.asarray(value)
            dtype = dt.DEFAULT_FLOAT if arr.dtype == np.float64 and not isinstance(value, np.ndarray) else arr.dtype.name
    array = np.asarray(value, dtype=dt.as_dtype(dtype))
    return make_node(Op.CONSTANT, (), {"value": ConstValue(array)})


# Shared-variable access as methods, the way Theano users write it.
Node.get_value = get_value  # type: ignore[attr-defined]
Node.set_value = set_value  # type: ignore[attr-defined]
