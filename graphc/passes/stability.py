"""Rewrites for numerical stability (applied before differentiation too, so the gradient of
a cross-entropy never divides by an underflowed softmax)."""
from __future__ import annotations

from typing import Optional

from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.passes.rewrite import is_scalar_const


def _one_plus(node: Node) -> Optional[Node]:
    """x if node is 1 + x or x + 1 (without broadcasting x), else None."""
    if node.op is not Op.ADD:
        return None
    a, b = node.inputs
    if is_scalar_const(a, 1) and b.shape == node.shape:
        return b
    if is_scalar_const(b, 1) and a.shape == node.shape:
        return a
    return None


def stable_log(node: Node) -> Optional[Node]:
    """log(softmax x) -> log_softmax x; log(1+x) -> log1p x; log(sigmoid x) -> -softplus(-x);
    log(1 - sigmoid x) -> -softplus(x)."""
    if node.op is not Op.LOG:
        return None
    (x,) = node.inputs
    if x.op is Op.SOFTMAX:
        return ops.log_softmax(x.inputs[0], x.attrs["axis"])
    if x.op is Op.SIGMOID:
        return -ops.softplus(-x.inputs[0])
    if x.op is Op.SUB and is_scalar_const(x.inputs[0], 1) and x.inputs[1].op is Op.SIGMOID \
            and x.inputs[1].shape == x.shape:
        return -ops.softplus(x.inputs[1].inputs[0])
    inner = _one_plus(x)
    if inner is not None:
        return ops.log1p(inner)
    return None


def stable_expm1(node: Node) -> Optional[Node]:
    """exp(x) - 1 -> expm1(x)."""
    if node.op is Op.SUB and node.inputs[0].op is Op.EXP and is_scalar_const(node.inputs[1], 1) \
            and node.inputs[0].shape == node.shape:
        return ops.expm1(node.inputs[0].inputs[0])
    return None


RULES = [stable_log, stable_expm1]
