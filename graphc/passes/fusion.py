"""Elementwise fusion: chains of elementwise ops become one FUSED node (one loop), and a sum
over such a chain closes the loop as a reduction.

A FUSED node's ``expr`` is a tree of tuples over its inputs:
``("in", i)``, ``("const", value, dtype)`` or ``("op", Op, (args...), dtype)``.
A producer is inlined into its consumer when it is elementwise, has no other consumer and
has the consumer's shape (so nothing is computed twice). A *cheap* producer (a few
arithmetic ops, no transcendental functions) is also inlined into several consumers when
all of its readers are same-shape elementwise ops: recomputing ``x @ w + b`` in both
``relu(...)`` and the backward pass's ``where(... > 0, g, 0)`` costs two additions and
saves a kernel, a buffer and its memory traffic.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from graphc.errors import CompileError
from graphc.ir.graph import toposort
from graphc.ir.node import Node, copy_origin, make_node
from graphc.ir.ops import ELEMENTWISE, Op
from graphc.passes.rewrite import const_value


def _singleton(node: Node) -> tuple[tuple, list[Node]]:
    """The expression of one elementwise node over its own inputs (scalar constants inlined)."""
    args, leaves = [], []
    for x in node.inputs:
        value = const_value(x)
        if value is not None and value.ndim == 0:
            args.append(("const", value.item(), x.dtype))
        else:
            args.append(("in", len(leaves)))
            leaves.append(x)
    return ("op", node.op, tuple(args), node.dtype), leaves


def _reindex(expr: tuple, mapping: dict[int, tuple]) -> tuple:
    kind = expr[0]
    if kind == "in":
        return mapping[expr[1]]
    if kind == "const":
        return expr
    return ("op", expr[1], tuple(_reindex(e, mapping) for e in expr[2]), expr[3])


CHEAP_OPS = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.NEG, Op.MAXIMUM, Op.MINIMUM, Op.RELU, Op.CAST})
MAX_RECOMPUTED_OPS = 2


def _op_count(expr: tuple) -> int | None:
    """Ops in ``expr``, or None if one of them is not cheap to compute again."""
    if expr[0] != "op":
        return 0
    if expr[1] not in CHEAP_OPS:
        return None
    total = 1
    for e in expr[2]:
        n = _op_count(e)
        if n is None:
            return None
        total += n
    return total


def fuse(outputs: Sequence[Node]) -> list[Node]:
    """Fuse elementwise chains (and sums closing them) below ``outputs``."""
    order = toposort(outputs)
    uses: Counter[int] = Counter()
    readers: dict[int, list[Node]] = {}
    for node in order:
        for x in set(map(id, node.inputs)):
            uses[x] += 1
        for x in node.inputs:
            readers.setdefault(id(x), []).append(node)
    for o in outputs:
        uses[id(o)] += 1
    out_ids = {id(o) for o in outputs}

    def recomputable(x: Node) -> bool:
        """Cheap, read only by same-shape elementwise ops, not an output: inline everywhere."""
        if id(x) in out_ids:
            return False
        n = _op_count(built[id(x)][0])
        return n is not None and n <= MAX_RECOMPUTED_OPS and all(
            r.op in ELEMENTWISE and r.shape == x.shape for r in readers.get(id(x), []))

    # For every elementwise node: its expression and the nodes it reads.
    built: dict[int, tuple[tuple, list[Node]]] = {}
    new: dict[int, Node] = {}

    def leaf_node(x: Node) -> Node:
        return new[id(x)]

    for node in order:
        if node.op in ELEMENTWISE:
            expr, leaves = _singleton(node)
            # inline single-use, same-shape elementwise producers
            final_leaves: list[Node] = []
            index: dict[int, int] = {}

            def add_leaf(x: Node) -> tuple:
                key = id(x)
                if key not in index:
                    index[key] = len(final_leaves)
                    final_leaves.append(x)
                return ("in", index[key])

            mapping: dict[int, tuple] = {}
            for i, x in enumerate(leaves):
                if id(x) in built and x.shape == node.shape and (uses[id(x)] == 1 or recomputable(x)):
                    sub_expr, sub_leaves = built[id(x)]
                    sub_map = {j: add_leaf(y) for j, y in enumerate(sub_leaves)}
                    mapping[i] = _reindex(sub_expr, sub_map)
                else:
                    mapping[i] = add_leaf(x)
            expr = _reindex(expr, mapping)
            built[id(node)] = (expr, final_leaves)
            new[id(node)] = _make(node, expr, final_leaves, None, leaf_node)
        elif node.op is Op.SUM and id(node.inputs[0]) in built and uses[id(node.inputs[0])] == 1:
            expr, leaves = built[id(node.inputs[0])]
            new[id(node)] = _make(node, expr, leaves, node.attrs["axes"], leaf_node)
        else:
            inputs = tuple(new[id(i)] for i in node.inputs)
            if inputs == node.inputs:
                new[id(node)] = node
            else:
                new[id(node)] = make_node(node.op, inputs, node.attrs)
                copy_origin(node, new[id(node)])
    return [new[id(o)] for o in outputs]


def _make(node: Node, expr: tuple, leaves: list[Node], reduce_axes, leaf_node) -> Node:
    inputs = tuple(leaf_node(x) for x in leaves)
    dtype = expr[3] if expr[0] == "op" else node.dtype
    fused = make_node(Op.FUSED, inputs, {"expr": expr, "reduce_axes": reduce_axes, "dtype": dtype})
    if fused.shape != node.shape:
        raise CompileError(f"fusion changed the shape of {node!r} to {fused.shape}")
    copy_origin(node, fused)
    return fused
