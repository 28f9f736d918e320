"""Algebraic simplification and constant folding."""
from __future__ import annotations

from typing import Optional

import numpy as np

from graphc.frontend import ops
from graphc.ir.node import Node, make_node
from graphc.errors import ShapeError
from graphc.ir.infer import broadcast_shapes
from graphc.ir.ops import ELEMENTWISE, LEAVES, Op
from graphc.passes.rewrite import const_value, is_scalar_const

# Folding makes a constant of the result: skip results bigger than this many elements.
FOLD_LIMIT = 1 << 16


def _same(node: Node, x: Node) -> bool:
    return x.shape == node.shape and x.dtype == node.dtype


def identity_ops(node: Node) -> Optional[Node]:
    """x+0, 0+x, x-0, x*1, 1*x, x/1, --x, and maximum/minimum of a node with itself."""
    op, ins = node.op, node.inputs
    if op is Op.ADD:
        a, b = ins
        if is_scalar_const(b, 0) and _same(node, a):
            return a
        if is_scalar_const(a, 0) and _same(node, b):
            return b
    elif op is Op.SUB:
        a, b = ins
        if is_scalar_const(b, 0) and _same(node, a):
            return a
    elif op is Op.MUL:
        a, b = ins
        if is_scalar_const(b, 1) and _same(node, a):
            return a
        if is_scalar_const(a, 1) and _same(node, b):
            return b
    elif op is Op.DIV:
        a, b = ins
        if is_scalar_const(b, 1) and _same(node, a):
            return a
    elif op is Op.NEG and ins[0].op is Op.NEG:
        return ins[0].inputs[0]
    elif op in (Op.MAXIMUM, Op.MINIMUM) and ins[0] is ins[1]:
        return ins[0]
    return None


def shape_ops(node: Node) -> Optional[Node]:
    """Collapse reshape-of-reshape, transpose-of-transpose, no-op reshapes and transposes."""
    op = node.op
    if op is Op.RESHAPE:
        (x,) = node.inputs
        if x.shape == node.shape:
            return x
        if x.op is Op.RESHAPE:
            return ops.reshape(x.inputs[0], node.shape)
    elif op is Op.TRANSPOSE:
        (x,) = node.inputs
        perm = node.attrs["perm"]
        if x.op is Op.TRANSPOSE:
            inner = x.attrs["perm"]
            return ops.transpose(x.inputs[0], tuple(inner[p] for p in perm))
    elif op is Op.CAST and node.inputs[0].dtype == node.dtype:
        return node.inputs[0]
    return None


def fold_constants(node: Node) -> Optional[Node]:
    """Evaluate an op whose inputs are all constants (small results only)."""
    if node.op in LEAVES or node.op is Op.BROADCAST or not node.inputs:
        return None
    values = [const_value(i) for i in node.inputs]
    if any(v is None for v in values):
        return None
    if not all(isinstance(d, int) for d in node.shape) or int(np.prod(node.shape, dtype=np.int64)) > FOLD_LIMIT:
        return None
    from graphc.interp import REFERENCE, Context
    with np.errstate(all="ignore"):
        result = np.asarray(REFERENCE[node.op](node, *values, Context())).astype(node.dtype)
    return ops.constant(result)


def absorb_broadcast(node: Node) -> Optional[Node]:
    """An elementwise op broadcasts its inputs itself: ``add(broadcast_to(b, s), x)`` reads
    ``b`` directly instead of materialising the broadcast."""
    if node.op not in ELEMENTWISE or not any(i.op is Op.BROADCAST for i in node.inputs):
        return None
    inputs = list(node.inputs)
    changed = False
    for k, x in enumerate(inputs):
        if x.op is not Op.BROADCAST:
            continue
        trial = inputs[:k] + [x.inputs[0]] + inputs[k + 1:]
        try:
            shape = broadcast_shapes(node.op, tuple(trial))
        except ShapeError:
            continue
        if shape == node.shape:
            inputs, changed = trial, True
    return make_node(node.op, tuple(inputs), node.attrs) if changed else None


RULES = [identity_ops, shape_ops, fold_constants, absorb_broadcast]
