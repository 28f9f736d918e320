"""Array helpers of ``keras.utils``: one-hot encoding and normalisation (NumPy in, NumPy out)."""
from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import InputError


def to_categorical(y: Any, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical``.

    ``y`` has any shape; a trailing axis of size 1 is dropped (labels shaped ``(n, 1)`` give
    ``(n, num_classes)``). ``num_classes`` defaults to ``max(y) + 1``. Labels must be whole
    numbers in ``[0, num_classes)``.
    """
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError("to_categorical: labels must be whole numbers (class indices), "
                             f"got non-integral values of dtype {arr.dtype}")
    elif arr.dtype.kind not in "iub":
        raise InputError(f"to_categorical: labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    shape = arr.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = arr.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    num_classes = int(num_classes)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise InputError(f"to_categorical: labels must lie in [0, {num_classes}), got values from "
                         f"{int(flat.min())} to {int(flat.max())}")
    out = np.zeros((flat.size, num_classes), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(tuple(shape) + (num_classes,))


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """``x`` divided by its ``order``-norm along ``axis`` (zero vectors stay zero)."""
    arr = np.asarray(x)
    norms = np.atleast_1d(np.linalg.norm(arr, order, axis))
    norms[norms == 0] = 1
    return arr / np.expand_dims(norms, axis)
