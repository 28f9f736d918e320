"""Expansion of ops a backend has no kernel for into primitives it has.

The CUDA lowering has no im2col kernel: before scheduling for CUDA, PATCHES becomes one
strided slice per kernel offset, concatenated along the channels, and PATCHES_ADJOINT the sum
of those slices' adjoints (interior-padded copies of each block of columns). The values are
the same; the CPU keeps the single-kernel forms.
"""
from __future__ import annotations

import itertools
from typing import Sequence

from graphc.frontend import ops
from graphc.ir.graph import transform
from graphc.ir.node import Node, make_node
from graphc.ir.ops import Op


def _offsets(attrs, spatial):
    outs = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(spatial, attrs["ksize"], attrs["strides"],
                                                                attrs["dilation"])]
    for i, offs in enumerate(itertools.product(*[range(k) for k in attrs["ksize"]])):
        starts = [o * d for o, d in zip(offs, attrs["dilation"])]
        yield i, starts, outs


def _expand(node: Node) -> Node:
    a = node.attrs
    if node.op is Op.PATCHES:
        (x,) = node.inputs
        parts = []
        for _, starts, outs in _offsets(a, x.shape[1:-1]):
            idx = (slice(None),) + tuple(slice(b, b + (n - 1) * s + 1, s) for b, s, n in
                                         zip(starts, a["strides"], outs)) + (slice(None),)
            parts.append(ops.getitem(x, idx))
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    if node.op is Op.PATCHES_ADJOINT:
        (g,) = node.inputs
        c = node.shape[-1]
        total = None
        for i, starts, outs in _offsets(a, a["size"]):
            block = g[..., i * c:(i + 1) * c]
            lo = (0, *starts, 0)
            hi = (0, *[n - (b + (o - 1) * s + 1) for n, b, o, s in zip(a["size"], starts, outs, a["strides"])], 0)
            interior = (0, *[s - 1 for s in a["strides"]], 0)
            part = make_node(Op.PAD, (block,), {"lo": lo, "hi": hi, "interior": interior, "value": 0.0})
            total = part if total is None else ops.add(total, part)
        return total
    return node


def expand_windows(outputs: Sequence[Node]) -> list[Node]:
    """``outputs`` with every PATCHES / PATCHES_ADJOINT replaced by slices, concatenations and pads."""
    return transform(outputs, _expand)
