"""Strided loop nests: the one loop shape behind elementwise ops, reductions, copies and the
batch loop of matmul.

A nest is a list of sizes and, per operand, a stride per axis (symbolic, in elements).
Adjacent axes that every operand walks contiguously are merged first, so that e.g. a
(N, 512) + (512,) add is two loops and a contiguous copy is one.
"""
from __future__ import annotations

from typing import Callable, Sequence

import sympy
from llvmlite import ir

from graphc.ir.shapes import Dim, as_dim
from graphc.lower.irutil import I64, SizeEmitter, const_i64, for_range

Strides = list[Dim]


def contiguous_strides(shape: Sequence[Dim]) -> Strides:
    """Row-major element strides of ``shape``."""
    out: list[Dim] = []
    acc: Dim = 1
    for d in reversed(shape):
        out.append(acc)
        acc = as_dim(acc * d)
    return out[::-1]


def broadcast_strides(in_shape: Sequence[Dim], out_shape: Sequence[Dim]) -> Strides:
    """Strides that walk an input of ``in_shape`` broadcast (right-aligned) to ``out_shape``."""
    lead = len(out_shape) - len(in_shape)
    own = contiguous_strides(in_shape)
    out: Strides = []
    for a, d in enumerate(out_shape):
        if a < lead:
            out.append(0)
            continue
        di = in_shape[a - lead]
        out.append(0 if (isinstance(di, int) and di == 1 and not (isinstance(d, int) and d == 1)) else own[a - lead])
    return out


def _eq(a: Dim, b: Dim) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.expand(sympy.sympify(a) - b) == 0


def collapse(dims: Sequence[Dim], strides: Sequence[Strides]) -> tuple[list[Dim], list[Strides]]:
    """Drop size-1 axes and merge adjacent axes that all operands walk contiguously."""
    keep = [a for a, d in enumerate(dims) if not (isinstance(d, int) and d == 1)]
    d2 = [dims[a] for a in keep]
    s2 = [[s[a] for a in keep] for s in strides]
    a = len(d2) - 2
    while a >= 0:
        if all(_eq(s[a], as_dim(s[a + 1] * d2[a + 1])) for s in s2):
            d2[a] = as_dim(d2[a] * d2[a + 1])
            for s in s2:
                s[a] = s[a + 1]
                del s[a + 1]
            del d2[a + 1]
        a -= 1
    return d2, s2


def emit_nest(b: ir.IRBuilder, size: SizeEmitter, dims: Sequence[Dim], strides: Sequence[Strides],
              base: Sequence[ir.Value], body: Callable[[list[ir.Value]], None]) -> None:
    """Emit the nest; ``body`` gets each operand's element offset at the innermost point."""
    dims, strides = collapse(dims, strides)
    sizes = [size(d) for d in dims]
    steps = [[size(s[a]) for a in range(len(dims))] for s in strides]

    def level(a: int, offsets: list[ir.Value]) -> None:
        if a == len(dims):
            body(offsets)
            return
        with for_range(b, sizes[a], name=f"l{a}") as i:
            level(a + 1, [o if _is_zero(st[a]) else b.add(o, b.mul(i, st[a])) for o, st in zip(offsets, steps)])

    level(0, list(base))


def _is_zero(v: ir.Value) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 0


def zero_offsets(n: int) -> list[ir.Value]:
    return [const_i64(0)] * n


__all__ = ["contiguous_strides", "broadcast_strides", "collapse", "emit_nest", "zero_offsets", "I64"]
