"""Symbolic shapes: a dimension is an ``int`` or a sympy expression in integer symbols.

A ``None`` in a placeholder's shape becomes a fresh positive integer symbol. Shape arithmetic
(reshape's -1, convolution sizes, ``mean``'s divisor) is exact sympy algebra, and a compiled
function evaluates the expressions once it has bound the symbols from its inputs.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Union

import sympy

Dim = Union[int, sympy.Expr]
Shape = tuple  # tuple[Dim, ...]

_counter = itertools.count()

# The per-call counter that random ops read, bound by every compiled function.
RNG_STEP = sympy.Symbol("rng_step", integer=True, nonnegative=True)


def new_symbol(hint: str = "n") -> sympy.Symbol:
    """A fresh positive integer symbol for an unknown dimension."""
    return sympy.Symbol(f"{hint}{next(_counter)}", integer=True, positive=True)


def as_dim(d: object) -> Dim:
    """Normalise a dimension: Python/NumPy ints stay ints, constant expressions become ints."""
    if isinstance(d, sympy.Expr):
        # sympy keeps sums and products canonical; expanding is enough and far cheaper
        # than simplify (which dominated compile time).
        if not d.is_Symbol and not d.has(sympy.floor, sympy.ceiling):
            d = sympy.expand(d)
        if d.is_Integer:
            return int(d)
        return d
    try:
        import operator
        return operator.index(d)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"a dimension must be an int or a symbolic size, got {d!r}") from None


def is_static(shape: Iterable[Dim]) -> bool:
    """True if every dimension is a known integer."""
    return all(isinstance(d, int) for d in shape)


def size_of(shape: Iterable[Dim]) -> Dim:
    """The number of elements, an int or a sympy expression."""
    total: Dim = 1
    for d in shape:
        total = total * d
    return as_dim(total) if isinstance(total, sympy.Expr) else total


def dims_equal(a: Dim, b: Dim) -> bool:
    """True if two dimensions are known to be equal."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a == b:  # the same expression (structural equality: cheap, unlike expand)
        return True
    if getattr(a, "is_Symbol", False) and (isinstance(b, int) or b.is_Symbol) or \
            getattr(b, "is_Symbol", False) and isinstance(a, int):
        return False  # a symbol is never known to equal a number or another symbol
    diff = sympy.expand(sympy.sympify(a) - b)
    return diff == 0 or (diff.has(sympy.floor, sympy.ceiling) and sympy.simplify(diff) == 0)


def evaluate(d: Dim, env: Mapping[sympy.Symbol, int]) -> int:
    """The value of a dimension once its symbols are bound."""
    if isinstance(d, int):
        return d
    if d.is_Symbol:
        return env[d]
    value = d.xreplace({s: sympy.Integer(env[s]) for s in d.free_symbols})
    return int(value)


def window_slices(node) -> list[tuple[slice, ...]]:
    """For a PATCHES or PATCHES_ADJOINT node: per kernel offset (row-major), the index of the
    image (batch, *spatial, channels) that the offset's block of columns reads or writes."""
    import itertools

    from graphc.ir.ops import Op
    a = node.attrs
    cols = node.inputs[0] if node.op is Op.PATCHES_ADJOINT else node  # the (batch, *outs, K*C) side
    outs = cols.shape[1:-1]
    return [(slice(None),) + tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, s, n in
                                   zip(offs, a["dilation"], a["strides"], outs)) + (slice(None),)
            for offs in itertools.product(*[range(k) for k in a["ksize"]])]


def format_shape(shape: Iterable[Dim]) -> str:
    """``(None, 784)``-style text; symbolic dimensions print as their expressions."""
    parts = [str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
