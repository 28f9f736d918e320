"""Sympy expressions as graph ops, and as plain JSON trees (stored without ``eval``).

:func:`to_graph` turns a formula in one symbol into graphc ops applied to a tensor;
:func:`to_tree` / :func:`from_tree` store a formula as nested lists of whitelisted sympy
class names, so loading a saved model never evaluates text as code.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node

_UNARY = {
    sympy.exp: ops.exp, sympy.log: ops.log, sympy.sin: ops.sin, sympy.cos: ops.cos,
    sympy.tanh: ops.tanh, sympy.Abs: ops.abs, sympy.sign: ops.sign, sympy.erf: ops.erf,
    sympy.floor: ops.floor, sympy.ceiling: ops.ceil,
}
_FUNCS = {
    "Add", "Mul", "Pow", "exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh", "Abs", "sign",
    "erf", "floor", "ceiling", "Max", "Min", "Heaviside", "Piecewise", "ExprCondPair",
    "StrictGreaterThan", "StrictLessThan", "GreaterThan", "LessThan", "atan", "asinh",
}


def to_graph(expr: sympy.Expr, symbol: sympy.Symbol, x: Node) -> Node:
    """Evaluate ``expr`` (a formula in ``symbol``) on the tensor ``x`` as graph ops."""
    dtype = x.dtype

    def num(v: Any) -> Node:
        return ops.as_tensor(np.asarray(float(v), dtype=dtype))

    def go(e: sympy.Basic) -> Node:
        if e == symbol:
            return x
        if e.is_Number or e.is_NumberSymbol:
            return ops.broadcast_to(num(e), x.shape)
        if isinstance(e, sympy.Add):
            out = go(e.args[0])
            for a in e.args[1:]:
                out = ops.add(out, go(a))
            return out
        if isinstance(e, sympy.Mul):
            out = go(e.args[0])
            for a in e.args[1:]:
                out = ops.multiply(out, go(a))
            return out
        if isinstance(e, sympy.Pow):
            base, p = e.args
            if p.is_Number:
                pf = float(p)
                if pf == 0.5:
                    return ops.sqrt(go(base))
                if pf == -1:
                    return ops.divide(1.0, go(base))
                if pf == int(pf) and abs(pf) <= 4:
                    b = go(base)
                    out = b
                    for _ in range(int(abs(pf)) - 1):
                        out = ops.multiply(out, b)
                    return ops.divide(1.0, out) if pf < 0 else out
                return ops.power(go(base), num(p))
            if base == sympy.E:
                return ops.exp(go(p))
            return ops.power(go(base), go(p))
        func = e.func
        if func in _UNARY:
            return _UNARY[func](go(e.args[0]))
        if func is sympy.tan:
            a = go(e.args[0])
            return ops.divide(ops.sin(a), ops.cos(a))
        if func is sympy.sinh:
            a = go(e.args[0])
            return ops.multiply(ops.subtract(ops.exp(a), ops.exp(ops.negative(a))), 0.5)
        if func is sympy.cosh:
            a = go(e.args[0])
            return ops.multiply(ops.add(ops.exp(a), ops.exp(ops.negative(a))), 0.5)
        if func is sympy.asinh:
            a = go(e.args[0])
            return ops.log(ops.add(a, ops.sqrt(ops.add(ops.multiply(a, a), 1.0))))
        if func in (sympy.Max, sympy.Min):
            f = ops.maximum if func is sympy.Max else ops.minimum
            out = go(e.args[0])
            for a in e.args[1:]:
                out = f(out, go(a))
            return out
        if func is sympy.Heaviside:
            a = go(e.args[0])
            return ops.where(ops.greater(a, 0.0), 1.0, ops.where(ops.less(a, 0.0), 0.0, 0.5)).astype(dtype)
        if isinstance(e, sympy.Piecewise):
            out = None
            for value, cond in reversed(e.args):
                v = go(value)
                if cond is sympy.true:
                    out = v
                    continue
                out = ops.where(go_cond(cond), v, out if out is not None else ops.zeros_like(x))
            return out
        raise InputError(f"activations.from_sympy: {e.func.__name__} is not supported in a formula "
                         f"(supported: {', '.join(sorted(_FUNCS))})")

    def go_cond(c: sympy.Basic) -> Node:
        lhs, rhs = go(c.args[0]), go(c.args[1])
        table = {sympy.StrictGreaterThan: ops.greater, sympy.StrictLessThan: ops.less,
                 sympy.GreaterThan: ops.greater_equal, sympy.LessThan: ops.less_equal}
        if c.func not in table:
            raise InputError(f"activations.from_sympy: condition {c} is not supported")
        return table[c.func](lhs, rhs)

    return go(expr)


def to_tree(e: sympy.Basic) -> Any:
    """A JSON-friendly tree of ``e``: symbols, exact numbers and whitelisted functions."""
    if e.is_Symbol:
        return ["Symbol", e.name]
    if e.is_Integer:
        return ["Integer", int(e)]
    if e.is_Rational:
        return ["Rational", int(e.p), int(e.q)]
    if e.is_Float:
        return ["Float", str(e)]
    if e is sympy.pi:
        return ["pi"]
    if e is sympy.E:
        return ["E"]
    if e is sympy.true:
        return ["true"]
    name = type(e).__name__
    if name not in _FUNCS:
        raise InputError(f"activations.from_sympy: cannot store {name} in a formula")
    return [name] + [to_tree(a) for a in e.args]


def from_tree(t: Any) -> sympy.Basic:
    """Rebuild a sympy expression from :func:`to_tree`'s output (names from the whitelist only)."""
    if not isinstance(t, list) or not t:
        raise InputError(f"bad formula tree {t!r}")
    head = t[0]
    if head == "Symbol":
        return sympy.Symbol(str(t[1]))
    if head == "Integer":
        return sympy.Integer(int(t[1]))
    if head == "Rational":
        return sympy.Rational(int(t[1]), int(t[2]))
    if head == "Float":
        return sympy.Float(str(t[1]))
    if head == "pi":
        return sympy.pi
    if head == "E":
        return sympy.E
    if head == "true":
        return sympy.true
    if head not in _FUNCS:
        raise InputError(f"bad formula tree: {head!r} is not an allowed function")
    args = [from_tree(a) for a in t[1:]]
    if head == "ExprCondPair":
        return sympy.functions.elementary.piecewise.ExprCondPair(*args)
    cls = getattr(sympy, head, None)
    if cls is None:
        import sympy.core.relational as rel
        cls = getattr(rel, head)
    return cls(*args)
