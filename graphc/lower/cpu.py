"""LLVM IR for the CPU: one internal kernel function per step, and an entry function that
lays out the workspace and calls the kernels in order.

Entry ABI (see docs/architecture.md)::

    i32 <name>_run(i8** args, i64* syms, i8* workspace)   args: inputs, shared, consts, outputs
    i64 <name>_workspace_size(i64* syms)

A kernel is ``i32 k<i>(i8* noalias out, i8* noalias in..., i64* syms)`` and returns 0, or an
error code (1: an index out of range). ``LOWER[op]`` emits the body of a kernel for a node.
"""
from __future__ import annotations

from typing import Callable

import sympy
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir.infer import broadcast_shapes
from graphc.ir.ops import ELEMENTWISE, Op
from graphc.ir.shapes import Dim, as_dim, size_of
from graphc.lower import scalar
from graphc.lower.irutil import (F32, F64, I8P, I32, I64, LLVM_TYPE, MEM_TYPE, REDUCE_FLAGS,
                                 SizeEmitter, const_i64, for_range, gep)
from graphc.lower.loops import broadcast_strides, contiguous_strides, emit_nest
from graphc.lower.schedule import ITEMSIZE, Buffer, Program, Step

ERR_INDEX = 1
WORKSPACE_ALIGN = 64


class KernelOps:
    """Element access helpers shared by CPU and GPU kernels (they need ``self.b``,
    ``self.fn`` and ``self.size``)."""

    def typed(self, ptr: ir.Value, dtype: str) -> ir.Value:
        return self.b.bitcast(ptr, MEM_TYPE[dtype].as_pointer())

    def alloca(self, ty: ir.Type, init: ir.Value) -> ir.Value:
        """A local in the entry block (mem2reg turns it into a register)."""
        with self.b.goto_entry_block():
            self.b.position_at_start(self.fn.entry_basic_block)
            slot = self.b.alloca(ty)
        self.b.store(init, slot)
        return slot

    def load(self, ptr: ir.Value, offset: ir.Value, dtype: str) -> ir.Value:
        return scalar.load_value(self.b, gep(self.b, ptr, offset), dtype)

    def store(self, value: ir.Value, ptr: ir.Value, offset: ir.Value, dtype: str) -> None:
        scalar.store_value(self.b, value, gep(self.b, ptr, offset), dtype)

    def fill(self, ptr: ir.Value, count: Dim, value: ir.Value, dtype: str) -> None:
        with for_range(self.b, self.size(count), "fill") as i:
            self.store(value, ptr, i, dtype)


class Kernel(KernelOps):
    """What an op's emitter works with: the builder, typed pointers, and symbolic sizes."""

    def __init__(self, module: ir.Module, name: str, step: Step, symbols: list[sympy.Symbol]):
        n_ptrs = 1 + len(step.ins)
        fnty = ir.FunctionType(I32, [I8P] * n_ptrs + [I64.as_pointer()])
        self.fn = ir.Function(module, fnty, name)
        self.fn.linkage = "internal"
        # Inlining every kernel into the entry function made one huge function whose code
        # generation is superlinear (an LSTM training step: 12 s instead of 2.7 s); a call per
        # kernel costs nanoseconds.
        self.fn.attributes.add("noinline")
        for arg in self.fn.args[:n_ptrs]:
            arg.add_attribute("noalias")
        entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.step = step
        self.node = step.node
        syms_ptr = self.fn.args[-1]
        self.symbols = {s: self.b.load(gep(self.b, syms_ptr, const_i64(i)), name=s.name)
                        for i, s in enumerate(symbols)}
        self.size = SizeEmitter(self.b, self.symbols)
        self.out = self.typed(self.fn.args[0], step.out.dtype)
        # An in-place update reads the variable it writes through the output pointer: one
        # pointer, so LLVM sees each element loaded and then stored (see schedule._update_in_place).
        self.ins = [self.out if step.in_place and buf.root() is step.out else self.typed(a, buf.dtype)
                    for a, buf in zip(self.fn.args[1:n_ptrs], step.ins)]
        self.fail = self.fn.append_basic_block("fail")
        with self.b.goto_block(self.fail):
            self.b.ret(ir.Constant(I32, ERR_INDEX))


# ----------------------------------------------------------------------------- elementwise
def _expr_value(k: Kernel, expr: tuple, args: list[ir.Value], arg_dtypes: list[str]) -> tuple[ir.Value, str]:
    kind = expr[0]
    if kind == "in":
        return args[expr[1]], arg_dtypes[expr[1]]
    if kind == "const":
        return scalar.constant(expr[1], expr[2]), expr[2]
    _, op, sub, dtype = expr
    vals = [_expr_value(k, e, args, arg_dtypes) for e in sub]
    b = k.b
    if op is Op.CAST:
        return scalar.cast(b, vals[0][0], vals[0][1], dtype), dtype
    if op is Op.WHERE:
        return b.select(vals[0][0], vals[1][0], vals[2][0]), dtype
    if len(vals) == 1:
        return scalar.unary(b, op, vals[0][0], vals[0][1]), dtype
    return scalar.binary(b, op, vals[0][0], vals[1][0], vals[0][1]), dtype


REDUCE_IDENTITY = {"sum": 0, "prod": 1, "max": float("-inf"), "min": float("inf")}


def _identity(kind: str, dtype: str) -> ir.Constant:
    v = REDUCE_IDENTITY[kind]
    if dtype.startswith("int"):
        bits = 32 if dtype == "int32" else 64
        v = {"max": -(1 << (bits - 1)), "min": (1 << (bits - 1)) - 1}.get(kind, v)
    return scalar.constant(v, dtype)


def _combine(k: Kernel, kind: str, acc: ir.Value, v: ir.Value, dtype: str) -> ir.Value:
    b = k.b
    fl = dtype.startswith("float")
    if kind == "sum":
        return b.fadd(acc, v, flags=REDUCE_FLAGS) if fl else b.add(acc, v)
    if kind == "prod":
        return b.fmul(acc, v, flags=REDUCE_FLAGS) if fl else b.mul(acc, v)
    return scalar.binary(b, Op.MAXIMUM if kind == "max" else Op.MINIMUM, acc, v, dtype)


def emit_elementwise(k: Kernel, expr: tuple, reduce_axes, reduce_kind: str = "sum") -> None:
    """One loop nest over the broadcast shape computing ``expr``; with ``reduce_axes``, the
    values are accumulated into the output instead of stored."""
    node = k.node
    full = broadcast_shapes(node.op, node.inputs) if node.inputs else ()
    in_strides = [broadcast_strides(i.shape, full) for i in node.inputs]
    if reduce_axes is None:
        out_strides = contiguous_strides(full)
    else:
        kept = [d for a, d in enumerate(full) if a not in reduce_axes]
        kept_strides = iter(contiguous_strides(kept))
        out_strides = [0 if a in reduce_axes else next(kept_strides) for a in range(len(full))]
        k.fill(k.out, size_of(node.shape), _identity(reduce_kind, node.dtype), node.dtype)
    dtypes = [i.dtype for i in node.inputs]

    def body(offsets: list[ir.Value]) -> None:
        args = [k.load(p, off, dt) for p, off, dt in zip(k.ins, offsets, dtypes)]
        value, _ = _expr_value(k, expr, args, dtypes)
        if reduce_axes is None:
            k.store(value, k.out, offsets[-1], node.dtype)
        else:
            acc = k.load(k.out, offsets[-1], node.dtype)
            k.store(_combine(k, reduce_kind, acc, value, node.dtype), k.out, offsets[-1], node.dtype)

    emit_nest(k.b, k.size, full, in_strides + [out_strides], [const_i64(0)] * (len(dtypes) + 1), body)


def _lower_elementwise(k: Kernel) -> None:
    node = k.node
    expr = ("op", node.op, tuple(("in", i) for i in range(len(node.inputs))), node.dtype)
    emit_elementwise(k, expr, None)


def _lower_fused(k: Kernel) -> None:
    emit_elementwise(k, k.node.attrs["expr"], k.node.attrs["reduce_axes"])


def _lower_reduce(kind: str) -> Callable[[Kernel], None]:
    def lower(k: Kernel) -> None:
        emit_elementwise(k, ("in", 0), k.node.attrs["axes"], kind)
    return lower


def _lower_arg_reduce(k: Kernel) -> None:
    node = k.node
    (x,) = node.inputs
    axis = node.attrs["axis"]
    b = k.b
    outer = k.size(size_of(x.shape[:axis]))
    n = k.size(x.shape[axis])
    inner = k.size(size_of(x.shape[axis + 1:]))
    is_max = node.op is Op.ARGMAX
    ty = LLVM_TYPE[x.dtype]
    fl = x.dtype.startswith("float")
    with for_range(b, outer, "o") as o:
        with for_range(b, inner, "j") as j:
            base = b.add(b.mul(b.mul(o, n), inner), j)
            best = k.alloca(ty, k.load(k.ins[0], base, x.dtype))
            best_i = k.alloca(I64, const_i64(0))
            with for_range(b, n, "r") as r:
                v = k.load(k.ins[0], b.add(base, b.mul(r, inner)), x.dtype)
                cur = b.load(best)
                if fl:  # the first NaN wins, as in NumPy
                    better = b.fcmp_ordered(">" if is_max else "<", v, cur)
                    better = b.or_(better, b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", cur, cur)))
                elif x.dtype == "bool":
                    better = b.icmp_unsigned(">" if is_max else "<", v, cur)
                else:
                    better = b.icmp_signed(">" if is_max else "<", v, cur)
                b.store(b.select(better, v, cur), best)
                b.store(b.select(better, r, b.load(best_i)), best_i)
            k.store(b.load(best_i), k.out, b.add(b.mul(o, inner), j), "int64")


# ----------------------------------------------------------------------------- matmul
def _lower_matmul(k: Kernel) -> None:
    from graphc.lower.gemm import lower_matmul  # packed, vectorised GEMM (graphc/lower/gemm.py)
    lower_matmul(k)


# ----------------------------------------------------------------------------- data movement
def emit_copy(k: Kernel, src: ir.Value, dst: ir.Value, dims, src_strides, dst_strides, dtype: str,
              src_base: Dim = 0, dst_base: Dim = 0) -> None:
    """``dst[dst_base + i.dst_strides] = src[src_base + i.src_strides]`` over ``dims``."""
    def body(offsets: list[ir.Value]) -> None:
        k.store(k.load(src, offsets[0], dtype), dst, offsets[1], dtype)
    emit_nest(k.b, k.size, dims, [list(src_strides), list(dst_strides)], [k.size(src_base), k.size(dst_base)], body)


def _lower_transpose(k: Kernel) -> None:
    (x,) = k.node.inputs
    perm = k.node.attrs["perm"]
    own = contiguous_strides(x.shape)
    emit_copy(k, k.ins[0], k.out, k.node.shape, [own[p] for p in perm], contiguous_strides(k.node.shape), x.dtype)


def _lower_broadcast(k: Kernel) -> None:
    (x,) = k.node.inputs
    emit_copy(k, k.ins[0], k.out, k.node.shape, broadcast_strides(x.shape, k.node.shape),
              contiguous_strides(k.node.shape), x.dtype)


def _lower_slice(k: Kernel) -> None:
    (x,) = k.node.inputs
    a = k.node.attrs
    own = contiguous_strides(x.shape)
    base = as_dim(sum((as_dim(bg * s) for bg, s in zip(a["begin"], own)), start=0))
    emit_copy(k, k.ins[0], k.out, k.node.shape, [as_dim(s * st) for s, st in zip(own, a["step"])],
              contiguous_strides(k.node.shape), x.dtype, src_base=base)


def _lower_concat(k: Kernel) -> None:
    axis = k.node.attrs["axis"]
    out_str = contiguous_strides(k.node.shape)
    start: Dim = 0
    for ptr, x in zip(k.ins, k.node.inputs):
        emit_copy(k, ptr, k.out, x.shape, contiguous_strides(x.shape), out_str, x.dtype,
                  dst_base=as_dim(start * out_str[axis]))
        start = as_dim(start + x.shape[axis])


def _lower_pad(k: Kernel) -> None:
    (x,) = k.node.inputs
    a = k.node.attrs
    out_str = contiguous_strides(k.node.shape)
    k.fill(k.out, size_of(k.node.shape), scalar.constant(a["value"], x.dtype), x.dtype)
    base = as_dim(sum((as_dim(lo * s) for lo, s in zip(a["lo"], out_str)), start=0))
    emit_copy(k, k.ins[0], k.out, x.shape, contiguous_strides(x.shape),
              [as_dim(s * (m + 1)) for s, m in zip(out_str, a["interior"])], x.dtype, dst_base=base)


def _index(k: Kernel, idx_ptr: ir.Value, j: ir.Value, idx_dtype: str, size: ir.Value) -> ir.Value:
    """Load an index, wrap a negative one, and jump to the kernel's failure exit if out of range."""
    b = k.b
    v = k.load(idx_ptr, j, idx_dtype)
    if idx_dtype == "int32":
        v = b.sext(v, I64)
    v = b.select(b.icmp_signed("<", v, const_i64(0)), b.add(v, size), v)
    bad = b.or_(b.icmp_signed("<", v, const_i64(0)), b.icmp_signed(">=", v, size))
    ok = b.append_basic_block("idx.ok")
    b.cbranch(bad, k.fail, ok)
    b.position_at_end(ok)
    return v


def _lower_take(k: Kernel) -> None:
    x, idx = k.node.inputs
    axis = k.node.attrs["axis"]
    b = k.b
    outer, d = k.size(size_of(x.shape[:axis])), k.size(x.shape[axis])
    inner, count = k.size(size_of(x.shape[axis + 1:])), k.size(size_of(idx.shape))
    with for_range(b, outer, "o") as o:
        with for_range(b, count, "t") as j:
            v = _index(k, k.ins[1], j, idx.dtype, d)
            src = b.mul(b.add(b.mul(o, d), v), inner)
            dst = b.mul(b.add(b.mul(o, count), j), inner)
            with for_range(b, inner, "c") as i:
                k.store(k.load(k.ins[0], b.add(src, i), x.dtype), k.out, b.add(dst, i), x.dtype)


def _lower_scatter_add(k: Kernel) -> None:
    upd, idx = k.node.inputs
    axis = k.node.attrs["axis"]
    b = k.b
    dt_ = k.node.dtype
    k.fill(k.out, size_of(k.node.shape), scalar.constant(0, dt_), dt_)
    outer, size = k.size(size_of(upd.shape[:axis])), k.size(k.node.attrs["size"])
    count = k.size(size_of(idx.shape))
    inner = k.size(size_of(upd.shape[axis + idx.ndim:]))
    with for_range(b, outer, "o") as o:
        with for_range(b, count, "t") as j:
            v = _index(k, k.ins[1], j, idx.dtype, size)
            dst = b.mul(b.add(b.mul(o, size), v), inner)
            src = b.mul(b.add(b.mul(o, count), j), inner)
            with for_range(b, inner, "c") as i:
                cur = k.load(k.out, b.add(dst, i), dt_)
                k.store(_combine(k, "sum", cur, k.load(k.ins[0], b.add(src, i), dt_), dt_), k.out, b.add(dst, i), dt_)


# ----------------------------------------------------------------------------- softmax
def _lower_softmax(k: Kernel) -> None:
    node = k.node
    (x,) = node.inputs
    axis = node.attrs["axis"]
    b = k.b
    dt_ = node.dtype
    ty = LLVM_TYPE[dt_]
    outer = k.size(size_of(x.shape[:axis]))
    n = k.size(x.shape[axis])
    inner_dim = size_of(x.shape[axis + 1:])
    inner = k.size(inner_dim)
    exp = scalar.MATH_NAMES[Op.EXP]
    from graphc.lower.mathlib import math_function
    exp_fn = math_function(b.module, exp, ty)
    log_fn = math_function(b.module, "log", ty)
    log = node.op is Op.LOG_SOFTMAX
    with for_range(b, outer, "o") as o:
        with for_range(b, inner, "j") as j:
            base = b.add(b.mul(b.mul(o, n), inner), j)
            at = (lambda r: b.add(base, r)) if inner_dim == 1 else (lambda r: b.add(base, b.mul(r, inner)))
            mx = k.alloca(ty, ir.Constant(ty, float("-inf")))
            with for_range(b, n, "m") as r:
                b.store(scalar.binary(b, Op.MAXIMUM, b.load(mx), k.load(k.ins[0], at(r), dt_), dt_), mx)
            m = b.load(mx)
            m = b.select(b.fcmp_ordered("==", m, ir.Constant(ty, float("-inf"))), ir.Constant(ty, 0.0), m)
            total = k.alloca(ty, ir.Constant(ty, 0.0))
            with for_range(b, n, "s") as r:
                e = b.call(exp_fn, [b.fsub(k.load(k.ins[0], at(r), dt_), m)])
                if not log:
                    k.store(e, k.out, at(r), dt_)
                b.store(b.fadd(b.load(total), e, flags=REDUCE_FLAGS), total)
            if log:
                shift = b.fadd(m, b.call(log_fn, [b.load(total)]))
                with for_range(b, n, "w") as r:
                    k.store(b.fsub(k.load(k.ins[0], at(r), dt_), shift), k.out, at(r), dt_)
            else:
                inv = b.fdiv(ir.Constant(ty, 1.0), b.load(total))
                with for_range(b, n, "w") as r:
                    k.store(b.fmul(k.load(k.out, at(r), dt_), inv), k.out, at(r), dt_)


# ----------------------------------------------------------------------------- leaves
def _splitmix(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    def c(v: int) -> ir.Constant:
        return ir.Constant(I64, v - (1 << 64) if v >= 1 << 63 else v)
    z = b.add(x, c(0x9E3779B97F4A7C15))
    z = b.mul(b.xor(z, b.lshr(z, c(30))), c(0xBF58476D1CE4E5B9))
    z = b.mul(b.xor(z, b.lshr(z, c(27))), c(0x94D049BB133111EB))
    return b.xor(z, b.lshr(z, c(31)))


def random_key(b: ir.IRBuilder, seed: int, step: ir.Value) -> ir.Value:
    """The stream key of a random op for this call (see graphc.interp.random_bits)."""
    return _splitmix(b, b.xor(const_i64(seed), _splitmix(b, step)))


def random_value(b: ir.IRBuilder, attrs, dtype: str, key: ir.Value, i: ir.Value) -> ir.Value:
    """Sample ``i`` of a RANDOM node's stream, bit-for-bit as graphc.interp.random_values."""
    from graphc.lower.mathlib import math_function
    a = attrs
    if a["dist"] == "uniform":
        bits = _splitmix(b, b.add(key, i))
        if dtype == "float32":
            u = b.fmul(b.uitofp(b.lshr(bits, const_i64(40)), F32), ir.Constant(F32, 2.0 ** -24))
            return b.fadd(ir.Constant(F32, a["a"]), b.fmul(ir.Constant(F32, a["b"] - a["a"]), u))
        u = b.fmul(b.uitofp(b.lshr(bits, const_i64(11)), F64), ir.Constant(F64, 2.0 ** -53))
        return b.fadd(ir.Constant(F64, a["a"]), b.fmul(ir.Constant(F64, a["b"] - a["a"]), u))
    two_i = b.mul(i, const_i64(2))
    b1 = _splitmix(b, b.add(key, two_i))
    b2 = _splitmix(b, b.add(key, b.add(two_i, const_i64(1))))
    u1 = b.fmul(b.fadd(b.uitofp(b.lshr(b1, const_i64(11)), F64), ir.Constant(F64, 1.0)), ir.Constant(F64, 2.0 ** -53))
    u2 = b.fmul(b.uitofp(b.lshr(b2, const_i64(11)), F64), ir.Constant(F64, 2.0 ** -53))
    log_u1 = b.call(math_function(b.module, "log", F64), [u1])
    r = b.call(math_function(b.module, "sqrt", F64), [b.fmul(ir.Constant(F64, -2.0), log_u1)])
    cos = b.call(math_function(b.module, "cos", F64), [b.fmul(ir.Constant(F64, 6.283185307179586), u2)])
    v = b.fadd(ir.Constant(F64, a["a"]), b.fmul(ir.Constant(F64, a["b"]), b.fmul(r, cos)))
    return b.fptrunc(v, F32) if dtype == "float32" else v


def _lower_random(k: Kernel) -> None:
    from graphc.ir.shapes import RNG_STEP
    node = k.node
    a = node.attrs
    b = k.b
    n = k.size(size_of(node.shape))
    key = random_key(b, a["seed"], k.symbols[RNG_STEP])
    with for_range(b, n, "r") as i:
        k.store(random_value(b, a, node.dtype, key, i), k.out, i, node.dtype)


def _kernel_offsets(attrs) -> list[tuple[int, ...]]:
    import itertools
    return list(itertools.product(*[range(n) for n in attrs["ksize"]]))


def _window_rows(k: Kernel, image, cols, body: Callable[[ir.Value, ir.Value, ir.Value], None]) -> None:
    """For each row of the columns (an output position, in order) and each kernel offset:
    ``body(image_offset, column_offset, channels)`` with the element offsets of that offset's
    ``channels`` values in the image and in the row of columns."""
    a = k.node.attrs
    xs, cs = contiguous_strides(image.shape), contiguous_strides(cols.shape)
    img = [xs[0]] + [as_dim(xs[1 + i] * st) for i, st in enumerate(a["strides"])]
    offsets = [k.size(as_dim(sum(o * d * xs[1 + j] for j, (o, d) in enumerate(zip(offs, a["dilation"])))))
               for offs in _kernel_offsets(a)]
    channels = k.size(image.shape[-1])

    def row(bases: list[ir.Value]) -> None:
        for i, img_off in enumerate(offsets):
            body(k.b.add(bases[0], img_off), k.b.add(bases[1], k.b.mul(const_i64(i), channels)), channels)
    emit_nest(k.b, k.size, cols.shape[:-1], [img, list(cs[:-1])], [const_i64(0)] * 2, row)


def _lower_patches(k: Kernel) -> None:
    """im2col, a row of columns at a time: for each output position, the kernel offsets copy
    their channels side by side, so each row is written once, whole (an offset at a time over
    all positions wrote every cache line of the columns once per offset: twice the time)."""
    x = k.node.inputs[0]
    b = k.b

    def copy(img_off, col_off, channels):
        src, dst = gep(b, k.ins[0], img_off), gep(b, k.out, col_off)
        with for_range(b, channels, "ch") as ch:
            k.store(k.load(src, ch, x.dtype), dst, ch, x.dtype)
    _window_rows(k, x, k.node, copy)


def _lower_patches_adjoint(k: Kernel) -> None:
    """col2im: zeros, then the rows of columns in order, each offset's channels added into the
    image where its window put them. The columns are read once, in order, and the few image
    rows a row of windows touches stay in L1 (an offset at a time over all positions read and
    wrote the whole image once per offset: 6 ms for the MNIST convnet's first layer)."""
    node = k.node
    dtype = node.dtype
    b = k.b
    k.fill(k.out, size_of(node.shape), scalar.constant(0, dtype), dtype)

    def add(img_off, col_off, channels):
        src, dst = gep(b, k.ins[0], col_off), gep(b, k.out, img_off)
        with for_range(b, channels, "acc") as ch:
            k.store(scalar.binary(b, Op.ADD, k.load(dst, ch, dtype), k.load(src, ch, dtype), dtype), dst, ch, dtype)
    _window_rows(k, node, node.inputs[0], add)


def _lower_dim(k: Kernel) -> None:
    k.store(k.size(k.node.attrs["expr"]), k.out, const_i64(0), "int64")


LOWER: dict[Op, Callable[[Kernel], None]] = {
    **{op: _lower_elementwise for op in ELEMENTWISE},
    Op.FUSED: _lower_fused,
    Op.SUM: _lower_reduce("sum"),
    Op.PROD: _lower_reduce("prod"),
    Op.MAX: _lower_reduce("max"),
    Op.MIN: _lower_reduce("min"),
    Op.ARGMAX: _lower_arg_reduce,
    Op.ARGMIN: _lower_arg_reduce,
    Op.MATMUL: _lower_matmul,
    Op.TRANSPOSE: _lower_transpose,
    Op.BROADCAST: _lower_broadcast,
    Op.SLICE: _lower_slice,
    Op.CONCAT: _lower_concat,
    Op.PAD: _lower_pad,
    Op.TAKE: _lower_take,
    Op.SCATTER_ADD: _lower_scatter_add,
    Op.SOFTMAX: _lower_softmax,
    Op.LOG_SOFTMAX: _lower_softmax,
    Op.RANDOM: _lower_random,
    Op.DIM: _lower_dim,
    Op.PATCHES: _lower_patches,
    Op.PATCHES_ADJOINT: _lower_patches_adjoint,
}

# Ops with no kernel of their own, and why.
NOT_LOWERED: dict[Op, str] = {
    Op.PLACEHOLDER: "an argument of the entry function",
    Op.SHARED: "an argument of the entry function",
    Op.CONSTANT: "an argument of the entry function",
    Op.RESHAPE: "a view: aliases its input's buffer",
    Op.SCAN: "a loop in the entry function around its body's kernels (_Entry.emit_loop)",
    Op.SCAN_OUTPUT: "a buffer its SCAN step writes",
}


# ----------------------------------------------------------------------------- the module
def _lower_copy(k: Kernel) -> None:
    src = k.step.ins[0]
    k_dtype = src.dtype
    n = size_of(k.step.out.shape)
    with for_range(k.b, k.size(n), "c") as i:
        k.store(k.load(k.ins[0], i, k_dtype), k.out, i, k_dtype)


def _workspace_layout(b: ir.IRBuilder, size: SizeEmitter, slots: list[Dim]) -> tuple[list[ir.Value], ir.Value]:
    offsets = []
    total = const_i64(0)
    for nbytes in slots:
        offsets.append(total)
        aligned = b.mul(b.sdiv(b.add(size(nbytes), const_i64(WORKSPACE_ALIGN - 1)), const_i64(WORKSPACE_ALIGN)),
                        const_i64(WORKSPACE_ALIGN))
        total = b.add(total, aligned)
    return offsets, total


def _emit_kernels(module: ir.Module, program: Program, prefix: str, symbols: list[sympy.Symbol],
                  options, part: tuple[int, int] | None = None, counter: list | None = None) -> list:
    """One kernel function per step (for a loop, the list of its body's kernels). With
    ``part=(i, n)`` only every n-th kernel (from the i-th, counting through loop bodies) is
    defined, with external linkage; the others are declared, to be linked from the other parts."""
    counter = counter if counter is not None else [0]
    kernels: list = []
    for i, step in enumerate(program.steps):
        if step.kind == "scan":
            kernels.append(_emit_kernels(module, step.body, f"{prefix}_s{i}", symbols, options, part, counter))
            continue
        name = f"{prefix}_k{i}"
        index = counter[0]
        counter[0] += 1
        if part is not None and index % part[1] != part[0]:
            fnty = ir.FunctionType(I32, [I8P] * (1 + len(step.ins)) + [I64.as_pointer()])
            kernels.append(ir.Function(module, fnty, name))  # defined by another part
            continue
        k = Kernel(module, name, step, symbols)
        if part is not None:
            k.fn.linkage = "external"
        k.options = options
        if step.kind == "copy":
            _lower_copy(k)
        else:
            emitter = LOWER.get(step.node.op)
            if emitter is None:
                raise CompileError(f"no native lowering for {step.node.op.value}")
            emitter(k)
        k.b.ret(ir.Constant(I32, 0))
        kernels.append(k.fn)
    return kernels


class _Entry:
    """Emits the entry function's calls: the kernels in order, and a native loop per SCAN."""

    def __init__(self, b: ir.IRBuilder, fn: ir.Function, syms: ir.Value, symvals: dict, ws: ir.Value,
                 offsets: list[ir.Value], profile: ir.GlobalVariable | None = None):
        self.b, self.fn, self.syms, self.symvals, self.ws, self.offsets = b, fn, syms, symvals, ws, offsets
        self.profile = profile  # [2 x i64] per kernel: nanoseconds, calls (see profile_kernels)
        self.kernel_index = 0  # counts kernels as _emit_kernels does: through loop bodies
        self._ts: ir.Value | None = None  # the timespec the profiling clock reads into

    def _clock(self) -> ir.Value:
        """CLOCK_MONOTONIC in nanoseconds (a vDSO call: about 35 ns here)."""
        b = self.b
        module = b.module
        fn = module.globals.get("clock_gettime") or ir.Function(
            module, ir.FunctionType(I32, [I32, ir.ArrayType(I64, 2).as_pointer()]), "clock_gettime")
        ts = self._ts
        if ts is None:
            with b.goto_entry_block():
                b.position_at_start(self.fn.entry_basic_block)
                ts = self._ts = b.alloca(ir.ArrayType(I64, 2))
        b.call(fn, [ir.Constant(I32, 1), ts])
        sec = b.load(b.gep(ts, [ir.Constant(I32, 0), ir.Constant(I32, 0)]))
        nsec = b.load(b.gep(ts, [ir.Constant(I32, 0), ir.Constant(I32, 1)]))
        return b.add(b.mul(sec, const_i64(1_000_000_000)), nsec)

    def _count(self, index: int, start: ir.Value) -> None:
        b = self.b
        elapsed = b.sub(self._clock(), start)
        for field_, delta in ((0, elapsed), (1, const_i64(1))):
            slot = b.gep(self.profile, [ir.Constant(I32, 0), ir.Constant(I32, 2 * index + field_)])
            b.store(b.add(b.load(slot), delta), slot)

    def emit_steps(self, program: Program, kernels: list, param: Callable[[Buffer], ir.Value],
                   const: Callable[[Buffer], ir.Value], slot_base: int) -> None:
        """Call ``program``'s kernels; ``param`` gives the pointer of an input, shared or output
        buffer, ``const`` that of a constant; its workspace slots start at ``slot_base``."""
        b = self.b

        def pointer(buf: Buffer) -> ir.Value:
            root = buf.root()
            if root.kind == "workspace":
                return gep(b, self.ws, self.offsets[slot_base + root.slot])
            return const(root) if root.kind == "const" else param(root)

        for i, (step, fn) in enumerate(zip(program.steps, kernels)):
            if step.kind == "scan":
                self.emit_loop(step, fn, pointer, const, slot_base + step.slot_base)
                continue
            index = self.kernel_index
            self.kernel_index += 1
            start = self._clock() if self.profile is not None else None
            status = b.call(fn, [pointer(step.out)] + [pointer(x) for x in step.ins] + [self.syms])
            if self.profile is not None:
                self._count(index, start)
            ok = self.fn.append_basic_block("ok")
            fail = self.fn.append_basic_block("fail")
            b.cbranch(b.icmp_signed("==", status, ir.Constant(I32, 0)), ok, fail)
            with b.goto_block(fail):
                b.ret(status)
            b.position_at_end(ok)

    def emit_loop(self, step: Step, kernels: list, pointer: Callable[[Buffer], ir.Value],
                  const: Callable[[Buffer], ir.Value], slot_base: int) -> None:
        """``for t in range(length)``: point the body's parameters and outputs at row ``t`` (or
        ``length-1-t`` in reverse) and call its kernels. A stacked carry reads the previous row
        of its own output; a carry kept as its final value alternates between the output and a
        temporary so that the last step writes the output."""
        b = self.b
        a = step.node.attrs
        body = a["body"]
        nc, ns = len(body.carries), len(body.seqs)
        size = SizeEmitter(b, self.symvals)  # its values must dominate the loop: computed here

        def row_bytes(shape, dtype: str) -> ir.Value:
            return size(size_of(shape) * ITEMSIZE[dtype])

        ins = [pointer(x) for x in step.ins]
        outs = [pointer(o) for o in step.outs]
        temps = iter([pointer(t) for t in step.temps])
        carry_bytes = [row_bytes(c.shape, c.dtype) for c in body.carries]
        seq_bytes = [row_bytes(x.shape, x.dtype) for x in body.seqs]
        y_bytes = [row_bytes(y.shape, y.dtype) for y in body.ys]
        steps = size(a["length"])
        last = b.sub(steps, const_i64(1))
        temp_of = {k: next(temps) for k in range(nc) if not a["keep"][k]}
        with for_range(b, steps, "t") as t:
            idx = b.sub(last, t) if a["reverse"] else t
            prev = b.add(idx, const_i64(1)) if a["reverse"] else b.sub(idx, const_i64(1))
            first = b.icmp_signed("==", t, const_i64(0))
            # the step that writes the output of a final-only carry: (last - t) even
            even = b.icmp_signed("==", b.and_(b.sub(last, t), const_i64(1)), const_i64(0))
            params, results = [], []
            for k in range(nc):
                if a["keep"][k]:
                    results.append(gep(b, outs[k], b.mul(idx, carry_bytes[k])))
                    # at t == 0 the previous row does not exist: the select picks init
                    earlier = b.gep(outs[k], [b.mul(prev, carry_bytes[k])])
                else:
                    results.append(b.select(even, outs[k], temp_of[k]))
                    earlier = b.select(even, temp_of[k], outs[k])
                params.append(b.select(first, ins[k], earlier))
            params += [gep(b, ins[nc + j], b.mul(idx, seq_bytes[j])) for j in range(ns)]
            params += ins[nc + ns:]
            results += [gep(b, outs[nc + l], b.mul(idx, y_bytes[l])) for l in range(len(body.ys))]

            def body_param(buf: Buffer) -> ir.Value:
                return params[buf.index] if buf.kind == "input" else results[buf.index]
            self.emit_steps(step.body, kernels, body_param, const, slot_base)
        # no step at all: a final-only carry is its initial value
        empty = b.icmp_signed("==", steps, const_i64(0))
        with b.if_then(empty):
            for k in temp_of:
                with for_range(b, carry_bytes[k], "c0") as i:
                    b.store(b.load(gep(b, ins[k], i)), gep(b, outs[k], i))


def emit_module(program: Program, name: str, options=None, external_runtime: bool = False,
                part: tuple[int, int] | None = None) -> str:
    """The LLVM IR text of the program's kernels and its entry functions (``options``, a
    ``CompileOptions``, reaches the kernels: e.g. ``threads`` for the GEMM). With
    ``external_runtime`` the GEMMs are declared, not defined: the JIT links them from the
    runtime library (graphc/lower/runtime_library.py). With ``part=(i, n)`` the module holds
    only part i of n of the kernels (part 0 also the entry functions), so that n processes can
    compile one program (graphc/lower/executable.py)."""
    from graphc.lower.gemm import EXTERNAL_RUNTIME
    module = ir.Module(name=name if part is None else f"{name}_part{part[0]}")
    setattr(module, EXTERNAL_RUNTIME, external_runtime)
    if part is not None and part[0] > 0:
        _emit_kernels(module, program, name, program.symbols, options, part)
        return str(module)
    syms_t = I64.as_pointer()
    # workspace size
    ws_fn = ir.Function(module, ir.FunctionType(I64, [syms_t]), f"{name}_workspace_size")
    b = ir.IRBuilder(ws_fn.append_basic_block("entry"))
    symvals = {s: b.load(gep(b, ws_fn.args[0], const_i64(i))) for i, s in enumerate(program.symbols)}
    _, total = _workspace_layout(b, SizeEmitter(b, symvals), program.slots)
    b.ret(total)

    kernels = _emit_kernels(module, program, name, program.symbols, options, part)

    # entry
    run = ir.Function(module, ir.FunctionType(I32, [I8P.as_pointer(), syms_t, I8P]), f"{name}_run")
    args, syms, ws = run.args
    b = ir.IRBuilder(run.append_basic_block("entry"))
    symvals = {s: b.load(gep(b, syms, const_i64(i))) for i, s in enumerate(program.symbols)}
    offsets, _ = _workspace_layout(b, SizeEmitter(b, symvals), program.slots)
    base_index = {"input": 0, "shared": len(program.inputs)}
    base_index["const"] = base_index["shared"] + len(program.shared)
    base_index["output"] = base_index["const"] + len(program.consts)
    profile = None
    if options is not None and getattr(options, "profile", False):
        n = len(profile_kernels(program))
        profile = ir.GlobalVariable(module, ir.ArrayType(I64, 2 * max(n, 1)), f"{name}_profile")
        profile.initializer = ir.Constant(profile.type.pointee, None)
    entry = _Entry(b, run, syms, symvals, ws, offsets, profile)

    def argument(buf: Buffer) -> ir.Value:
        return b.load(gep(b, args, const_i64(base_index[buf.kind] + buf.index)))

    entry.emit_steps(program, kernels, argument, argument, 0)
    b.ret(ir.Constant(I32, 0))
    return str(module)


def profile_kernels(program: Program) -> list[str]:
    """A description of each kernel, in the order of the ``<name>_profile`` counters (and of
    ``_emit_kernels``: through loop bodies), e.g. ``"k3 matmul (128, 512) <- x, w (model.py:12)"``."""
    out: list[str] = []

    def walk(prog: Program, prefix: str) -> None:
        for i, step in enumerate(prog.steps):
            if step.kind == "scan":
                walk(step.body, f"{prefix}s{i}.")
                continue
            shape = tuple(step.out.shape)
            if step.kind == "copy":
                out.append(f"{prefix}k{i} copy {shape}")
                continue
            node = step.node
            what = node.op.value
            if node.op is Op.FUSED:
                what += "[" + ",".join(_expr_ops(node.attrs["expr"])) + "]"
            origin = f" ({node.origin})" if getattr(node, "origin", None) else ""
            out.append(f"{prefix}k{i} {what} {shape}{origin}")
    walk(program, "")
    return out


def _expr_ops(expr: tuple) -> list[str]:
    if expr[0] != "op":
        return []
    return [o for sub in expr[2] for o in _expr_ops(sub)] + [expr[1].value]
