"""DTypes: graphc uses NumPy's dtype names and NumPy's promotion rules (NEP 50).

float32 is the default float. Python scalars are "weak": ``x * 2`` keeps x's dtype.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError

DTYPES: tuple[str, ...] = ("bool", "int32", "int64", "float32", "float64")
FLOATS = frozenset({"float32", "float64"})
INTS = frozenset({"int32", "int64"})
DEFAULT_FLOAT = "float32"


def as_dtype(dtype: object) -> str:
    """Normalise a dtype-like (``"float32"``, ``np.float32``, ``np.dtype``) to its name."""
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError as e:
        raise DTypeError(f"not a dtype: {dtype!r}") from e
    if name not in DTYPES:
        raise DTypeError(f"graphc supports dtypes {', '.join(DTYPES)}; got {name}")
    return name


def is_float(dtype: str) -> bool:
    """True for float32 and float64."""
    return dtype in FLOATS


def promote(*dtypes: str) -> str:
    """The dtype NumPy gives to an operation on arrays of these dtypes."""
    return np.result_type(*[np.dtype(d) for d in dtypes]).name


def promote_with_scalar(dtype: str, scalar: object) -> str:
    """The dtype of ``array(dtype) op scalar`` under NEP 50 (the scalar is weak)."""
    return np.result_type(np.dtype(dtype), scalar).name  # type: ignore[arg-type]


def float_of(dtype: str) -> str:
    """The float dtype a float-only function (exp, log, ...) computes in, as NumPy does."""
    return dtype if dtype in FLOATS else "float64"


def scalar_dtype(value: object) -> str:
    """The dtype a Python or NumPy scalar becomes as a standalone constant."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, np.generic):
        return as_dtype(value.dtype)
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return DEFAULT_FLOAT
    raise DTypeError(f"cannot make a graph constant from {type(value).__name__}")
