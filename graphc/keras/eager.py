"""Run a graph-building function on NumPy arrays (for losses, metrics and activations called
outside a model, as Keras allows)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from graphc.frontend.variables import placeholder
from graphc.ir.node import Node


def is_symbolic(*xs: Any) -> bool:
    """True if any argument is a graph node."""
    return any(isinstance(x, Node) for x in xs)


def run(fn: Callable[..., Any], *arrays: Any) -> Any:
    """``fn`` applied to placeholders for ``arrays``, compiled in reference mode and run."""
    import graphc as gc
    vals = [np.asarray(a) for a in arrays]
    vals = [v.astype("float32") if v.dtype == np.float64 else v for v in vals]
    holders = [placeholder(v.shape, v.dtype.name) for v in vals]
    out = fn(*holders)
    single = isinstance(out, Node)
    f = gc.function(holders, [out] if single else list(out), mode="reference")
    res = f(*vals)
    return res[0] if single else res
