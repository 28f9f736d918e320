"""Scalar semantics of the elementwise ops in LLVM IR (NumPy's, NaN included).

The loops around these are written by :mod:`graphc.lower.cpu`; LLVM's vectoriser widens
them. Transcendental functions come from :mod:`graphc.lower.mathlib` (IR polynomials, so the
code needs no libm and vectorises).
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir.ops import Op
from graphc.lower.irutil import F32, F64, I1, I8, I32, I64, LLVM_TYPE, MEM_TYPE
from graphc.lower.mathlib import math_function

MATH_NAMES = {
    Op.EXP: "exp", Op.EXPM1: "expm1", Op.LOG: "log", Op.LOG1P: "log1p", Op.SQRT: "sqrt",
    Op.SIN: "sin", Op.COS: "cos", Op.TANH: "tanh", Op.SIGMOID: "sigmoid", Op.SOFTPLUS: "softplus",
    Op.ERF: "erf",
}
FCMP = {Op.EQ: "==", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
ICMP = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}


def is_float_type(t: ir.Type) -> bool:
    return isinstance(t, (ir.FloatType, ir.DoubleType))


def intrinsic(module: ir.Module, name: str, ty: ir.Type, nargs: int = 1) -> ir.Function:
    """A scalar LLVM intrinsic such as ``llvm.fabs.f32`` declared as a plain function."""
    suffix = {F32: "f32", F64: "f64", I32: "i32", I64: "i64"}[ty]
    full = f"llvm.{name}.{suffix}"
    if full in module.globals:
        return module.globals[full]
    return ir.Function(module, ir.FunctionType(ty, [ty] * nargs), full)


def load_value(b: ir.IRBuilder, ptr: ir.Value, dtype: str) -> ir.Value:
    """Load one element; bools are bytes in memory and i1 in registers."""
    v = b.load(ptr)
    return b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if dtype == "bool" else v


def store_value(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, dtype: str) -> None:
    b.store(b.zext(value, I8) if dtype == "bool" else value, ptr)


def constant(value, dtype: str) -> ir.Constant:
    ty = LLVM_TYPE[dtype]
    if dtype == "bool":
        return ir.Constant(I1, int(bool(value)))
    if dtype.startswith("int"):
        return ir.Constant(ty, int(value))
    return ir.Constant(ty, float(value))


def cast(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """NumPy's ``astype`` from ``src`` to ``dst``."""
    if src == dst:
        return v
    st, dt_ = LLVM_TYPE[src], LLVM_TYPE[dst]
    if dst == "bool":
        if is_float_type(st):
            return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
        return b.icmp_signed("!=", v, ir.Constant(st, 0))
    if src == "bool":
        return b.uitofp(v, dt_) if is_float_type(dt_) else b.zext(v, dt_)
    if is_float_type(st) and is_float_type(dt_):
        return b.fpext(v, dt_) if dst == "float64" else b.fptrunc(v, dt_)
    if is_float_type(st):
        return b.fptosi(v, dt_)
    if is_float_type(dt_):
        return b.sitofp(v, dt_)
    return b.sext(v, dt_) if dt_.width > st.width else b.trunc(v, dt_)


def unary(b: ir.IRBuilder, op: Op, x: ir.Value, dtype: str) -> ir.Value:
    """``op(x)`` for one element of ``dtype`` (the input's dtype; CAST is handled apart)."""
    ty = LLVM_TYPE[dtype]
    module = b.module
    fl = is_float_type(ty)
    if op is Op.NEG:
        return b.fneg(x) if fl else b.sub(ir.Constant(ty, 0), x)
    if op is Op.ABS:
        if dtype == "bool":
            return x
        if fl:
            return b.call(intrinsic(module, "fabs", ty), [x])
        return b.select(b.icmp_signed("<", x, ir.Constant(ty, 0)), b.sub(ir.Constant(ty, 0), x), x)
    if op is Op.SIGN:
        zero = ir.Constant(ty, 0.0 if fl else 0)
        one, minus = ir.Constant(ty, 1.0 if fl else 1), ir.Constant(ty, -1.0 if fl else -1)
        if fl:
            pos, neg = b.fcmp_ordered(">", x, zero), b.fcmp_ordered("<", x, zero)
            return b.select(pos, one, b.select(neg, minus, b.fmul(x, zero)))  # keeps NaN, gives +-0
        return b.select(b.icmp_signed(">", x, zero), one, b.select(b.icmp_signed("<", x, zero), minus, zero))
    if op in MATH_NAMES:
        return b.call(math_function(module, MATH_NAMES[op], ty), [x])
    if op is Op.RELU:
        zero = ir.Constant(ty, 0.0 if fl else 0)
        less = b.fcmp_ordered("<", x, zero) if fl else b.icmp_signed("<", x, zero)
        return b.select(less, zero, x)
    if op in (Op.FLOOR, Op.CEIL, Op.ROUND):
        if not fl:
            return x
        name = {Op.FLOOR: "floor", Op.CEIL: "ceil", Op.ROUND: "rint"}[op]
        return b.call(intrinsic(module, name, ty), [x])
    if op is Op.NOT:
        return b.xor(x, ir.Constant(I1, 1))
    raise CompileError(f"no scalar lowering for {op.value}")


def binary(b: ir.IRBuilder, op: Op, x: ir.Value, y: ir.Value, dtype: str) -> ir.Value:
    """``op(x, y)`` for elements of the inputs' common ``dtype``."""
    ty = LLVM_TYPE[dtype]
    fl = is_float_type(ty)
    module = b.module
    if op is Op.ADD:
        return b.fadd(x, y) if fl else b.add(x, y)
    if op is Op.SUB:
        return b.fsub(x, y) if fl else b.sub(x, y)
    if op is Op.MUL:
        return b.fmul(x, y) if fl else b.mul(x, y)
    if op is Op.DIV:
        return b.fdiv(x, y)
    if op is Op.POW:
        if fl:
            return b.call(math_function(module, "pow", ty), [x, y])
        return _int_pow(b, x, y, ty)
    if op in (Op.MAXIMUM, Op.MINIMUM):
        if fl:  # NumPy propagates NaN: llvm.maximum/minimum do too
            return b.call(intrinsic(module, "maximum" if op is Op.MAXIMUM else "minimum", ty, 2), [x, y])
        if dtype == "bool":
            return b.or_(x, y) if op is Op.MAXIMUM else b.and_(x, y)
        pick = b.icmp_signed(">" if op is Op.MAXIMUM else "<", x, y)
        return b.select(pick, x, y)
    if op is Op.NE:
        return b.fcmp_unordered("!=", x, y) if fl else b.icmp_unsigned("!=", x, y)
    if op in FCMP or op in ICMP:
        if fl:
            return b.fcmp_ordered(FCMP[op], x, y)
        if dtype == "bool":
            return b.icmp_unsigned(ICMP[op], x, y)
        return b.icmp_signed(ICMP[op], x, y)
    if op is Op.AND:
        return b.and_(x, y)
    if op is Op.OR:
        return b.or_(x, y)
    if op is Op.XOR:
        return b.xor(x, y)
    raise CompileError(f"no scalar lowering for {op.value}")


def _int_pow(b: ir.IRBuilder, x: ir.Value, y: ir.Value, ty: ir.IntType) -> ir.Value:
    """Integer power by squaring, branch-free over 64 (or 32) exponent bits."""
    result = ir.Constant(ty, 1)
    base = x
    for bit in range(ty.width - 1):
        set_ = b.icmp_unsigned("!=", b.and_(b.lshr(y, ir.Constant(ty, bit)), ir.Constant(ty, 1)), ir.Constant(ty, 0))
        result = b.select(set_, b.mul(result, base), result)
        base = b.mul(base, base)
    return result


def where(b: ir.IRBuilder, c: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(c, x, y)


EmitFn = Callable[..., ir.Value]
