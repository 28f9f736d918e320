"""The NumPy reference interpreter: the oracle every other stage is tested against.

``REFERENCE[op](node, *input_values, ctx)`` computes one node with NumPy. It favours clarity
over speed; ``graphc.function(..., mode="reference")`` runs whole graphs through it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import sympy

from graphc.errors import InputError
from graphc.ir.graph import toposort
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import RNG_STEP, evaluate, window_slices


@dataclass
class Context:
    """What a node may need besides its inputs: the bound symbols (sizes, the rng step)."""

    env: Mapping[sympy.Symbol, int] = field(default_factory=dict)

    def dims(self, shape) -> tuple[int, ...]:
        return tuple(evaluate(d, self.env) for d in shape)


# ----------------------------------------------------------------------------- random numbers
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def random_bits(seed: int, step: int, n: int) -> np.ndarray:
    """``n`` 64-bit random words for ``(seed, step)``: a counter-based stream, so the native
    code produces the very same words."""
    key = splitmix64(np.array([seed], np.uint64) ^ splitmix64(np.array([step], np.uint64)))
    with np.errstate(over="ignore"):
        return splitmix64(key + np.arange(n, dtype=np.uint64))


def random_values(dist: str, seed: int, step: int, shape: tuple[int, ...], dtype: str, a: float, b: float) -> np.ndarray:
    """Uniform ``[a, b)`` or normal ``(mean a, stddev b)`` samples; see docs/architecture.md."""
    n = int(np.prod(shape, dtype=np.int64))
    if dist == "uniform":
        bits = random_bits(seed, step, n)
        if dtype == "float32":
            u = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
            return (np.float32(a) + np.float32(b - a) * u).reshape(shape)
        u = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return (a + (b - a) * u).astype(dtype).reshape(shape)
    bits = random_bits(seed, step, 2 * n)
    u1 = ((bits[0::2] >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    u2 = (bits[1::2] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return (a + b * z).astype(dtype).reshape(shape)


# ----------------------------------------------------------------------------- elementwise
def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return (np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)).astype(x.dtype)


_erf = np.frompyfunc(math.erf, 1, 1)

UNARY_FN: dict[Op, Callable[[np.ndarray], np.ndarray]] = {
    Op.NEG: np.negative, Op.ABS: np.abs, Op.SIGN: np.sign, Op.EXP: np.exp, Op.EXPM1: np.expm1,
    Op.LOG: np.log, Op.LOG1P: np.log1p, Op.SQRT: np.sqrt, Op.SIN: np.sin, Op.COS: np.cos,
    Op.TANH: np.tanh, Op.SIGMOID: _sigmoid, Op.SOFTPLUS: _softplus,
    Op.ERF: lambda x: _erf(x).astype(x.dtype), Op.RELU: lambda x: np.maximum(x, 0).astype(x.dtype),
    Op.FLOOR: np.floor, Op.CEIL: np.ceil, Op.ROUND: np.round, Op.NOT: np.logical_not,
}
BINARY_FN: dict[Op, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide,
    Op.POW: np.power, Op.MAXIMUM: np.maximum, Op.MINIMUM: np.minimum, Op.EQ: np.equal,
    Op.NE: np.not_equal, Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater,
    Op.GE: np.greater_equal, Op.AND: np.logical_and, Op.OR: np.logical_or, Op.XOR: np.logical_xor,
}
REDUCE_FN = {Op.SUM: np.sum, Op.PROD: np.prod, Op.MAX: np.max, Op.MIN: np.min}


def _eval_expr(expr: tuple, args: tuple[np.ndarray, ...]) -> np.ndarray:
    """Evaluate a fused kernel's expression tree on NumPy arrays."""
    kind = expr[0]
    if kind == "in":
        return args[expr[1]]
    if kind == "const":
        return np.asarray(expr[1], dtype=expr[2])
    _, op, sub, dtype = expr
    vals = [_eval_expr(e, args) for e in sub]
    if op is Op.CAST:
        return vals[0].astype(dtype)
    if op is Op.WHERE:
        return np.where(*vals).astype(dtype)
    fn = UNARY_FN.get(op) or BINARY_FN[op]
    return np.asarray(fn(*vals)).astype(dtype)


# ----------------------------------------------------------------------------- per-op table
def _pad(node: Node, x: np.ndarray, ctx: Context) -> np.ndarray:
    a = node.attrs
    out = np.full(ctx.dims(node.shape), a["value"], dtype=x.dtype)
    index = tuple(slice(lo, lo + (d - 1) * (mid + 1) + 1 if d else lo, mid + 1)
                  for lo, mid, d in zip(a["lo"], a["interior"], x.shape))
    out[index] = x
    return out


def _take(node: Node, x: np.ndarray, idx: np.ndarray, ctx: Context) -> np.ndarray:
    axis = node.attrs["axis"]
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise InputError(f"take: index out of range for axis {axis} of size {n}")
    return np.take(x, idx, axis=axis)


def _scatter_add(node: Node, upd: np.ndarray, idx: np.ndarray, ctx: Context) -> np.ndarray:
    axis = node.attrs["axis"]
    out = np.zeros(ctx.dims(node.shape), dtype=upd.dtype)
    idx = np.where(idx < 0, idx + out.shape[axis], idx)
    np.add.at(out, (slice(None),) * axis + (idx,), upd)
    return out


def _softmax(node: Node, x: np.ndarray, ctx: Context) -> np.ndarray:
    axis = node.attrs["axis"]
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(node: Node, x: np.ndarray, ctx: Context) -> np.ndarray:
    axis = node.attrs["axis"]
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _slice(node: Node, x: np.ndarray, ctx: Context) -> np.ndarray:
    a = node.attrs
    return x[tuple(slice(evaluate(b, ctx.env), evaluate(e, ctx.env), s)
                   for b, e, s in zip(a["begin"], a["end"], a["step"]))]


def _fused(node: Node, *args) -> np.ndarray:
    ctx: Context = args[-1]
    with np.errstate(all="ignore"):
        out = np.broadcast_to(_eval_expr(node.attrs["expr"], args[:-1]), ctx.dims(_full_shape(node)))
    axes = node.attrs["reduce_axes"]
    if axes is not None:
        out = np.sum(out, axis=axes)
    return out


def _full_shape(node: Node):
    from graphc.ir.infer import broadcast_shapes
    return broadcast_shapes(node.op, node.inputs) if node.inputs else ()


def _patches(node: Node, x: np.ndarray, ctx: Context) -> np.ndarray:
    return np.concatenate([x[idx] for idx in window_slices(node)], axis=-1)


def _patches_adjoint(node: Node, g: np.ndarray, ctx: Context) -> np.ndarray:
    out = np.zeros(ctx.dims(node.shape), g.dtype)
    c = out.shape[-1]
    for i, idx in enumerate(window_slices(node)):
        out[idx] += g[..., i * c:(i + 1) * c]
    return out


def _scan(node: Node, *args) -> tuple:
    """Run the body once per step; the values of all the node's outputs, as a tuple."""
    from graphc.ir.scan import output_type
    ctx: Context = args[-1]
    a = node.attrs
    body = a["body"]
    nc, ns = len(body.carries), len(body.seqs)
    init, xs, inv = args[:nc], args[nc:nc + ns], args[nc + ns:-1]
    steps = evaluate(a["length"], ctx.env)
    outs = [np.empty(ctx.dims(output_type(a, i)[0]), output_type(a, i)[1]) for i in range(len(body.outputs))]
    carry = list(init)
    for t in (range(steps - 1, -1, -1) if a["reverse"] else range(steps)):
        feeds = dict(zip(body.params, carry + [x[t] for x in xs] + list(inv)))
        values = evaluate_nodes(body.outputs, feeds, ctx.env)
        carry = values[:nc]
        for i, v in enumerate(values):
            if i >= nc or a["keep"][i]:
                outs[i][t] = v
    for k in range(nc):
        if not a["keep"][k]:
            outs[k] = np.array(carry[k])
    return tuple(outs)


def _no_leaf(node: Node, ctx: Context):
    raise InputError(f"no value fed for {node!r}")


REFERENCE: dict[Op, Callable[..., np.ndarray]] = {
    **{op: (lambda fn: lambda node, x, ctx: fn(x))(fn) for op, fn in UNARY_FN.items()},
    Op.CAST: lambda node, x, ctx: x.astype(node.dtype),
    **{op: (lambda fn: lambda node, a, b, ctx: fn(a, b))(fn) for op, fn in BINARY_FN.items()},
    Op.WHERE: lambda node, c, a, b, ctx: np.where(c, a, b),
    **{op: (lambda fn: lambda node, x, ctx: fn(x, axis=node.attrs["axes"]))(fn) for op, fn in REDUCE_FN.items()},
    Op.ARGMAX: lambda node, x, ctx: np.argmax(x, axis=node.attrs["axis"]),
    Op.ARGMIN: lambda node, x, ctx: np.argmin(x, axis=node.attrs["axis"]),
    Op.MATMUL: lambda node, a, b, ctx: np.matmul(a, b),
    Op.RESHAPE: lambda node, x, ctx: x.reshape(ctx.dims(node.shape)),
    Op.TRANSPOSE: lambda node, x, ctx: np.transpose(x, node.attrs["perm"]),
    Op.BROADCAST: lambda node, x, ctx: np.broadcast_to(x, ctx.dims(node.shape)),
    Op.CONCAT: lambda node, *a: np.concatenate(a[:-1], axis=node.attrs["axis"]),
    Op.SLICE: _slice,
    Op.PAD: _pad,
    Op.TAKE: _take,
    Op.SCATTER_ADD: _scatter_add,
    Op.SOFTMAX: _softmax,
    Op.LOG_SOFTMAX: _log_softmax,
    Op.FUSED: _fused,
    Op.PATCHES: _patches,
    Op.PATCHES_ADJOINT: _patches_adjoint,
    Op.SCAN: _scan,
    Op.SCAN_OUTPUT: lambda node, values, ctx: values[node.attrs["index"]],
    Op.CONSTANT: lambda node, ctx: node.attrs["value"].array,
    Op.DIM: lambda node, ctx: np.int64(evaluate(node.attrs["expr"], ctx.env)),
    Op.RANDOM: lambda node, ctx: random_values(
        node.attrs["dist"], node.attrs["seed"], ctx.env.get(RNG_STEP, 0), ctx.dims(node.shape),
        node.dtype, node.attrs["a"], node.attrs["b"]),
    Op.PLACEHOLDER: _no_leaf,
    Op.SHARED: _no_leaf,
}


def evaluate_nodes(outputs: Iterable[Node], feeds: Mapping[Node, np.ndarray],
                   env: Mapping[sympy.Symbol, int] | None = None) -> list[np.ndarray]:
    """Compute ``outputs`` with NumPy, given values for the leaves in ``feeds`` and the bound
    symbols in ``env``."""
    outputs = list(outputs)
    ctx = Context(dict(env or {}))
    values: dict[int, np.ndarray] = {}
    for node in toposort(outputs):
        if node in feeds:
            values[id(node)] = np.asarray(feeds[node])
            continue
        args = [values[id(i)] for i in node.inputs]
        with np.errstate(all="ignore"):
            out = REFERENCE[node.op](node, *args, ctx)
        if node.op is Op.SCAN:  # several values, read by its SCAN_OUTPUT nodes
            values[id(node)] = out
            continue
        values[id(node)] = np.asarray(out).astype(node.dtype, copy=False)
    return [values[id(o)] for o in outputs]
