"""``graphc.ops``: NumPy-named tensor operations that build graph nodes.

Compound operations (mean, clip, logsumexp, one_hot, ...) are built here from the primitive
ops of :mod:`graphc.ir.ops`; dtype promotion follows NumPy (NEP 50: Python scalars are weak).
"""
from __future__ import annotations

import builtins
import itertools
import operator
from typing import Sequence, Union

import numpy as np
import sympy

from graphc.errors import DTypeError, InputError, ShapeError
from graphc.ir import dtypes as dt
from graphc.ir.node import Node, make_node, user_location
from graphc.ir.ops import Op
from graphc.ir.shapes import Dim, as_dim, format_shape, size_of
from graphc.frontend.variables import constant

TensorLike = Union[Node, np.ndarray, float, int, bool]
Axis = Union[None, int, Sequence[int]]

_random_uids = itertools.count()
_default_seeds = np.random.default_rng(20261123)


# ----------------------------------------------------------------------------- conversions
def as_tensor(x: TensorLike, dtype: str | None = None) -> Node:
    """A node for ``x``: nodes pass through, arrays and scalars become constants."""
    if isinstance(x, Node):
        return x if dtype is None or x.dtype == dtype else cast(x, dtype)
    return constant(x, dtype)


def _is_scalar(x: object) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _promote(*xs: TensorLike) -> list[Node]:
    """Convert operands to nodes of one dtype, treating Python scalars as weak (NEP 50)."""
    nodes = [x for x in xs if isinstance(x, Node)]
    arrays = [np.asarray(x) for x in xs if not isinstance(x, Node) and not _is_scalar(x)]
    strong = [n.dtype for n in nodes] + [a.dtype.name for a in arrays]
    if strong:
        target = dt.promote(*strong)
        for x in xs:
            if _is_scalar(x):
                target = dt.promote_with_scalar(target, x)
    else:
        target = dt.promote(*[dt.scalar_dtype(x) for x in xs])
    return [as_tensor(x, target) for x in xs]


def _axes(x: Node, axis: Axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        a = operator.index(a)
        if not -x.ndim <= a < builtins.max(x.ndim, 1):
            raise ShapeError(f"axis {a} is out of range for a tensor of shape {format_shape(x.shape)}"
                             + _at())
        out.append(a % x.ndim if x.ndim else 0)
    return tuple(sorted(set(out)))


def _at() -> str:
    where = user_location()
    return f"\n  at {where}" if where else ""


# ----------------------------------------------------------------------------- elementwise
def _unary(op: Op, x: TensorLike, float_only: bool = False) -> Node:
    x = as_tensor(x)
    if float_only and not dt.is_float(x.dtype):
        x = cast(x, dt.float_of(x.dtype))
    return make_node(op, (x,))


def negative(x): return _unary(Op.NEG, x)
def abs(x): return _unary(Op.ABS, x)  # noqa: A001 - NumPy's name
def sign(x): return _unary(Op.SIGN, x)
def exp(x): return _unary(Op.EXP, x, True)
def expm1(x): return _unary(Op.EXPM1, x, True)
def log(x): return _unary(Op.LOG, x, True)
def log1p(x): return _unary(Op.LOG1P, x, True)
def sqrt(x): return _unary(Op.SQRT, x, True)
def sin(x): return _unary(Op.SIN, x, True)
def cos(x): return _unary(Op.COS, x, True)
def tanh(x): return _unary(Op.TANH, x, True)
def sigmoid(x): return _unary(Op.SIGMOID, x, True)
def softplus(x): return _unary(Op.SOFTPLUS, x, True)
def erf(x): return _unary(Op.ERF, x, True)
def relu(x): return _unary(Op.RELU, x)
def floor(x): return _unary(Op.FLOOR, x)
def ceil(x): return _unary(Op.CEIL, x)
def round(x): return _unary(Op.ROUND, x)  # noqa: A001 - NumPy's name
def logical_not(x): return make_node(Op.NOT, (cast(as_tensor(x), "bool"),))
def square(x): return multiply(x, x)
def reciprocal(x): return divide(1.0, x)
def rsqrt(x): return reciprocal(sqrt(x))


def cast(x: TensorLike, dtype) -> Node:
    """``x`` converted to ``dtype`` (float to int truncates toward zero, as NumPy's astype)."""
    x = as_tensor(x)
    dtype = dt.as_dtype(dtype)
    return x if x.dtype == dtype else make_node(Op.CAST, (x,), {"dtype": dtype})


def _binary(op: Op, a: TensorLike, b: TensorLike) -> Node:
    a, b = _promote(a, b)
    return make_node(op, (a, b))


def add(a, b): return _binary(Op.ADD, a, b)
def subtract(a, b): return _binary(Op.SUB, a, b)
def multiply(a, b): return _binary(Op.MUL, a, b)
def maximum(a, b): return _binary(Op.MAXIMUM, a, b)
def minimum(a, b): return _binary(Op.MINIMUM, a, b)
def equal(a, b): return _binary(Op.EQ, a, b)
def not_equal(a, b): return _binary(Op.NE, a, b)
def less(a, b): return _binary(Op.LT, a, b)
def less_equal(a, b): return _binary(Op.LE, a, b)
def greater(a, b): return _binary(Op.GT, a, b)
def greater_equal(a, b): return _binary(Op.GE, a, b)
def logical_and(a, b): return make_node(Op.AND, (cast(a, "bool"), cast(b, "bool")))
def logical_or(a, b): return make_node(Op.OR, (cast(a, "bool"), cast(b, "bool")))
def logical_xor(a, b): return make_node(Op.XOR, (cast(a, "bool"), cast(b, "bool")))


def divide(a, b) -> Node:
    """True division; integer inputs give float64, as in NumPy."""
    a, b = _promote(a, b)
    if not dt.is_float(a.dtype):
        a, b = cast(a, "float64"), cast(b, "float64")
    return make_node(Op.DIV, (a, b))


true_divide = divide


def power(a, b) -> Node:
    """``a ** b``; a Python-number exponent of 2 or 0.5 becomes a multiply or a sqrt."""
    if isinstance(a, Node) and _is_scalar(b) and not isinstance(b, bool):
        if b == 1:
            return a
        if b == 2:
            return multiply(a, a)
        if b == 0.5 and dt.is_float(a.dtype):
            return sqrt(a)
    return _binary(Op.POW, a, b)


def where(cond, a, b) -> Node:
    """Elementwise ``a if cond else b`` with broadcasting."""
    a, b = _promote(a, b)
    return make_node(Op.WHERE, (cast(as_tensor(cond), "bool"), a, b))


def clip(x, lo, hi) -> Node:
    """``min(max(x, lo), hi)``; either bound may be None."""
    x = as_tensor(x)
    if lo is not None:
        x = maximum(x, lo)
    if hi is not None:
        x = minimum(x, hi)
    return x


def isclose_zero(x) -> Node:
    return equal(x, 0)


# ----------------------------------------------------------------------------- reductions
def _reduce(op: Op, x, axis: Axis, keepdims: bool) -> Node:
    x = as_tensor(x)
    axes = _axes(x, axis)
    if op in (Op.SUM, Op.PROD) and x.dtype == "bool":
        x = cast(x, "int64")
    if op in (Op.SUM, Op.PROD) and x.dtype == "int32":
        x = cast(x, "int64")  # NumPy sums int32 in int64 on 64-bit platforms
    out = make_node(op, (x,), {"axes": axes}) if axes else x
    if keepdims:
        out = reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def sum(x, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (all axes by default)."""
    return _reduce(Op.SUM, x, axis, keepdims)


def prod(x, axis: Axis = None, keepdims: bool = False) -> Node:
    """Product over ``axis``."""
    return _reduce(Op.PROD, x, axis, keepdims)


def max(x, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Maximum over ``axis``."""
    return _reduce(Op.MAX, x, axis, keepdims)


def min(x, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Minimum over ``axis``."""
    return _reduce(Op.MIN, x, axis, keepdims)


amax, amin = max, min


def count(x: Node, axis: Axis = None) -> Node:
    """The number of elements reduced over ``axis`` as an int64 scalar (symbolic if need be)."""
    x = as_tensor(x)
    n = size_of(x.shape[a] for a in _axes(x, axis))
    return constant(np.int64(n)) if isinstance(n, int) else make_node(Op.DIM, (), {"expr": n})


def mean(x, axis: Axis = None, keepdims: bool = False) -> Node:
    """Arithmetic mean over ``axis``; integer inputs give float64, as in NumPy."""
    x = as_tensor(x)
    if not dt.is_float(x.dtype):
        x = cast(x, "float64")
    total = sum(x, axis, keepdims)
    return divide(total, cast(count(x, axis), x.dtype))


def var(x, axis: Axis = None, keepdims: bool = False) -> Node:
    """Population variance over ``axis``."""
    m = mean(x, axis, keepdims=True)
    return mean(square(subtract(x, m)), axis, keepdims)


def std(x, axis: Axis = None, keepdims: bool = False) -> Node:
    """Population standard deviation over ``axis``."""
    return sqrt(var(x, axis, keepdims))


def _arg(op: Op, x, axis: int | None, keepdims: bool) -> Node:
    x = as_tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    (a,) = _axes(x, axis)
    out = make_node(op, (x,), {"axis": a})
    if keepdims:
        out = expand_dims(out, a)
    return out


def argmax(x, axis: int | None = None, keepdims: bool = False) -> Node:
    """Index of the maximum along ``axis`` (the first one on ties), int64."""
    return _arg(Op.ARGMAX, x, axis, keepdims)


def argmin(x, axis: int | None = None, keepdims: bool = False) -> Node:
    """Index of the minimum along ``axis`` (the first one on ties), int64."""
    return _arg(Op.ARGMIN, x, axis, keepdims)


def logsumexp(x, axis: Axis = None, keepdims: bool = False) -> Node:
    """``log(sum(exp(x)))`` computed stably."""
    x = as_tensor(x)
    m = max(x, axis, keepdims=True)
    m = where(equal(m, m), m, 0.0)  # NaN-safe shift
    out = add(log(sum(exp(subtract(x, m)), axis, keepdims=True)), m)
    return out if keepdims else squeeze(out, _axes(x, axis))


def softmax(x, axis: int = -1) -> Node:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed stably."""
    x = as_tensor(x)
    if not dt.is_float(x.dtype):
        x = cast(x, "float64")
    return make_node(Op.SOFTMAX, (x,), {"axis": _axes(x, axis)[0]})


def log_softmax(x, axis: int = -1) -> Node:
    """``log(softmax(x))`` computed stably."""
    x = as_tensor(x)
    if not dt.is_float(x.dtype):
        x = cast(x, "float64")
    return make_node(Op.LOG_SOFTMAX, (x,), {"axis": _axes(x, axis)[0]})


# ----------------------------------------------------------------------------- linear algebra
def matmul(a, b) -> Node:
    """NumPy's ``matmul``: vectors are promoted and their axis removed again."""
    a, b = _promote(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: scalars are not allowed (use multiply)" + _at())
    if a.dtype == "bool":
        a, b = cast(a, "int64"), cast(b, "int64")
    squeeze_axes = []
    if a.ndim == 1:
        a = reshape(a, (1,) + a.shape)
        squeeze_axes.append(-2)
    if b.ndim == 1:
        b = reshape(b, b.shape + (1,))
        squeeze_axes.append(-1)
    if isinstance(a.shape[-1], int) and isinstance(b.shape[-2], int) and a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: shapes {format_shape(a.shape)} and {format_shape(b.shape)} do not fit:"
                         f" {a.shape[-1]} (last axis of the left) != {b.shape[-2]} (second-to-last of the right)"
                         + _at())
    out = make_node(Op.MATMUL, (a, b))
    if squeeze_axes:
        out = squeeze(out, tuple(a_ % out.ndim for a_ in squeeze_axes))
    return out


def dot(a, b) -> Node:
    """NumPy's ``dot`` for vectors and matrices, and ``(..., k) . (k, n)``."""
    a, b = as_tensor(a), as_tensor(b)
    if b.ndim > 2:
        raise ShapeError("dot with a right operand of rank > 2 is not supported; use matmul or tensordot" + _at())
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return matmul(a, b)


def tensordot(a, b, axes=2) -> Node:
    """NumPy's ``tensordot``: contract ``axes`` of ``a`` with those of ``b``."""
    a, b = as_tensor(a), as_tensor(b)
    if isinstance(axes, int):
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ax_a, ax_b = [list(_axes(a, x)) if not isinstance(x, int) else [x % a.ndim] for x in axes[:1]][0], \
            [list(_axes(b, x)) if not isinstance(x, int) else [x % b.ndim] for x in axes[1:]][0]
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    at = reshape(transpose(a, free_a + ax_a), (size_of(a.shape[i] for i in free_a), size_of(a.shape[i] for i in ax_a)))
    bt = reshape(transpose(b, ax_b + free_b), (size_of(b.shape[i] for i in ax_b), size_of(b.shape[i] for i in free_b)))
    return reshape(matmul(at, bt), tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


# ----------------------------------------------------------------------------- shapes
def reshape(x, shape: Sequence[Dim]) -> Node:
    """``x`` with a new shape; one entry may be -1 (inferred, symbolically if need be)."""
    x = as_tensor(x)
    if isinstance(shape, (int, sympy.Expr)):
        shape = (shape,)
    dims = [as_dim(d) for d in shape]
    if builtins.sum(1 for d in dims if isinstance(d, int) and d == -1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {tuple(shape)}" + _at())
    if -1 in [d for d in dims if isinstance(d, int)]:
        known = size_of(d for d in dims if not (isinstance(d, int) and d == -1))
        total = size_of(x.shape)
        if isinstance(known, int) and known == 0:
            raise ShapeError(f"reshape: cannot infer -1 with a zero-size shape {tuple(shape)}" + _at())
        inferred = as_dim(sympy.sympify(total) / known) if not (isinstance(total, int) and isinstance(known, int)) else None
        if inferred is None:
            if total % known:
                raise ShapeError(f"reshape: cannot reshape {format_shape(x.shape)} ({total} elements) into "
                                 f"{tuple(shape)}" + _at())
            inferred = total // known
        dims = [inferred if (isinstance(d, int) and d == -1) else d for d in dims]
    new_shape = tuple(dims)
    if new_shape == x.shape:
        return x
    return make_node(Op.RESHAPE, (x,), {"shape": new_shape})


def flatten(x) -> Node:
    """``x`` as a vector."""
    return reshape(x, (-1,))


def transpose(x, axes: Sequence[int] | None = None) -> Node:
    """Permute the axes (reverse them by default)."""
    x = as_tensor(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(operator.index(a) % x.ndim for a in axes)
    if perm == tuple(range(x.ndim)):
        return x
    return make_node(Op.TRANSPOSE, (x,), {"perm": perm})


def swapaxes(x, a: int, b: int) -> Node:
    x = as_tensor(x)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def expand_dims(x, axis: int | Sequence[int]) -> Node:
    """Insert axes of size 1."""
    x = as_tensor(x)
    axes = [axis] if isinstance(axis, int) else list(axis)
    ndim = x.ndim + len(axes)
    axes = sorted(a % ndim for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


def squeeze(x, axis: Axis = None) -> Node:
    """Remove axes of size 1 (all of them by default)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if isinstance(d, int) and d == 1)
    else:
        axes = _axes(x, axis)
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"squeeze: axis {a} of shape {format_shape(x.shape)} is not 1" + _at())
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def broadcast_to(x, shape: Sequence[Dim]) -> Node:
    """``x`` repeated along broadcast axes to ``shape``."""
    x = as_tensor(x)
    shape = tuple(as_dim(d) for d in shape)
    if shape == x.shape:
        return x
    return make_node(Op.BROADCAST, (x,), {"shape": shape})


def concatenate(xs: Sequence[TensorLike], axis: int = 0) -> Node:
    """Join tensors along an existing axis."""
    nodes = _promote(*xs)
    if len(nodes) == 1:
        return nodes[0]
    (a,) = _axes(nodes[0], axis)
    return make_node(Op.CONCAT, tuple(nodes), {"axis": a})


def stack(xs: Sequence[TensorLike], axis: int = 0) -> Node:
    """Join tensors along a new axis."""
    nodes = _promote(*xs)
    return concatenate([expand_dims(n, axis) for n in nodes], axis)


def unstack(x, axis: int = 0) -> list[Node]:
    """The slices of ``x`` along a static axis."""
    x = as_tensor(x)
    (a,) = _axes(x, axis)
    if not isinstance(x.shape[a], int):
        raise ShapeError("unstack needs a static size along the axis" + _at())
    return [take(x, i, axis=a) for i in range(x.shape[a])]


def shape(x) -> Node:
    """The runtime shape of ``x`` as an int64 vector."""
    x = as_tensor(x)
    if not x.shape:
        return constant(np.zeros((0,), np.int64))
    return stack([count(x, i) for i in range(x.ndim)])


def size(x) -> Node:
    """The runtime number of elements as an int64 scalar."""
    return count(as_tensor(x))


def slice_axis(x: Node, axis: int, begin: Dim, end: Dim, step: int = 1) -> Node:
    """``x[..., begin:end:step, ...]`` on one axis with already-normalised positive bounds."""
    b = [0] * x.ndim
    e = list(x.shape)
    s = [1] * x.ndim
    b[axis], e[axis], s[axis] = begin, end, step
    if tuple(b) == (0,) * x.ndim and tuple(e) == x.shape and tuple(s) == (1,) * x.ndim:
        return x
    return make_node(Op.SLICE, (x,), {"begin": tuple(b), "end": tuple(e), "step": tuple(s)})


def _normalise_slice(sl: slice, d: Dim) -> tuple[Dim, Dim, int]:
    step = 1 if sl.step is None else operator.index(sl.step)
    if step == 0:
        raise ShapeError("slice step cannot be zero" + _at())
    if isinstance(d, int):
        b, e, s = sl.indices(d)
        if s < 0:
            return b, e, s
        return b, builtins.max(b, e), s
    # symbolic size: plain Python semantics for non-negative bounds, -k means d - k
    def norm(v, default):
        if v is None:
            return default
        v = operator.index(v)
        return v if v >= 0 else d + v
    if step < 0:
        raise ShapeError("negative slice steps need a static size" + _at())
    return norm(sl.start, 0), norm(sl.stop, d), step


def patches(x, ksize: Sequence[int], strides: Sequence[int] | None = None,
            dilation: Sequence[int] | None = None) -> Node:
    """The windows of a channels-last ``x`` (batch, *spatial, channels), im2col style:
    ``(batch, *outs, prod(ksize) * channels)``, kernel offsets row-major then channels ("valid"
    windows; pad first for "same"). A convolution is this, reshaped, times the kernel."""
    x = as_tensor(x)
    n = len(ksize)
    strides = tuple(strides) if strides is not None else (1,) * n
    dilation = tuple(dilation) if dilation is not None else (1,) * n
    if len(strides) != n or len(dilation) != n or x.ndim != n + 2:
        raise ShapeError(f"patches: {n} window sizes need an input of rank {n + 2} and {n} strides and dilations, "
                         f"got shape {format_shape(x.shape)}, strides {strides}, dilation {dilation}{_at()}")
    return make_node(Op.PATCHES, (x,), {"ksize": tuple(int(k) for k in ksize),
                                        "strides": tuple(int(s) for s in strides),
                                        "dilation": tuple(int(d) for d in dilation)})


def getitem(x: Node, index) -> Node:
    """NumPy basic indexing (ints, slices, None, Ellipsis) and one integer-array index."""
    x = as_tensor(x)
    if not isinstance(index, tuple):
        index = (index,)
    n_real = len([i for i in index if i is not None and i is not Ellipsis])
    if n_real > x.ndim:
        raise ShapeError(f"too many indices ({n_real}) for a tensor of shape {format_shape(x.shape)}" + _at())
    ellipses = [k for k, i in enumerate(index) if i is Ellipsis]  # `in` would compare arrays
    if len(ellipses) > 1:
        raise InputError("an index can only have a single ellipsis ('...')" + _at())
    if ellipses:
        k = ellipses[0]
        index = index[:k] + (slice(None),) * (x.ndim - n_real) + index[k + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - n_real)
    out = x
    axis = 0  # the axis of ``out`` the next item applies to
    out_pos = 0  # the axis of the final result the next item produces
    new_axes = []
    drop_axes = []
    for item in index:
        if item is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        d = out.shape[axis]
        if isinstance(item, slice):
            b, e, s = _normalise_slice(item, d)
            if s < 0:
                idx = np.arange(b, e, s, dtype=np.int64)
                out = take(out, constant(idx), axis=axis)
            else:
                out = slice_axis(out, axis, b, e, s)
            axis += 1
            out_pos += 1
        elif isinstance(item, (int, np.integer)):
            i = int(item)
            if isinstance(d, int) and not -d <= i < d:
                raise ShapeError(f"index {i} is out of bounds for axis {axis} with size {d}" + _at())
            begin = i if i >= 0 else d + i
            out = slice_axis(out, axis, begin, begin + 1, 1)
            drop_axes.append(axis)
            axis += 1
        else:
            idx = as_tensor(item)
            if idx.dtype == "bool":
                raise InputError("boolean mask indexing has a data-dependent shape; use graphc.ops.where" + _at())
            out = take(out, idx, axis=axis)
            axis += idx.ndim
            out_pos += idx.ndim
    if drop_axes:
        out = reshape(out, tuple(d for i, d in enumerate(out.shape) if i not in drop_axes))
    if new_axes:
        shape = list(out.shape)
        for pos in new_axes:
            shape.insert(pos, 1)
        out = reshape(out, tuple(shape))
    return out


def take(x, indices, axis: int = 0) -> Node:
    """Gather along ``axis`` (negative indices count from the end, as in NumPy)."""
    x = as_tensor(x)
    idx = as_tensor(indices)
    if idx.dtype not in dt.INTS:
        raise DTypeError(f"take: indices must be integers, got {idx.dtype}" + _at())
    (a,) = _axes(x, axis)
    return make_node(Op.TAKE, (x, idx), {"axis": a})


gather = take


def one_hot(indices, depth: int, dtype: str = "float32") -> Node:
    """``(..., depth)`` with a 1 at each index and 0 elsewhere (out-of-range gives all zeros)."""
    idx = cast(as_tensor(indices), "int64")
    return cast(equal(expand_dims(idx, -1), constant(np.arange(depth, dtype=np.int64))), dtype)


def pad(x, pad_width, constant_values: float = 0) -> Node:
    """Constant padding, ``pad_width`` as NumPy's (per axis ``(before, after)`` or one int)."""
    x = as_tensor(x)
    if isinstance(pad_width, int):
        pad_width = [(pad_width, pad_width)] * x.ndim
    widths = [(int(p), int(p)) if isinstance(p, (int, np.integer)) else (int(p[0]), int(p[1])) for p in pad_width]
    if len(widths) != x.ndim:
        raise ShapeError(f"pad: {len(widths)} pad widths for a rank-{x.ndim} tensor" + _at())
    if all(w == (0, 0) for w in widths):
        return x
    return make_node(Op.PAD, (x,), {"lo": tuple(w[0] for w in widths), "hi": tuple(w[1] for w in widths),
                                     "interior": (0,) * x.ndim, "value": float(constant_values)})


def zeros_like(x) -> Node:
    x = as_tensor(x)
    return broadcast_to(constant(np.zeros((), x.dtype)), x.shape)


def ones_like(x) -> Node:
    x = as_tensor(x)
    return broadcast_to(constant(np.ones((), x.dtype)), x.shape)


def zeros(shape, dtype="float32") -> Node:
    return broadcast_to(constant(np.zeros((), dt.as_dtype(dtype))), tuple(shape))


def ones(shape, dtype="float32") -> Node:
    return broadcast_to(constant(np.ones((), dt.as_dtype(dtype))), tuple(shape))


# ----------------------------------------------------------------------------- random
def _random(dist: str, shape, dtype, seed, a: float, b: float) -> Node:
    dims = tuple(as_dim(d) for d in shape)
    if seed is None:
        seed = int(_default_seeds.integers(0, 2**31 - 1))
    return make_node(Op.RANDOM, (), {"dist": dist, "seed": int(seed), "uid": next(_random_uids),
                                     "shape": dims, "dtype": dt.as_dtype(dtype), "a": float(a), "b": float(b)})


def random_uniform(shape, low: float = 0.0, high: float = 1.0, dtype: str = "float32", seed: int | None = None) -> Node:
    """Uniform samples in ``[low, high)``, new ones at every call of the compiled function;
    the same seed gives the same stream."""
    return _random("uniform", shape, dtype, seed, low, high)


def random_normal(shape, mean: float = 0.0, stddev: float = 1.0, dtype: str = "float32", seed: int | None = None) -> Node:
    """Normal samples, new ones at every call of the compiled function."""
    return _random("normal", shape, dtype, seed, mean, stddev)


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "itertools", "operator", "np", "sympy", "Sequence", "Union", "Node", "Op",
    "make_node", "user_location", "dt", "DTypeError", "InputError", "ShapeError",
    "Dim", "as_dim", "format_shape", "size_of", "TensorLike", "Axis", "builtins", "constant")]
