"""The optimisation passes of each level, in one place.

- level 0: the graph as built (interning already merged common subexpressions, and only
  what the outputs depend on is ever walked, so dead code never reaches the backend).
- level 1: stability rewrites, algebraic simplification, constant folding.
- level 2: level 1, then elementwise fusion.
"""
from __future__ import annotations

from typing import Sequence

from graphc.ir.node import Node
from graphc.passes import fusion, simplify, stability
from graphc.passes.rewrite import apply_rules

PASSES: dict[int, list[str]] = {
    0: [],
    1: ["stability", "simplify"],
    2: ["stability", "simplify", "fusion"],
}


def _run(name: str, outputs: list[Node]) -> list[Node]:
    if name == "stability":
        return apply_rules(outputs, stability.RULES)
    if name == "simplify":
        return apply_rules(outputs, simplify.RULES)
    if name == "fusion":
        return fusion.fuse(outputs)
    raise ValueError(f"unknown pass {name!r}")


def optimize(outputs: Sequence[Node], level: int = 2) -> list[Node]:
    """The outputs rewritten by the passes of ``level`` (values are preserved)."""
    outs = list(outputs)
    for name in PASSES[min(max(level, 0), 2)]:
        outs = _run(name, outs)
    return outs
