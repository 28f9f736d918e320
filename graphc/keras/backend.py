"""``graphc.keras.backend`` (``K``): the backend functions Keras code calls, over graphc graphs.

``from graphc.keras import backend as K`` gives Keras 2's functional backend API: symbolic
tensors are graphc nodes, variables are shared variables, and :func:`function` compiles with
:func:`graphc.function` (mode from :mod:`graphc.keras.config`). Semantics follow Keras (its
TensorFlow backend): e.g. ``argmax`` defaults to the last axis, ``sqrt`` clips negatives to 0,
the crossentropies clip probabilities to ``[epsilon, 1 - epsilon]`` and accept
``from_logits``; ``zeros``/``ones`` make variables and ``zeros_like``/``ones_like`` tensors.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

import graphc as gc
from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.variables import get_value as _shared_get, set_value as _shared_set
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import format_shape, size_of
from graphc.keras import config
from graphc.keras.config import epsilon, floatx, set_epsilon, set_floatx

Tensor = Node
_state: dict[str, Any] = {"learning_phase": 0}
_uids: defaultdict[str, itertools.count] = defaultdict(lambda: itertools.count(1))


# ----------------------------------------------------------------------------- session, config
def clear_session() -> None:
    """Reset the backend's state: layer-name counters and the learning phase."""
    _uids.clear()
    _state["learning_phase"] = 0


def get_uid(prefix: str = "") -> int:
    """1, 2, 3, ... per ``prefix`` (used to name layers ``dense``, ``dense_1``, ...)."""
    return next(_uids[prefix])


def learning_phase() -> int:
    """0 (inference) or 1 (training): the default phase for layers that behave differently."""
    return int(_state["learning_phase"])


def set_learning_phase(value: int) -> None:
    """Set the default learning phase (0 or 1)."""
    if value not in (0, 1):
        raise InputError(f"learning phase must be 0 or 1, got {value!r}")
    _state["learning_phase"] = int(value)


def is_tensor(x: object) -> bool:
    """Whether ``x`` is a symbolic tensor (a graph node)."""
    return isinstance(x, Node)


def _t(x: Any) -> Node:
    return ops.as_tensor(x) if isinstance(x, Node) else ops.as_tensor(np.asarray(x, dtype=_np_dtype(x)))


def _np_dtype(x: Any) -> str | None:
    arr = np.asarray(x)
    return floatx() if arr.dtype == np.float64 else None


# ----------------------------------------------------------------------------- tensors, variables
def placeholder(shape: Sequence[int | None] | None = None, ndim: int | None = None, dtype: str | None = None,
                sparse: bool = False, name: str | None = None) -> Node:
    """A symbolic input; ``None`` dimensions are sized at call time (``ndim`` gives all-None)."""
    if sparse:
        raise InputError("sparse placeholders are not supported by graphc")
    if shape is None:
        if ndim is None:
            raise InputError("placeholder: give a shape or an ndim")
        shape = (None,) * ndim
    return gc.placeholder(tuple(shape), dtype or floatx(), name)


def variable(value: Any, dtype: str | None = None, name: str | None = None, constraint: Any = None) -> Node:
    """A variable (shared) holding a copy of ``value``, of ``dtype`` (default ``floatx()``)."""
    return gc.shared(np.asarray(value, dtype=dtype or floatx()), name=name)


def constant(value: Any, dtype: str | None = None, shape: Sequence[int] | None = None,
             name: str | None = None) -> Node:
    """A constant tensor, filled to ``shape`` if given."""
    arr = np.asarray(value, dtype=dtype or floatx())
    if shape is not None:
        arr = np.broadcast_to(arr, tuple(shape))
    return gc.constant(np.ascontiguousarray(arr))


def zeros(shape: Sequence[int], dtype: str | None = None, name: str | None = None) -> Node:
    """A variable of zeros (as in Keras, a variable, not a tensor)."""
    return variable(np.zeros(tuple(shape)), dtype=dtype or floatx(), name=name)


def ones(shape: Sequence[int], dtype: str | None = None, name: str | None = None) -> Node:
    """A variable of ones."""
    return variable(np.ones(tuple(shape)), dtype=dtype or floatx(), name=name)


def zeros_like(x: Any, dtype: str | None = None, name: str | None = None) -> Node:
    """A tensor of zeros shaped like ``x``."""
    out = ops.zeros_like(_t(x))
    return ops.cast(out, dtype) if dtype else out


def ones_like(x: Any, dtype: str | None = None, name: str | None = None) -> Node:
    """A tensor of ones shaped like ``x``."""
    out = ops.ones_like(_t(x))
    return ops.cast(out, dtype) if dtype else out


def random_uniform(shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0, dtype: str | None = None,
                   seed: int | None = None) -> Node:
    """Uniform samples in ``[minval, maxval)``, new at every call of a compiled function."""
    return ops.random_uniform(tuple(shape), minval, maxval, dtype or floatx(), seed)


def random_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: str | None = None,
                  seed: int | None = None) -> Node:
    """Normal samples, new at every call of a compiled function."""
    return ops.random_normal(tuple(shape), mean, stddev, dtype or floatx(), seed)


# ----------------------------------------------------------------------------- values
def _is_shared(x: Any) -> bool:
    return isinstance(x, Node) and x.op is Op.SHARED


def eval(x: Any) -> np.ndarray:  # noqa: A001 - Keras's name
    """The value of a tensor that depends on no placeholder."""
    if not isinstance(x, Node):
        return np.asarray(x)
    if _is_shared(x):
        return _shared_get(x)
    return np.asarray(gc.function([], x, mode=config.run_mode(), name="eval")())


def get_value(x: Any) -> np.ndarray:
    """The value of a variable (a copy); arrays and numbers are returned as arrays."""
    return eval(x)


def batch_get_value(xs: Sequence[Any]) -> list[np.ndarray]:
    """The values of several variables."""
    return [get_value(x) for x in xs]


def set_value(x: Node, value: Any) -> None:
    """Overwrite a variable's value (same shape)."""
    if not _is_shared(x):
        raise InputError(f"set_value: {x!r} is not a variable")
    _shared_set(x, np.asarray(value, dtype=x.dtype))


def batch_set_value(tuples: Sequence[tuple[Node, Any]]) -> None:
    """``set_value`` for several ``(variable, value)`` pairs."""
    for x, v in tuples:
        set_value(x, v)


def int_shape(x: Any) -> tuple[int | None, ...]:
    """The static shape, ``None`` for sizes known only at run time."""
    if isinstance(x, Node):
        return tuple(d if isinstance(d, int) else None for d in x.shape)
    return tuple(np.shape(x))


def shape(x: Any) -> Node:
    """The run-time shape as an int64 tensor."""
    return ops.shape(_t(x))


def ndim(x: Any) -> int:
    """The number of axes."""
    return x.ndim if isinstance(x, Node) else np.ndim(x)


def dtype(x: Any) -> str:
    """The dtype name, e.g. ``"float32"``."""
    return x.dtype if isinstance(x, Node) else np.asarray(x).dtype.name


def count_params(x: Any) -> int:
    """The number of scalars in a variable."""
    return int(np.prod(int_shape(x)))


# ----------------------------------------------------------------------------- function, gradients
class Function:
    """A compiled backend function: call it with a list of arrays, one per input."""

    def __init__(self, inputs: Sequence[Node], outputs: Any, updates: Any = None, name: str | None = None,
                 mode: str | None = None):
        self._single = isinstance(outputs, Node)
        self.inputs = list(inputs)
        self.outputs = outputs
        self._fn = gc.function(self.inputs, outputs, updates=updates, mode=mode or config.run_mode(),
                               name=name or "backend_function")

    def __call__(self, inputs: Sequence[Any]) -> Any:
        if isinstance(inputs, dict):
            inputs = [inputs[x.name] if x.name in inputs else inputs[x] for x in self.inputs]
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(self.inputs):
            raise InputError(f"backend function expects {len(self.inputs)} inputs, got {len(inputs)}")
        return self._fn(*inputs)


def function(inputs: Sequence[Node], outputs: Any, updates: Any = None, name: str | None = None,
             **kwargs: Any) -> Function:
    """Compile ``outputs`` (one tensor or a list) of ``inputs`` with ``updates`` ((variable,
    new value) pairs) into ``f(list_of_arrays)``; ``mode="reference"|"native"`` overrides the
    configured mode."""
    mode = kwargs.pop("mode", None)
    if kwargs:
        raise InputError(f"backend.function: unexpected arguments {sorted(kwargs)}")
    return Function(inputs, outputs, updates, name, mode)


def gradients(loss: Node, variables: Sequence[Node] | Node) -> list[Node]:
    """The symbolic gradients of a scalar ``loss`` with respect to each of ``variables``."""
    single = isinstance(variables, Node)
    grads = gc.grad(loss, [variables] if single else list(variables))
    return list(grads)


def stop_gradient(x: Any) -> Node:
    """``x``, treated as a constant by :func:`gradients` (where the core supports it)."""
    if hasattr(ops, "stop_gradient"):
        return ops.stop_gradient(x)
    raise NotImplementedError("stop_gradient is not available in this graphc build")


# ----------------------------------------------------------------------------- math
def cast(x: Any, dtype: str) -> Node:
    return ops.cast(_t(x), dtype)


def _float(x: Any) -> Node:
    x = _t(x)
    return x if x.dtype.startswith("float") else ops.cast(x, floatx())


def sum(x, axis=None, keepdims=False): return ops.sum(_t(x), axis, keepdims)  # noqa: A001
def prod(x, axis=None, keepdims=False): return ops.prod(_t(x), axis, keepdims)
def max(x, axis=None, keepdims=False): return ops.max(_t(x), axis, keepdims)  # noqa: A001
def min(x, axis=None, keepdims=False): return ops.min(_t(x), axis, keepdims)  # noqa: A001
def mean(x, axis=None, keepdims=False): return ops.mean(_float(x), axis, keepdims)
def var(x, axis=None, keepdims=False): return ops.var(_float(x), axis, keepdims)
def std(x, axis=None, keepdims=False): return ops.std(_float(x), axis, keepdims)
def any(x, axis=None, keepdims=False): return ops.greater(ops.max(cast(x, "int32"), axis, keepdims), 0)  # noqa: A001
def all(x, axis=None, keepdims=False): return ops.greater(ops.min(cast(x, "int32"), axis, keepdims), 0)  # noqa: A001
def argmax(x, axis=-1): return ops.argmax(_t(x), axis)
def argmin(x, axis=-1): return ops.argmin(_t(x), axis)
def equal(x, y): return ops.equal(_t(x), y)
def not_equal(x, y): return ops.not_equal(_t(x), y)
def greater(x, y): return ops.greater(_t(x), y)
def greater_equal(x, y): return ops.greater_equal(_t(x), y)
def less(x, y): return ops.less(_t(x), y)
def less_equal(x, y): return ops.less_equal(_t(x), y)
def maximum(x, y): return ops.maximum(_t(x), y)
def minimum(x, y): return ops.minimum(_t(x), y)
def abs(x): return ops.abs(_t(x))  # noqa: A001
def sign(x): return ops.sign(_t(x))
def round(x): return ops.round(_t(x))  # noqa: A001
def square(x): return ops.square(_t(x))
def exp(x): return ops.exp(_float(x))
def log(x): return ops.log(_float(x))
def sin(x): return ops.sin(_float(x))
def cos(x): return ops.cos(_float(x))
def pow(x, a): return ops.power(_t(x), a)  # noqa: A001
def logsumexp(x, axis=None, keepdims=False): return ops.logsumexp(_float(x), axis, keepdims)


def sqrt(x: Any) -> Node:
    """Square root, negatives clipped to 0 first (Keras's rule)."""
    return ops.sqrt(ops.maximum(_float(x), 0.0))


def clip(x: Any, min_value: float | None, max_value: float | None) -> Node:
    """``x`` clipped to ``[min_value, max_value]`` (a max below the min is raised to it)."""
    if min_value is not None and max_value is not None and max_value < min_value:
        max_value = min_value
    return ops.clip(_t(x), min_value, max_value)


def l2_normalize(x: Any, axis: int | None = None) -> Node:
    """``x / sqrt(max(sum(x**2, axis), 1e-12))``."""
    x = _float(x)
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis, keepdims=True), 1e-12))


# ----------------------------------------------------------------------------- linear algebra, shapes
def dot(x: Any, y: Any) -> Node:
    """Keras's ``dot``: matrix product; for rank > 2, contracts the last axis of ``x`` with the
    second-to-last of ``y`` (shape ``x[:-1] + y[:-2] + y[-1:]``)."""
    x, y = _t(x), _t(y)
    if y.ndim > 2:
        return ops.tensordot(x, y, axes=([x.ndim - 1], [y.ndim - 2]))
    return ops.dot(x, y)


def batch_dot(x: Any, y: Any, axes: int | Sequence[int] | None = None) -> Node:
    """Per-sample dot product of two batches (axis 0 is the batch): contracts ``axes[0]`` of
    ``x`` with ``axes[1]`` of ``y``. Two rank-2 inputs give shape ``(batch, 1)``."""
    x, y = _t(x), _t(y)
    if x.ndim < 2 or y.ndim < 2:
        raise ShapeError(f"batch_dot needs inputs of rank >= 2, got {format_shape(x.shape)} and {format_shape(y.shape)}")
    if axes is None:
        axes = (x.ndim - 1, y.ndim - 1 if y.ndim == 2 else y.ndim - 2)
    elif isinstance(axes, int):
        axes = (axes, axes)
    ax, ay = int(axes[0]) % x.ndim, int(axes[1]) % y.ndim
    if ax == 0 or ay == 0:
        raise ShapeError("batch_dot cannot contract the batch axis (0)")
    if isinstance(x.shape[ax], int) and isinstance(y.shape[ay], int) and x.shape[ax] != y.shape[ay]:
        raise ShapeError(f"batch_dot: axis {ax} of {format_shape(x.shape)} and axis {ay} of "
                         f"{format_shape(y.shape)} differ in size")
    fx = [i for i in range(1, x.ndim) if i != ax]
    fy = [i for i in range(1, y.ndim) if i != ay]
    b = x.shape[0]
    xm = ops.reshape(ops.transpose(x, [0] + fx + [ax]), (b, size_of(x.shape[i] for i in fx), x.shape[ax]))
    ym = ops.reshape(ops.transpose(y, [0, ay] + fy), (b, y.shape[ay], size_of(y.shape[i] for i in fy)))
    out = ops.matmul(xm, ym)
    out_shape = (b,) + tuple(x.shape[i] for i in fx) + tuple(y.shape[i] for i in fy)
    if len(out_shape) == 1:
        out_shape = (b, 1)
    return ops.reshape(out, out_shape)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Node:
    """Permute axes (reverse them by default)."""
    return ops.transpose(_t(x), axes)


def reshape(x: Any, shape: Sequence[int]) -> Node:
    return ops.reshape(_t(x), tuple(shape))


def flatten(x: Any) -> Node:
    """``x`` as a vector."""
    return ops.reshape(_t(x), (-1,))


def batch_flatten(x: Any) -> Node:
    """``(batch, ...)`` to ``(batch, prod(...))``."""
    x = _t(x)
    return ops.reshape(x, (x.shape[0], size_of(x.shape[1:])))


def expand_dims(x: Any, axis: int = -1) -> Node:
    return ops.expand_dims(_t(x), axis)


def squeeze(x: Any, axis: int) -> Node:
    return ops.squeeze(_t(x), axis)


def concatenate(tensors: Sequence[Any], axis: int = -1) -> Node:
    return ops.concatenate([_t(t) for t in tensors], axis)


def stack(x: Sequence[Any], axis: int = 0) -> Node:
    return ops.stack([_t(t) for t in x], axis)


def one_hot(indices: Any, num_classes: int) -> Node:
    """``(..., num_classes)`` one-hot of integer ``indices``, in ``floatx()``."""
    return ops.one_hot(_t(indices), num_classes, floatx())


def gather(reference: Any, indices: Any) -> Node:
    """Rows of ``reference`` at ``indices`` (along axis 0)."""
    return ops.take(_t(reference), _t(indices), axis=0)


def tile(x: Any, n: Sequence[int] | int) -> Node:
    """``x`` repeated ``n[i]`` times along axis ``i``."""
    x = _t(x)
    reps = [n] if isinstance(n, int) else list(n)
    reps = [1] * (x.ndim - len(reps)) + reps
    out = x
    for axis, r in enumerate(reps):
        if r != 1:
            out = ops.concatenate([out] * r, axis)
    return out


# ----------------------------------------------------------------------------- activations
def softmax(x: Any, axis: int = -1) -> Node:
    return ops.softmax(_float(x), axis)


def sigmoid(x: Any) -> Node:
    return ops.sigmoid(_float(x))


def hard_sigmoid(x: Any) -> Node:
    """``clip(0.2 x + 0.5, 0, 1)``."""
    return ops.clip(_float(x) * 0.2 + 0.5, 0.0, 1.0)


def tanh(x: Any) -> Node:
    return ops.tanh(_float(x))


def softplus(x: Any) -> Node:
    return ops.softplus(_float(x))


def softsign(x: Any) -> Node:
    x = _float(x)
    return x / (ops.abs(x) + 1.0)


def elu(x: Any, alpha: float = 1.0) -> Node:
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    x = _float(x)
    return ops.where(ops.greater(x, 0), x, alpha * ops.expm1(ops.minimum(x, 0.0)))


def relu(x: Any, alpha: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> Node:
    """Keras's rectifier: ``x`` above ``threshold``, ``alpha * (x - threshold)`` below, capped
    at ``max_value``."""
    x = _float(x)
    negative = ops.relu(threshold - x) if alpha != 0 else None
    if threshold != 0:
        out = x * ops.cast(ops.greater(x, threshold), x.dtype)
    else:
        out = ops.relu(x)
    if max_value is not None:
        out = ops.clip(out, 0.0, max_value)
    if negative is not None:
        out = out - alpha * negative
    return out


# ----------------------------------------------------------------------------- losses
def _softmax_over(x: Node, axis: int) -> bool:
    return x.op is Op.SOFTMAX and x.attrs["axis"] == axis % x.ndim


def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Node:
    """``-sum(target * log(p))`` along ``axis``; ``output`` holds probabilities (rescaled to sum
    to 1 and clipped to ``[eps, 1 - eps]``) or, with ``from_logits``, logits."""
    target, output = _float(target), _float(output)
    if not from_logits and _softmax_over(output, axis):  # Keras reads the logits back out of a softmax
        output, from_logits = output.inputs[0], True
    if from_logits:
        return -ops.sum(target * ops.log_softmax(output, axis), axis)
    output = output / ops.sum(output, axis, keepdims=True)
    eps = epsilon()
    output = ops.clip(output, eps, 1.0 - eps)
    return -ops.sum(target * ops.log(output), axis)


def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Node:
    """Categorical crossentropy with integer class ``target`` (shape of ``output`` without
    ``axis``, or with a trailing 1)."""
    target, output = _t(target), _float(output)
    axis = axis % output.ndim
    if target.ndim == output.ndim and target.shape[-1] == 1:
        target = ops.squeeze(target, -1)
    if target.ndim != output.ndim - 1:
        raise ShapeError(f"sparse_categorical_crossentropy: labels of shape {format_shape(target.shape)} do not fit "
                         f"predictions of shape {format_shape(output.shape)} (expected one label per sample)")
    if not from_logits and _softmax_over(output, axis):
        output, from_logits = output.inputs[0], True
    logits = output if from_logits else ops.log(ops.clip(output, epsilon(), 1.0 - epsilon()))
    n = output.shape[axis]
    if not isinstance(n, int):
        raise ShapeError("sparse_categorical_crossentropy needs a static number of classes")
    onehot = ops.one_hot(ops.cast(target, "int64"), n, output.dtype)
    if axis != output.ndim - 1:
        onehot = ops.transpose(onehot, [*range(axis), output.ndim - 1, *range(axis, output.ndim - 1)])
    return -ops.sum(onehot * ops.log_softmax(logits, axis), axis)


def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Node:
    """Elementwise ``-(t log p + (1 - t) log(1 - p))``; probabilities clipped to
    ``[eps, 1 - eps]``, or logits with ``from_logits`` (computed stably)."""
    target, output = _float(target), _float(output)
    if not from_logits and output.op is Op.SIGMOID:
        output, from_logits = output.inputs[0], True
    if from_logits:
        return ops.relu(output) - output * target + ops.softplus(-ops.abs(output))
    eps = epsilon()
    output = ops.clip(output, eps, 1.0 - eps)
    return -(target * ops.log(output + eps) + (1.0 - target) * ops.log(1.0 - output + eps))


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "itertools", "defaultdict", "Any", "Sequence", "np", "gc", "ops", "Node",
    "Op", "InputError", "ShapeError", "format_shape", "size_of", "config")]
