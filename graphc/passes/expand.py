"""Expansion of ops a backend has no kernel for into primitives it has.

The CUDA lowering has no im2col kernel: before scheduling for CUDA, PATCHES becomes one
strided slice per kernel offset, concatenated along the channels, and PATCHES_ADJOINT the sum
of those slices' adjoints (interior-padded copies of each block of columns). The values are
the same; the CPU keeps the single-kernel forms.
"""
from __future__ import annotations

from typing import Sequence

from graphc.frontend import ops
from graphc.ir.graph import transform
from graphc.ir.node import Node, make_node
from graphc.ir.ops import Op
from graphc.ir.shapes import window_slices


def _expand(node: Node) -> Node:
    if node.op is Op.PATCHES:
        (x,) = node.inputs
        parts = [ops.getitem(x, idx) for idx in window_slices(node)]
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    if node.op is Op.PATCHES_ADJOINT:
        (g,) = node.inputs
        c = node.shape[-1]
        total = None
        for i, idx in enumerate(window_slices(node)):
            block = g[..., i * c:(i + 1) * c]
            # the adjoint of slicing idx out of the image: zeros around, step - 1 between
            spatial = list(zip(idx[1:-1], node.shape[1:-1]))
            lo = (0, *[sl.start for sl, _ in spatial], 0)
            hi = (0, *[n - sl.stop for sl, n in spatial], 0)
            interior = (0, *[sl.step - 1 for sl, _ in spatial], 0)
            part = make_node(Op.PAD, (block,), {"lo": lo, "hi": hi, "interior": interior, "value": 0.0})
            total = part if total is None else ops.add(total, part)
        return total
    return node


def expand_windows(outputs: Sequence[Node]) -> list[Node]:
    """``outputs`` with every PATCHES / PATCHES_ADJOINT replaced by slices, concatenations and pads."""
    return transform(outputs, _expand)
