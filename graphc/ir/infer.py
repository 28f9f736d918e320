"""Shape and dtype inference, one entry per op.

Each entry takes the input nodes and the attributes and returns ``(shape, dtype)``; it raises
a :class:`ShapeError` or :class:`DTypeError` naming the op, the shapes and the user's line.
"""
from __future__ import annotations

from typing import Callable

import sympy

from graphc.errors import DTypeError, ShapeError
from graphc.ir import dtypes as dt
from graphc.ir.node import Attrs, Node, user_location
from graphc.ir.ops import ARITHMETIC, COMPARISON, FLOAT_UNARY, LOGICAL, UNARY, Op
from graphc.ir.shapes import Dim, as_dim, dims_equal, format_shape, size_of

Result = tuple[tuple[Dim, ...], str]


def _fail(op: Op, message: str, inputs: tuple[Node, ...] = (), kind: type = ShapeError):
    shapes = ", ".join(f"{format_shape(i.shape)} {i.dtype}" for i in inputs)
    where = user_location()
    text = f"{op.value}: {message}"
    if shapes:
        text += f" (inputs: {shapes})"
    if where:
        text += f"\n  at {where}"
    raise kind(text)


def broadcast_shapes(op: Op, inputs: tuple[Node, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting of the inputs' shapes. Two different symbolic sizes are taken to be
    equal (checked when the compiled function runs); a symbolic size never broadcasts."""
    ndim = max(len(i.shape) for i in inputs)
    out: list[Dim] = []
    for axis in range(-ndim, 0):
        dims = [i.shape[axis] for i in inputs if len(i.shape) >= -axis]
        chosen: Dim = 1
        for d in dims:
            if isinstance(d, int) and d == 1:
                continue
            if isinstance(chosen, int) and chosen == 1:
                chosen = d
            elif isinstance(d, int) and isinstance(chosen, int) and d != chosen:
                _fail(op, f"shapes do not broadcast at axis {axis}", inputs)
        out.append(chosen)
    return tuple(out)


def sizes_may_match(a: Dim, b: Dim) -> bool:
    """False only when two sizes certainly differ; sizes in different symbols may match
    (graphc checks them when the function runs)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if dims_equal(a, b):
        return True
    if isinstance(a, int) and a == 0 or isinstance(b, int) and b == 0:
        return False
    # Sizes in different symbols (a number and a symbolic size included) may match; only
    # sizes in the same symbols need their ratio (sympy.cancel costs milliseconds).
    free_a = a.free_symbols if not isinstance(a, int) else set()
    free_b = b.free_symbols if not isinstance(b, int) else set()
    if free_a != free_b:
        return True
    ratio = sympy.cancel(sympy.sympify(a) / b)
    return not ratio.is_number


def _unary(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    if op is Op.CAST:
        return x.shape, dt.as_dtype(attrs["dtype"])
    if op is Op.NOT:
        return x.shape, "bool"
    if op in FLOAT_UNARY:
        if not dt.is_float(x.dtype):
            _fail(op, f"needs a float input, got {x.dtype} (cast it first)", inputs, DTypeError)
        return x.shape, x.dtype
    if x.dtype == "bool" and op not in (Op.ABS,):
        _fail(op, "does not take bool input", inputs, DTypeError)
    return x.shape, x.dtype


def _binary(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    shape = broadcast_shapes(op, inputs)
    a, b = inputs
    if op in COMPARISON:
        return shape, "bool"
    if op in LOGICAL:
        if a.dtype != "bool" or b.dtype != "bool":
            _fail(op, "takes bool inputs", inputs, DTypeError)
        return shape, "bool"
    if a.dtype != b.dtype:
        _fail(op, "inputs must have one dtype (the frontend casts them)", inputs, DTypeError)
    if op is Op.DIV and not dt.is_float(a.dtype):
        _fail(op, "true division needs float inputs", inputs, DTypeError)
    if a.dtype == "bool" and op not in (Op.MAXIMUM, Op.MINIMUM):
        _fail(op, "arithmetic on bool tensors (cast them first)", inputs, DTypeError)
    return shape, a.dtype


def _where(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    cond, a, b = inputs
    if cond.dtype != "bool":
        _fail(op, "the condition must be bool", inputs, DTypeError)
    if a.dtype != b.dtype:
        _fail(op, "both branches must have one dtype", inputs, DTypeError)
    return broadcast_shapes(op, inputs), a.dtype


def _check_axes(op: Op, x: Node, axes: tuple[int, ...]) -> None:
    if any(not (0 <= a < x.ndim) for a in axes) or len(set(axes)) != len(axes):
        _fail(op, f"bad axes {axes} for a rank-{x.ndim} tensor", (x,))


def _reduce(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    axes = attrs["axes"]
    _check_axes(op, x, axes)
    if x.dtype == "bool" and op in (Op.SUM, Op.PROD):
        _fail(op, "sum of bool (cast first)", inputs, DTypeError)
    for a in axes:
        if op in (Op.MAX, Op.MIN) and isinstance(x.shape[a], int) and x.shape[a] == 0:
            _fail(op, f"zero-size axis {a} has no maximum or minimum", inputs)
    return tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype


def _arg_reduce(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    axis = attrs["axis"]
    _check_axes(op, x, (axis,))
    return tuple(d for i, d in enumerate(x.shape) if i != axis), "int64"


def _matmul(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    a, b = inputs
    if a.ndim < 2 or b.ndim < 2:
        _fail(op, "takes tensors of rank 2 or more (graphc.ops.matmul handles vectors)", inputs)
    if not dims_equal(a.shape[-1], b.shape[-2]) and not (
        isinstance(a.shape[-1], sympy.Expr) or isinstance(b.shape[-2], sympy.Expr)
    ):
        _fail(op, f"inner dimensions differ: {a.shape[-1]} vs {b.shape[-2]}", inputs)
    if a.dtype != b.dtype or a.dtype == "bool":
        _fail(op, "inputs must share a numeric dtype", inputs, DTypeError)
    class _Batch:  # a stand-in with .shape for broadcasting the batch dims
        def __init__(self, shape): self.shape, self.dtype = shape, ""
    batch = broadcast_shapes(op, (_Batch(a.shape[:-2]), _Batch(b.shape[:-2])))  # type: ignore[arg-type]
    return batch + (a.shape[-2], b.shape[-1]), a.dtype


def _reshape(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    shape = attrs["shape"]
    if not sizes_may_match(size_of(shape), size_of(x.shape)):
        _fail(op, f"cannot reshape {size_of(x.shape)} elements into {format_shape(shape)}", inputs)
    return shape, x.dtype


def _transpose(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        _fail(op, f"perm {perm} is not a permutation of a rank-{x.ndim} tensor's axes", inputs)
    return tuple(x.shape[p] for p in perm), x.dtype


def _broadcast(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    shape = attrs["shape"]
    if len(shape) < x.ndim:
        _fail(op, f"cannot broadcast to fewer dimensions {format_shape(shape)}", inputs)
    for d, t in zip(x.shape[::-1], shape[::-1]):
        if not (isinstance(d, int) and d == 1) and not dims_equal(d, t):
            _fail(op, f"cannot broadcast to {format_shape(shape)}", inputs)
    return shape, x.dtype


def _concat(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    axis = attrs["axis"]
    first = inputs[0]
    for x in inputs:
        if x.ndim != first.ndim or x.dtype != first.dtype:
            _fail(op, "inputs must share rank and dtype", inputs)
        for i, (d, e) in enumerate(zip(x.shape, first.shape)):
            if i != axis and isinstance(d, int) and isinstance(e, int) and d != e:
                _fail(op, f"sizes differ on axis {i}", inputs)
    total = sum((x.shape[axis] for x in inputs), start=0)
    shape = list(first.shape)
    shape[axis] = as_dim(total)
    return tuple(shape), first.dtype


def _slice(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    begin, end, step = attrs["begin"], attrs["end"], attrs["step"]
    shape = []
    for b, e, s, d in zip(begin, end, step, x.shape):
        if s <= 0:
            _fail(op, "slice steps must be positive here (the frontend handles negative ones)", inputs)
        n = (e - b + s - 1) // s if isinstance(e - b, int) else sympy.floor((e - b + s - 1) / s)
        shape.append(as_dim(n))
    return tuple(shape), x.dtype


def _pad(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    shape = []
    for d, lo, hi, mid in zip(x.shape, attrs["lo"], attrs["hi"], attrs["interior"]):
        if any(isinstance(v, int) and v < 0 for v in (lo, hi, mid)):
            _fail(op, "negative padding", inputs)
        shape.append(as_dim(lo + hi + d + (d - 1) * mid if mid else lo + hi + d))
    return tuple(shape), x.dtype


def _take(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    x, idx = inputs
    axis = attrs["axis"]
    if idx.dtype not in dt.INTS:
        _fail(op, "indices must be int32 or int64", inputs, DTypeError)
    return x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype


def _scatter_add(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    upd, idx = inputs
    axis, size = attrs["axis"], attrs["size"]
    if idx.dtype not in dt.INTS:
        _fail(op, "indices must be int32 or int64", inputs, DTypeError)
    lead = upd.shape[:axis]
    tail = upd.shape[axis + idx.ndim:]
    return lead + (size,) + tail, upd.dtype


def _softmax(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    _check_axes(op, x, (attrs["axis"],))
    if not dt.is_float(x.dtype):
        _fail(op, "needs a float input", inputs, DTypeError)
    return x.shape, x.dtype


def _fused(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    shape = broadcast_shapes(op, inputs) if inputs else ()
    axes = attrs["reduce_axes"]
    if axes is not None:
        shape = tuple(d for i, d in enumerate(shape) if i not in axes)
    return shape, attrs["dtype"]


def _window_outs(op: Op, x: Node, spatial, attrs: Attrs) -> list[int]:
    ks, st, dil = attrs["ksize"], attrs["strides"], attrs["dilation"]
    if not all(isinstance(d, int) for d in spatial) or len(spatial) != len(ks):
        _fail(op, f"needs {len(ks)} static spatial axes between batch and channels", (x,))
    outs = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(spatial, ks, st, dil)]
    if any(o < 1 for o in outs):
        _fail(op, f"window {tuple(ks)} (dilation {tuple(dil)}) larger than the input's spatial size "
                  f"{tuple(spatial)}", (x,))
    return outs


def _patches(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (x,) = inputs
    outs = _window_outs(op, x, x.shape[1:-1], attrs)
    k = 1
    for v in attrs["ksize"]:
        k *= v
    return (x.shape[0], *outs, as_dim(k * x.shape[-1])), x.dtype


def _patches_adjoint(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    (g,) = inputs
    size = tuple(attrs["size"])
    outs = _window_outs(op, g, size, attrs)
    k = 1
    for v in attrs["ksize"]:
        k *= v
    if tuple(g.shape[1:-1]) != tuple(outs) or not isinstance(g.shape[-1], int) or g.shape[-1] % k:
        _fail(op, f"expects windows of shape (batch, {', '.join(map(str, outs))}, {k} * channels)", (g,))
    return (g.shape[0], *size, g.shape[-1] // k), g.dtype


def _scan(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    from graphc.ir.scan import TUPLE, check_scan
    problem = check_scan(inputs, attrs)
    if problem:
        _fail(op, problem, inputs)
    return (), TUPLE


def _scan_output(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    from graphc.ir.scan import output_type
    (scan,) = inputs
    if scan.op is not Op.SCAN:
        _fail(op, "reads the outputs of a scan node only", inputs)
    n = len(scan.attrs["body"].outputs)
    if not 0 <= attrs["index"] < n:
        _fail(op, f"index {attrs['index']} out of range for a scan with {n} outputs", inputs)
    return output_type(scan.attrs, attrs["index"])


def _leaf(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    if op is Op.CONSTANT:
        arr = attrs["value"].array
        return tuple(arr.shape), dt.as_dtype(arr.dtype)
    if op is Op.DIM:
        return (), "int64"
    return tuple(attrs["shape"]), dt.as_dtype(attrs["dtype"])


INFER: dict[Op, Callable[[Op, tuple[Node, ...], Attrs], Result]] = {
    **{op: _unary for op in UNARY},
    **{op: _binary for op in ARITHMETIC | COMPARISON | LOGICAL},
    Op.WHERE: _where,
    **{op: _reduce for op in (Op.SUM, Op.PROD, Op.MAX, Op.MIN)},
    Op.ARGMAX: _arg_reduce,
    Op.ARGMIN: _arg_reduce,
    Op.MATMUL: _matmul,
    Op.RESHAPE: _reshape,
    Op.TRANSPOSE: _transpose,
    Op.BROADCAST: _broadcast,
    Op.CONCAT: _concat,
    Op.SLICE: _slice,
    Op.PAD: _pad,
    Op.TAKE: _take,
    Op.SCATTER_ADD: _scatter_add,
    Op.SOFTMAX: _softmax,
    Op.LOG_SOFTMAX: _softmax,
    Op.FUSED: _fused,
    Op.PATCHES: _patches,
    Op.PATCHES_ADJOINT: _patches_adjoint,
    Op.SCAN: _scan,
    Op.SCAN_OUTPUT: _scan_output,
    **{op: _leaf for op in (Op.PLACEHOLDER, Op.SHARED, Op.CONSTANT, Op.DIM, Op.RANDOM)},
}


def infer(op: Op, inputs: tuple[Node, ...], attrs: Attrs) -> Result:
    """The shape and dtype of ``op(inputs, attrs)``."""
    return INFER[op](op, inputs, attrs)
