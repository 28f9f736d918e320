"""Vector-Jacobian products, one rule per op.

``VJP[op](node, g)`` returns one gradient (a node, or ``None`` where no gradient flows) per
input of ``node``, given ``g``, the gradient of the cost with respect to ``node``. Rules are
written with :mod:`graphc.ops`, so gradients are ordinary graph nodes and can be
differentiated again.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np

from graphc.frontend import ops
from graphc.ir.node import Node, make_node
from graphc.ir.ops import COMPARISON, LOGICAL, Op
from graphc.ir.shapes import as_dim

Grads = Sequence[Optional[Node]]


def unbroadcast(g: Node, shape: tuple) -> Node:
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = list(range(lead))
    for i, d in enumerate(shape):
        if isinstance(d, int) and d == 1 and not (isinstance(g.shape[lead + i], int) and g.shape[lead + i] == 1):
            axes.append(lead + i)
    if axes:
        g = ops.sum(g, axis=axes)
    return ops.reshape(g, shape)


def _expand_reduced(node: Node, g: Node, x: Node, axes: tuple[int, ...]) -> tuple[Node, Node]:
    """``g`` and the node's output with the reduced axes put back as size 1, then broadcast."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return (ops.broadcast_to(ops.reshape(g, kept), x.shape),
            ops.broadcast_to(ops.reshape(node, kept), x.shape))


def _zero(x: Node) -> Node:
    return ops.zeros_like(x)


def _matmul(node: Node, g: Node) -> Grads:
    a, b = node.inputs
    ga = ops.matmul(g, ops.swapaxes(b, -1, -2))
    gb = ops.matmul(ops.swapaxes(a, -1, -2), g)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _concat(node: Node, g: Node) -> Grads:
    axis = node.attrs["axis"]
    out, start = [], 0
    for x in node.inputs:
        end = as_dim(start + x.shape[axis])
        out.append(ops.slice_axis(g, axis, start, end))
        start = end
    return out


def _slice(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    a = node.attrs
    lo, hi, mid = [], [], []
    for b, s, n, d in zip(a["begin"], a["step"], node.shape, x.shape):
        last = as_dim(b + (n - 1) * s + 1) if not (isinstance(n, int) and n == 0) else b
        lo.append(b)
        hi.append(as_dim(d - last))
        mid.append(s - 1)
    return (make_node(Op.PAD, (g,), {"lo": tuple(lo), "hi": tuple(hi), "interior": tuple(mid), "value": 0.0}),)


def _pad(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    a = node.attrs
    begin = tuple(a["lo"])
    end = tuple(as_dim(lo + (d - 1) * (m + 1) + 1) for lo, d, m in zip(a["lo"], x.shape, a["interior"]))
    step = tuple(m + 1 for m in a["interior"])
    return (make_node(Op.SLICE, (g,), {"begin": begin, "end": end, "step": step}),)


def _take(node: Node, g: Node) -> Grads:
    x, idx = node.inputs
    axis = node.attrs["axis"]
    return make_node(Op.SCATTER_ADD, (g, idx), {"axis": axis, "size": x.shape[axis]}), None


def _scatter_add(node: Node, g: Node) -> Grads:
    _, idx = node.inputs
    return ops.take(g, idx, axis=node.attrs["axis"]), None


def _reduce_sum(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    ge, _ = _expand_reduced(node, g, x, node.attrs["axes"])
    return (ge,)


def _reduce_prod(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    ge, oe = _expand_reduced(node, g, x, node.attrs["axes"])
    return (ge * oe / x,)


def _reduce_extreme(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    axes = node.attrs["axes"]
    ge, oe = _expand_reduced(node, g, x, axes)
    mask = ops.cast(ops.equal(x, oe), x.dtype)
    ties = ops.sum(mask, axis=axes, keepdims=True)
    return (ge * mask / ties,)


def _cast(node: Node, g: Node) -> Grads:
    (x,) = node.inputs
    if x.dtype not in ("float32", "float64") or node.dtype not in ("float32", "float64"):
        return (None,)
    return (ops.cast(g, x.dtype),)


def _softmax(node: Node, g: Node) -> Grads:
    axis = node.attrs["axis"]
    return (node * (g - ops.sum(g * node, axis=axis, keepdims=True)),)


def _log_softmax(node: Node, g: Node) -> Grads:
    axis = node.attrs["axis"]
    return (g - ops.exp(node) * ops.sum(g, axis=axis, keepdims=True),)


def _binary(fn: Callable[[Node, Node, Node, Node], tuple[Node, Node]]):
    def rule(node: Node, g: Node) -> Grads:
        a, b = node.inputs
        ga, gb = fn(node, g, a, b)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
    return rule


def _pow(out: Node, g: Node, a: Node, b: Node) -> tuple[Node, Node]:
    ga = g * b * ops.power(a, b - 1)
    safe_log = ops.log(ops.where(ops.greater(a, 0), a, ops.ones_like(a)))
    return ga, g * out * safe_log


def _where(node: Node, g: Node) -> Grads:
    c, a, b = node.inputs
    zero = ops.zeros_like(g)
    return None, unbroadcast(ops.where(c, g, zero), a.shape), unbroadcast(ops.where(c, zero, g), b.shape)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

VJP: dict[Op, Callable[[Node, Node], Grads]] = {
    Op.NEG: lambda n, g: (-g,),
    Op.ABS: lambda n, g: (g * ops.sign(n.inputs[0]),),
    Op.SIGN: lambda n, g: (_zero(n.inputs[0]),),
    Op.FLOOR: lambda n, g: (_zero(n.inputs[0]),),
    Op.CEIL: lambda n, g: (_zero(n.inputs[0]),),
    Op.ROUND: lambda n, g: (_zero(n.inputs[0]),),
    Op.EXP: lambda n, g: (g * n,),
    Op.EXPM1: lambda n, g: (g * (n + 1),),
    Op.LOG: lambda n, g: (g / n.inputs[0],),
    Op.LOG1P: lambda n, g: (g / (n.inputs[0] + 1),),
    Op.SQRT: lambda n, g: (g * 0.5 / n,),
    Op.SIN: lambda n, g: (g * ops.cos(n.inputs[0]),),
    Op.COS: lambda n, g: (-g * ops.sin(n.inputs[0]),),
    Op.TANH: lambda n, g: (g * (1 - n * n),),
    Op.SIGMOID: lambda n, g: (g * n * (1 - n),),
    Op.SOFTPLUS: lambda n, g: (g * ops.sigmoid(n.inputs[0]),),
    Op.ERF: lambda n, g: (g * _TWO_OVER_SQRT_PI * ops.exp(-(n.inputs[0] * n.inputs[0])),),
    Op.RELU: lambda n, g: (ops.where(ops.greater(n.inputs[0], 0), g, ops.zeros_like(g)),),
    Op.NOT: lambda n, g: (None,),
    Op.CAST: _cast,
    Op.ADD: _binary(lambda o, g, a, b: (g, g)),
    Op.SUB: _binary(lambda o, g, a, b: (g, -g)),
    Op.MUL: _binary(lambda o, g, a, b: (g * b, g * a)),
    Op.DIV: _binary(lambda o, g, a, b: (g / b, -g * o / b)),
    Op.POW: _binary(_pow),
    Op.MAXIMUM: _binary(lambda o, g, a, b: (ops.where(ops.greater_equal(a, b), g, ops.zeros_like(g)),
                                            ops.where(ops.less(a, b), g, ops.zeros_like(g)))),
    Op.MINIMUM: _binary(lambda o, g, a, b: (ops.where(ops.less_equal(a, b), g, ops.zeros_like(g)),
                                            ops.where(ops.greater(a, b), g, ops.zeros_like(g)))),
    **{op: (lambda n, g: (None, None)) for op in COMPARISON | LOGICAL},
    Op.WHERE: _where,
    Op.SUM: _reduce_sum,
    Op.PROD: _reduce_prod,
    Op.MAX: _reduce_extreme,
    Op.MIN: _reduce_extreme,
    Op.ARGMAX: lambda n, g: (None,),
    Op.ARGMIN: lambda n, g: (None,),
    Op.MATMUL: _matmul,
    Op.RESHAPE: lambda n, g: (ops.reshape(g, n.inputs[0].shape),),
    Op.TRANSPOSE: lambda n, g: (ops.transpose(g, tuple(np.argsort(n.attrs["perm"]).tolist())),),
    Op.BROADCAST: lambda n, g: (unbroadcast(g, n.inputs[0].shape),),
    Op.CONCAT: _concat,
    Op.SLICE: _slice,
    Op.PAD: _pad,
    Op.TAKE: _take,
    Op.SCATTER_ADD: _scatter_add,
    Op.SOFTMAX: _softmax,
    # im2col and col2im are adjoint linear maps: each one's VJP is the other
    Op.PATCHES: lambda n, g: (make_node(Op.PATCHES_ADJOINT, (g,), {**dict(n.attrs), "size": tuple(n.inputs[0].shape[1:-1])}),),
    Op.PATCHES_ADJOINT: lambda n, g: (make_node(Op.PATCHES, (g,), {k: v for k, v in n.attrs.items() if k != "size"}),),
    Op.LOG_SOFTMAX: _log_softmax,
}

# Ops without a VJP, and why.
NO_VJP: dict[Op, str] = {
    Op.PLACEHOLDER: "a leaf: its gradient is the result",
    Op.SHARED: "a leaf: its gradient is the result",
    Op.CONSTANT: "constants have no gradient",
    Op.DIM: "an integer size",
    Op.RANDOM: "random samples do not depend on any input",
    Op.FUSED: "made by the optimiser after differentiation",
    Op.SCAN: "several outputs: grad() gathers their cotangents and calls autodiff.scan.scan_vjp",
    Op.SCAN_OUTPUT: "passes its cotangent to its SCAN node (see grad())",
}
