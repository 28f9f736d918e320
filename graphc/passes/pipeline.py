"""The optimisation passes of each level, in one place.

- level 0: the graph as built (interning already merged common subexpressions, and only
  what the outputs depend on is ever walked, so dead code never reaches the backend).
- level 1: loops (merged, pruned, their bodies optimised at the same level), stability
  rewrites, algebraic simplification, constant folding.
- level 2: level 1, then elementwise fusion.
"""
from __future__ import annotations

from typing import Sequence

from graphc.ir.node import Node
from graphc.passes import fusion, simplify, stability
from graphc.passes import scan as loops
from graphc.passes.rewrite import apply_rules

PASSES: dict[int, list[str]] = {
    0: [],
    1: ["loops", "stability", "simplify"],
    2: ["loops", "stability", "simplify", "fusion"],
}


def _run(name: str, outputs: list[Node], level: int) -> list[Node]:
    if name == "loops":
        return loops.optimize_loops(outputs, lambda body: optimize(body, level))
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
        outs = _run(name, outs, level)
    return outs
