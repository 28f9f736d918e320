"""Loop optimisation: merge equal loops, drop what no one reads, optimise the bodies.

- Differentiating a loop adds a copy of it that keeps every step's carries (see
  :mod:`graphc.autodiff.scan`). Loops with the same body, inputs and direction are merged into
  one that keeps what any of them kept, so the forward pass runs once.
- A stacked carry no one reads is kept as its final value only (memory constant in the
  length, as at inference), and per-step outputs no one reads are dropped from the body.
- Each body is optimised with the same passes as the outer graph (so its elementwise chains
  are fused), then invariants are hoisted out of it again.
"""
from __future__ import annotations

from typing import Callable

from graphc.frontend.scan import last_step, make_scan, scan_output
from graphc.ir.graph import substitute, toposort
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.scan import ScanBody

Optimizer = Callable[[list[Node]], list[Node]]


def optimize_loops(outputs: list[Node], optimize_body: Optimizer) -> list[Node]:
    """``outputs`` with every SCAN merged, pruned and its body run through ``optimize_body``."""
    order = toposort(outputs)
    readers: dict[int, list[Node]] = {}  # id(scan) -> its SCAN_OUTPUT nodes
    groups: dict[tuple, list[Node]] = {}
    for n in order:
        if n.op is Op.SCAN_OUTPUT:
            readers.setdefault(id(n.inputs[0]), []).append(n)
        elif n.op is Op.SCAN:
            a = n.attrs
            groups.setdefault((a["body"], n.inputs, a["length"], a["reverse"]), []).append(n)
    if not groups:
        return outputs
    mapping: dict[Node, Node] = {}
    for (body, inputs, length, reverse), members in groups.items():
        nc = len(body.carries)
        stack = [False] * nc
        used_y: set[int] = set()
        for m in members:
            for r in readers.get(id(m), []):
                i = r.attrs["index"]
                if i >= nc:
                    used_y.add(i - nc)
                elif m.attrs["keep"][i]:
                    stack[i] = True
        ys = sorted(used_y)
        opt = optimize_body(list(body.new_carries) + [body.ys[l] for l in ys])
        new_body = ScanBody(body.carries, body.seqs, body.invariants, tuple(opt[:nc]), tuple(opt[nc:]))
        # Groups come in topological order: this loop's inputs may read loops rewritten above.
        inputs = tuple(substitute(list(inputs), mapping)) if mapping else inputs
        merged = make_scan(new_body, inputs[:nc], inputs[nc:nc + len(body.seqs)], inputs[nc + len(body.seqs):],
                           length, reverse, stack)
        y_index = {l: nc + i for i, l in enumerate(ys)}
        for m in members:
            for r in readers.get(id(m), []):
                i = r.attrs["index"]
                if i >= nc:
                    mapping[r] = scan_output(merged, y_index[i - nc])
                elif stack[i] and not m.attrs["keep"][i]:
                    mapping[r] = last_step(scan_output(merged, i), reverse)
                else:
                    mapping[r] = scan_output(merged, i)
    return substitute(outputs, mapping)
