"""A small pattern-rewrite engine: a rule is a function ``node -> node | None``.

``apply_rules`` rewrites bottom-up (a rule sees a node whose inputs are already rewritten)
and repeats until nothing changes, so rules stay local and simple.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from graphc.ir.graph import transform
from graphc.ir.node import Node, copy_origin
from graphc.ir.ops import Op

Rule = Callable[[Node], Optional[Node]]


def apply_rules(outputs: Sequence[Node], rules: Iterable[Rule], max_rounds: int = 8) -> list[Node]:
    """Rewrite ``outputs`` with ``rules`` to a fixed point (at most ``max_rounds`` sweeps)."""
    rules = list(rules)
    outs = list(outputs)

    def step(node: Node) -> Node:
        for _ in range(16):  # let several rules fire on one node
            for rule in rules:
                new = rule(node)
                if new is not None and new is not node:
                    copy_origin(node, new)
                    node = new
                    break
            else:
                return node
        return node

    for _ in range(max_rounds):
        new_outs = transform(outs, step)
        if all(a is b for a, b in zip(new_outs, outs)):
            break
        outs = new_outs
    return outs


def const_value(node: Node) -> np.ndarray | None:
    """The array of a CONSTANT node, else None."""
    return node.attrs["value"].array if node.op is Op.CONSTANT else None


def is_scalar_const(node: Node, value: float | None = None) -> bool:
    """True for a constant with one distinct value (equal to ``value`` if given)."""
    arr = const_value(node)
    if arr is None or arr.size == 0:
        return False
    first = arr.flat[0]
    if not np.all(arr == first):
        return False
    return value is None or bool(first == value)
