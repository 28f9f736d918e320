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
    has no setter): compiled functions bind its address once.

    A CUDA function keeps the variable in device memory between calls and leaves the newest
    value there (``device``, see graphc/lower/nvvm_executable.py): reading ``array`` first
    copies it back. ``version`` counts the writes made on the host through ``set_value`` (and
    borrows, which may write); writes by compiled CPU code count in ``HOST.writes`` (see
    :class:`HostState`)."""

    __slots__ = ("_array", "version", "device", "__weakref__")

    def __init__(self, array: np.ndarray):
        self._array = array
        self.version = 0
        self.device = None  # a DeviceCopy holding a newer value, or None

    @property
    def array(self) -> np.ndarray:
        if self.device is not None:
            self.device.fetch(self)  # copies the device's value into _array, clears device
        return self._array

    def written_on_host(self) -> None:
        """The host array was (or may have been) written: device copies must be refreshed."""
        self.version += 1
        if self.device is not None:  # the host value now supersedes the device's
            self.device.forget(self)


class HostState:
    """What CUDA functions check before a call to learn of host-side changes cheaply.

    ``writes`` counts calls of native CPU functions that update shared variables (they write
    into the host arrays without saying which; reference-mode calls and ``set_value`` bump the
    variable's ``version`` instead); ``device_newer`` holds the
    storages whose newest value is in device memory, which a CPU function fetches before it
    runs."""

    def __init__(self) -> None:
        self.writes = 0
        self.device_newer: set[SharedStorage] = set()


HOST = HostState()


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
    """The current value of a shared variable (a copy unless ``borrow``: the buffer itself,
    which the caller may write into)."""
    st = storage(node)
    array = st.array
    if borrow:
        st.written_on_host()
        return array
    return array.copy()


def set_value(node: Node, value: np.ndarray) -> None:
    """Overwrite a shared variable's value in place; the shape must stay the same."""
    st = storage(node)
    value = np.asarray(value)
    if value.shape != st._array.shape:  # (not .array: a value on a device need not come back)
        raise ShapeError(f"set_value on {node.name!r}: expected shape {format_shape(st._array.shape)}, "
                         f"got {format_shape(value.shape)}")
    st.written_on_host()  # first: the device's value is dropped, not fetched
    np.copyto(st._array, value, casting="same_kind")


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
