"""Reverse-mode differentiation as a graph transformation: ``grad``, ``jacobian``, ``hessian``."""
from __future__ import annotations

from typing import Sequence, Union

from graphc.autodiff.scan import scan_vjp
from graphc.autodiff.vjp import VJP, NO_VJP
from graphc.errors import GradientError
from graphc.frontend import ops
from graphc.ir import dtypes as dt
from graphc.ir.graph import toposort
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import format_shape


def _depends_on(order: list[Node], wrt: Sequence[Node]) -> set[int]:
    """ids of nodes whose value depends on any of ``wrt``."""
    live = {id(w) for w in wrt}
    for node in order:
        if any(id(i) in live for i in node.inputs):
            live.add(id(node))
    return live


def grad(cost: Node, wrt: Union[Node, Sequence[Node]], disconnected: str = "raise",
         known_grads: dict[Node, Node] | None = None) -> Union[Node, list[Node]]:
    """Symbolic gradient of the scalar ``cost`` with respect to each node in ``wrt``.

    ``disconnected="raise"`` (the default) raises a :class:`GradientError` for a ``wrt`` the
    cost does not depend on; ``"zero"`` returns zeros for it instead.
    """
    single = isinstance(wrt, Node)
    wrt_list = [wrt] if single else list(wrt)
    cost = ops.as_tensor(cost)
    if disconnected not in ("raise", "zero"):
        raise ValueError('disconnected must be "raise" or "zero"')
    if cost.ndim != 0 and not known_grads:
        raise GradientError(f"grad: the cost must be a scalar, got shape {format_shape(cost.shape)}; "
                            "reduce it first (e.g. graphc.ops.mean) or use graphc.jacobian")
    if not dt.is_float(cost.dtype):
        raise GradientError(f"grad: the cost must be a float, got {cost.dtype}")
    # Stabilise first, so that e.g. the gradient of log(softmax(x)) is that of log_softmax(x).
    from graphc.passes import stability
    from graphc.passes.rewrite import apply_rules
    (cost,) = apply_rules([cost], stability.RULES)
    order = toposort([cost])
    live = _depends_on(order, wrt_list)
    grads: dict[int, Node] = {id(cost): ops.ones_like(cost)}
    for node, g in (known_grads or {}).items():
        grads[id(node)] = g
    # A SCAN node has several outputs: the cotangents of its SCAN_OUTPUT nodes are gathered by
    # index, and its VJP (a backward loop) runs once all of them are known.
    scan_cotangents: dict[int, dict[int, Node]] = {}
    for node in reversed(order):
        g = grads.get(id(node))
        if g is None or not node.inputs or id(node) not in live:
            continue
        if node.op is Op.SCAN_OUTPUT:
            scan_cotangents.setdefault(id(node.inputs[0]), {})[node.attrs["index"]] = g
            grads[id(node.inputs[0])] = g
            continue
        if node.op is Op.SCAN:
            input_grads = scan_vjp(node, scan_cotangents.pop(id(node)))
        else:
            rule = VJP.get(node.op)
            if rule is None:
                raise GradientError(f"grad: {node.op.value} has no gradient ({NO_VJP.get(node.op, 'no rule')})")
            input_grads = rule(node, g)
        for x, gx in zip(node.inputs, input_grads):
            if gx is None or id(x) not in live or not dt.is_float(x.dtype):
                continue
            gx = ops.cast(gx, x.dtype)
            prev = grads.get(id(x))
            grads[id(x)] = gx if prev is None else prev + gx
    result = []
    for w in wrt_list:
        g = grads.get(id(w))
        if g is None:
            if disconnected == "raise":
                raise GradientError(
                    f"grad: the cost does not depend on {w!r}; pass disconnected='zero' to get zeros")
            g = ops.zeros_like(w)
        result.append(g)
    return result[0] if single else result


def jacobian(y: Node, wrt: Node, disconnected: str = "raise") -> Node:
    """``d y[i...] / d wrt[j...]`` with shape ``y.shape + wrt.shape`` (``y`` of static size)."""
    y = ops.as_tensor(y)
    flat = ops.reshape(y, (-1,))
    n = flat.shape[0]
    if not isinstance(n, int):
        raise GradientError("jacobian needs an output of static size")
    rows = [grad(flat[i], wrt, disconnected=disconnected) for i in range(n)]
    return ops.reshape(ops.stack(rows), y.shape + wrt.shape)


def hessian(cost: Node, wrt: Node, disconnected: str = "raise") -> Node:
    """The matrix of second derivatives of a scalar ``cost`` with respect to ``wrt``."""
    return jacobian(grad(cost, wrt, disconnected=disconnected), wrt, disconnected="zero")
