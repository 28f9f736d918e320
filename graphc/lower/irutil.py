"""Small helpers for building LLVM IR with llvmlite: types, loops, symbolic sizes."""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import sympy
from llvmlite import ir

from graphc.backend.jit import VECTOR_MIN_TRIP_COUNT

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
I8P = I8.as_pointer()

LLVM_TYPE = {"bool": I1, "int32": I32, "int64": I64, "float32": F32, "float64": F64}
MEM_TYPE = {"bool": I8, "int32": I32, "int64": I64, "float32": F32, "float64": F64}

# Fast-math flags for accumulations: reassociation lets LLVM vectorise a reduction.
REDUCE_FLAGS = ("reassoc", "contract")


def const_i64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def _scalar_loop_id(module: ir.Module) -> ir.MDValue:
    """A fresh ``llvm.loop`` node that keeps one loop scalar.

    LLVM vectorises a loop of fewer than ``VECTOR_MIN_TRIP_COUNT`` known iterations only by
    folding it into masked loads and stores, and AVX2's ``vmaskmov`` is microcoded on AMD Zen
    (a (32, 5) + (5,) add is several times slower that way than as a scalar loop)."""
    off = module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"), ir.Constant(I1, 0)])
    # the first operand of a loop id is the node itself; a unique placeholder keeps
    # add_metadata from handing back another loop's node before it is patched
    node = module.add_metadata([ir.MetaDataString(module, f"graphc.loop.{len(module.metadata)}"), off])
    node.operands = (node, off)
    return node


@contextlib.contextmanager
def for_range(b: ir.IRBuilder, count: ir.Value, name: str = "i") -> Iterator[ir.Value]:
    """``for (i = 0; i < count; ++i)``: a canonical loop the LLVM vectoriser recognises
    (kept scalar when ``count`` is a constant under ``VECTOR_MIN_TRIP_COUNT``, except 4, which
    a 4-lane vector takes whole without masks)."""
    pre = b.block
    header = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name=name)
    i.add_incoming(const_i64(0), pre)
    b.cbranch(b.icmp_signed("<", i, count), body, end)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, const_i64(1), name=f"{name}.next", flags=("nsw",))
    i.add_incoming(nxt, b.block)
    latch = b.branch(header)
    if isinstance(count, ir.Constant) and 0 < count.constant < VECTOR_MIN_TRIP_COUNT and count.constant != 4:
        latch.set_metadata("llvm.loop", _scalar_loop_id(b.module))
    b.position_at_end(end)


def gep(b: ir.IRBuilder, ptr: ir.Value, index: ir.Value) -> ir.Value:
    """``&ptr[index]`` (GEP, never integer arithmetic on addresses: LLVM 22 miscompiles that)."""
    return b.gep(ptr, [index], inbounds=True)


class SizeEmitter:
    """Emits the runtime value of symbolic sizes (sympy expressions) as i64, cached."""

    def __init__(self, b: ir.IRBuilder, symbols: Mapping[sympy.Symbol, ir.Value]):
        self.b = b
        self.symbols = symbols
        self.cache: dict = {}

    def __call__(self, expr) -> ir.Value:
        if isinstance(expr, int):
            return const_i64(expr)
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return const_i64(int(expr))
        if expr in self.cache:
            return self.cache[expr]
        value = self._emit(expr)
        self.cache[expr] = value
        return value

    def _emit(self, e: sympy.Expr) -> ir.Value:
        b = self.b
        if e.is_Symbol:
            return self.symbols[e]
        if isinstance(e, sympy.floor):
            num, den = sympy.fraction(sympy.together(e.args[0]))
            return self._floordiv(self(num), self(den))
        if isinstance(e, sympy.ceiling):
            num, den = sympy.fraction(sympy.together(-e.args[0]))
            return b.sub(const_i64(0), self._floordiv(self(num), self(den)))
        if isinstance(e, (sympy.Max, sympy.Min)):
            vals = [self(a) for a in e.args]
            out = vals[0]
            for v in vals[1:]:
                pick = b.icmp_signed(">" if isinstance(e, sympy.Max) else "<", out, v)
                out = b.select(pick, out, v)
            return out
        num, den = sympy.fraction(sympy.together(e))
        if den != 1:
            return b.sdiv(self(sympy.expand(num)), self(den))
        if e.is_Add:
            out = self(e.args[0])
            for a in e.args[1:]:
                out = b.add(out, self(a))
            return out
        if e.is_Mul:
            out = self(e.args[0])
            for a in e.args[1:]:
                out = b.mul(out, self(a))
            return out
        if e.is_Pow and e.exp.is_Integer and int(e.exp) >= 0:
            base = self(e.base)
            out = const_i64(1)
            for _ in range(int(e.exp)):
                out = b.mul(out, base)
            return out
        if isinstance(e, sympy.Mod):
            a, m = self(e.args[0]), self(e.args[1])
            r = b.srem(a, m)
            return b.select(b.icmp_signed("<", r, const_i64(0)), b.add(r, m), r)
        raise NotImplementedError(f"cannot emit the size expression {e}")

    def _floordiv(self, a: ir.Value, d: ir.Value) -> ir.Value:
        b = self.b
        q = b.sdiv(a, d)
        r = b.srem(a, d)
        fix = b.and_(b.icmp_signed("!=", r, const_i64(0)),
                     b.icmp_signed("!=", b.icmp_signed("<", r, const_i64(0)), b.icmp_signed("<", d, const_i64(0))))
        return b.sub(q, b.zext(fix, I64))
