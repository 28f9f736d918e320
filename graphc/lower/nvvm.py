"""NVVM IR for CUDA: a Program becomes one nvptx64 module (kernels) plus a launch list.

    emit_nvvm(program, name)        -> NvvmModule   LLVM IR text + launches, in step order
    compile_ptx(llvm_ir, arch)      -> str          PTX for ``arch`` (sm_80, sm_90, ...), through
                                                    llvmlite's NVPTX target or libNVVM

Every kernel has the signature::

    void <name>_k<i>[_<part>](i8* out, i8* in..., i64 sym0, i64 sym1, ..., i32* err)

(generic pointers to device memory; the symbolic sizes of the Program by value; ``err`` is a
device word a kernel sets to a nonzero code, e.g. 1 for an index out of range). Kernels use
the ``ptx_kernel`` calling convention, thread/block indices from ``llvm.nvvm.read.ptx.sreg.*``,
shared memory in address space 3 and ``llvm.nvvm.barrier0``. Math is the IR polynomials of
graphc/lower/mathlib.py (no libdevice, no libm).

Kernel kinds (``GPU_LOWER``): elementwise/FUSED (grid-stride, one thread per element,
broadcasting by strides), reductions and FUSED-with-reduction (one block per output element,
shared-memory tree reduction), softmax/log-softmax (one block per row), matmul (16x16 tiles
through shared memory, batch on grid z), copies/transposes/broadcast/slice/concat/pad
(grid-stride), take (a gather, one thread per element), random (one thread per element, the
CPU path's counter-based stream). Ops without a parallel kernel (argmax/argmin, scatter_add, dim)
run the CPU emitter of graphc/lower/cpu.py in a single GPU thread ("serial" launches):
correct, slow. Each launch says how its grid is derived from the symbolic sizes at run time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir.infer import broadcast_shapes
from graphc.ir.ops import ELEMENTWISE, Op
from graphc.ir.shapes import Dim, as_dim, size_of
from graphc.lower import cpu, scalar
from graphc.lower.irutil import I8P, I32, I64, LLVM_TYPE, SizeEmitter, const_i64, gep
from graphc.lower.loops import broadcast_strides, collapse, contiguous_strides
from graphc.lower.schedule import Buffer, Program, Step

TRIPLE = "nvptx64-nvidia-cuda"
DATA_LAYOUT = "e-p3:32:32-p4:32:32-p5:32:32-i64:64-i128:128-v16:16-v32:32-n16:32:64"
BLOCK = 256  # threads per block of 1-D kernels (a power of two: the tree reduction needs it)
TILE = 16  # matmul blocks are TILE x TILE threads
PER_THREAD = 4  # each thread computes PER_THREAD x PER_THREAD outputs of C
TILE_OUT = TILE * PER_THREAD  # so a block computes a TILE_OUT x TILE_OUT tile of C
TILE_K = 16  # the step along k: A's and B's tiles in shared memory are TILE_OUT x TILE_K
MAX_BLOCKS = 65535
ERR_INDEX = cpu.ERR_INDEX
SHARED_AS = 3


@dataclass
class Launch:
    """One kernel launch. ``grid`` is how the grid follows from the sizes at run time:

    - ("stride", work): 1-D grid-stride kernel over ``work`` items, BLOCK threads a block;
    - ("rows", rows): one BLOCK-thread block per row (block-stride loop past MAX_BLOCKS);
    - ("tiles", m, n, batch): matmul, (ceil(n/TILE_OUT), ceil(m/TILE_OUT), batch) blocks of
      TILE x TILE threads;
    - ("serial",): one thread.
    """

    kernel: str
    out: Buffer
    ins: list[Buffer]
    grid: tuple
    step: int


@dataclass
class NvvmModule:
    llvm_ir: str
    launches: list[Launch]
    symbols: list[sympy.Symbol]
    kinds: dict[str, str] = field(default_factory=dict)  # kernel name -> kind (for tests/docs)
    # What the host runs, in order: an int is launches[i]; ("scan", step, plan) is a loop
    # whose body plan the host runs once per step (graphc/lower/nvvm_executable.py).
    plan: list = field(default_factory=list)


def launch_dims(grid: tuple, env) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) of a launch once the symbols in ``env`` are bound."""
    from graphc.ir.shapes import evaluate
    kind = grid[0]
    if kind == "serial":
        return (1, 1, 1), (1, 1, 1)
    if kind == "tiles":
        m, n, batch = (max(evaluate(d, env), 0) for d in grid[1:])
        return (max(1, -(-n // TILE_OUT)), max(1, -(-m // TILE_OUT)), max(1, batch)), (TILE, TILE, 1)
    work = max(evaluate(grid[1], env), 0)
    if kind == "stride":
        blocks = -(-work // BLOCK)
    else:
        blocks = work
    return (max(1, min(blocks, MAX_BLOCKS)), 1, 1), (BLOCK, 1, 1)


# ----------------------------------------------------------------------------- kernels
class GpuKernel(cpu.KernelOps):
    """The GPU counterpart of cpu.Kernel (same attributes, so CPU emitters run unchanged in
    a single thread): builder, typed pointers, symbolic sizes, a failure exit."""

    def __init__(self, module: ir.Module, name: str, step: Step, symbols: list[sympy.Symbol]):
        n_ptrs = 1 + len(step.ins)
        fnty = ir.FunctionType(ir.VoidType(), [I8P] * n_ptrs + [I64] * len(symbols) + [I32.as_pointer()])
        self.fn = ir.Function(module, fnty, name)
        self.fn.calling_convention = "ptx_kernel"
        for arg in self.fn.args[:n_ptrs]:
            arg.add_attribute("noalias")
        self.name = name
        self.module = module
        entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.step = step
        self.node = step.node
        self.symbols = {s: self.fn.args[n_ptrs + i] for i, s in enumerate(symbols)}
        self.size = SizeEmitter(self.b, self.symbols)
        self.out = self.typed(self.fn.args[0], step.out.dtype)
        self.ins = [self.typed(a, buf.dtype) for a, buf in zip(self.fn.args[1:n_ptrs], step.ins)]
        err = self.fn.args[-1]
        self.fail = self.fn.append_basic_block("fail")
        with self.b.goto_block(self.fail):
            self.b.store(ir.Constant(I32, ERR_INDEX), err)
            self.b.ret_void()
        self._smem = 0

    # GPU helpers
    def sreg(self, name: str) -> ir.Value:
        fn = self.module.globals.get(f"llvm.nvvm.read.ptx.sreg.{name}")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, []), f"llvm.nvvm.read.ptx.sreg.{name}")
        return self.b.zext(self.b.call(fn, []), I64)

    def barrier(self) -> None:
        fn = self.module.globals.get("llvm.nvvm.barrier0")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), []), "llvm.nvvm.barrier0")
        self.b.call(fn, [])

    def shared_array(self, ty: ir.Type, count: int) -> ir.Value:
        """A block-shared array of ``count`` ``ty``; returns a generic ``ty*`` to its start."""
        g = ir.GlobalVariable(self.module, ir.ArrayType(ty, count), f"{self.name}_smem{self._smem}",
                              addrspace=SHARED_AS)
        self._smem += 1
        g.linkage = "internal"
        g.initializer = ir.Constant(ir.ArrayType(ty, count), ir.Undefined)
        g.align = 16
        p = self.b.gep(g, [const_i64(0), const_i64(0)], inbounds=True)
        return self.b.addrspacecast(p, ty.as_pointer())

    def strided_loop(self, start: ir.Value, count: ir.Value, step: ir.Value, name: str):
        """``for (i = start; i < count; i += step)`` as a context manager yielding ``i``."""
        return _strided_loop(self.b, start, count, step, name)


class _strided_loop:
    def __init__(self, b: ir.IRBuilder, start: ir.Value, count: ir.Value, step: ir.Value, name: str):
        self.b, self.start, self.count, self.stepv, self.name = b, start, count, step, name

    def __enter__(self) -> ir.Value:
        b = self.b
        pre = b.block
        self.header = b.append_basic_block(f"{self.name}.head")
        body = b.append_basic_block(f"{self.name}.body")
        self.end = b.append_basic_block(f"{self.name}.end")
        b.branch(self.header)
        b.position_at_end(self.header)
        self.i = b.phi(I64, name=self.name)
        self.i.add_incoming(self.start, pre)
        b.cbranch(b.icmp_signed("<", self.i, self.count), body, self.end)
        b.position_at_end(body)
        return self.i

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            return
        b = self.b
        nxt = b.add(self.i, self.stepv, name=f"{self.name}.next")
        self.i.add_incoming(nxt, b.block)
        b.branch(self.header)
        b.position_at_end(self.end)


def _grid_stride(k: GpuKernel, total: ir.Value, name: str = "g"):
    b = k.b
    start = b.add(b.mul(k.sreg("ctaid.x"), k.sreg("ntid.x")), k.sreg("tid.x"))
    step = b.mul(k.sreg("nctaid.x"), k.sreg("ntid.x"))
    return k.strided_loop(start, total, step, name)


def _offsets(k: GpuKernel, index: ir.Value, dims: list[ir.Value], steps: list[list[ir.Value]],
             base: list[ir.Value]) -> list[ir.Value]:
    """Element offsets of every operand at linear (row-major) ``index`` over ``dims``."""
    b = k.b
    offs = list(base)
    rem = index
    for a in reversed(range(len(dims))):
        if a == 0:
            idx = rem
        else:
            idx = b.urem(rem, dims[a])
            rem = b.udiv(rem, dims[a])
        for j, st in enumerate(steps):
            if not (isinstance(st[a], ir.Constant) and st[a].constant == 0):
                offs[j] = b.add(offs[j], b.mul(idx, st[a]))
    return offs


def _nest(k: GpuKernel, dims, strides) -> tuple[list[ir.Value], list[list[ir.Value]]]:
    dims, strides = collapse(dims, strides)
    return [k.size(d) for d in dims], [[k.size(s[a]) for a in range(len(dims))] for s in strides]


# ----------------------------------------------------------------------------- emitters
class Ctx:
    """What a GPU emitter works with: the module, the program's symbols, the launch list."""

    def __init__(self, module: ir.Module, name: str, symbols: list[sympy.Symbol]):
        self.module = module
        self.name = name
        self.symbols = symbols
        self.launches: list[Launch] = []
        self.kinds: dict[str, str] = {}

    def kernel(self, index: int, step: Step, part: str, grid: tuple, kind: str) -> GpuKernel:
        name = f"{self.name}_k{index}" + (f"_{part}" if part else "")
        k = GpuKernel(self.module, name, step, self.symbols)
        self.launches.append(Launch(name, step.out, list(step.ins), grid, index))
        self.kinds[name] = kind
        return k


def _finish(k: GpuKernel) -> None:
    k.b.ret_void()


def _pointwise(ctx: Ctx, i: int, step: Step, expr: tuple) -> None:
    node = step.node
    full = broadcast_shapes(node.op, node.inputs) if node.inputs else ()
    total = size_of(full)
    k = ctx.kernel(i, step, "", ("stride", total), "elementwise")
    strides = [broadcast_strides(x.shape, full) for x in node.inputs] + [contiguous_strides(full)]
    dims, steps = _nest(k, full, strides)
    dtypes = [x.dtype for x in node.inputs]
    with _grid_stride(k, k.size(total)) as idx:
        offs = _offsets(k, idx, dims, steps, [const_i64(0)] * len(steps))
        args = [k.load(p, o, dt) for p, o, dt in zip(k.ins, offs, dtypes)]
        value, _ = cpu._expr_value(k, expr, args, dtypes)
        k.store(value, k.out, offs[-1], node.dtype)
    _finish(k)


def _copy_loop(k: GpuKernel, src, dst, dims, src_strides, dst_strides, dtype, src_base: Dim = 0,
               dst_base: Dim = 0) -> None:
    total = size_of(dims)
    d, steps = _nest(k, list(dims), [list(src_strides), list(dst_strides)])
    with _grid_stride(k, k.size(total), "c") as idx:
        offs = _offsets(k, idx, d, steps, [k.size(src_base), k.size(dst_base)])
        k.store(k.load(src, offs[0], dtype), dst, offs[1], dtype)


def _lower_elementwise(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    _pointwise(ctx, i, step, ("op", node.op, tuple(("in", j) for j in range(len(node.inputs))), node.dtype))


def _block_reduce(k: GpuKernel, value: ir.Value, kind: str, dtype: str) -> ir.Value:
    """Combine ``value`` over the threads of a block (any count up to BLOCK); every thread
    gets the result."""
    b = k.b
    ty = LLVM_TYPE[dtype]
    smem = k.shared_array(ty, BLOCK)
    tid = k.sreg("tid.x")
    ntid = k.sreg("ntid.x")
    b.store(value, gep(b, smem, tid))
    k.barrier()
    s = BLOCK // 2
    while s >= 1:
        live = b.and_(b.icmp_unsigned("<", tid, const_i64(s)), b.icmp_unsigned("<", b.add(tid, const_i64(s)), ntid))
        with b.if_then(live):
            mine = b.load(gep(b, smem, tid))
            other = b.load(gep(b, smem, b.add(tid, const_i64(s))))
            b.store(cpu._combine(k, kind, mine, other, dtype), gep(b, smem, tid))
        k.barrier()
        s //= 2
    result = b.load(smem)
    k.barrier()  # the array may be reused by the next row
    return result


#: a reduction into fewer outputs (rows) than this, a number known when compiling, over a
#: reduced extent that is unknown or at least SPLIT_MIN_EXTENT, runs in two passes: each row's
#: elements split between several blocks, then their partial results combined
SPLIT_ROWS = 64
SPLIT_MIN_EXTENT = 4 * BLOCK
#: blocks the first pass aims at (several per multiprocessor of a large GPU: 132 on an H100)
SPLIT_TARGET_BLOCKS = 512
#: and the fewest elements a block of the first pass takes (4 per thread)
SPLIT_BLOCK_ELEMENTS = 4 * BLOCK


def split_parts(rows, extent) -> int:
    """The most blocks per row the first pass of a reduction into ``rows`` outputs over
    ``extent`` elements each (sizes, maybe symbolic) uses, or 1 for a single pass. The kernels
    use fewer when the extent, known at run time, is small (``_parts_used``)."""
    if not isinstance(rows, int) and not getattr(rows, "is_Integer", False):
        return 1
    rows = int(rows)
    if rows < 1 or rows >= SPLIT_ROWS:
        return 1
    if (isinstance(extent, int) or getattr(extent, "is_Integer", False)) and int(extent) < SPLIT_MIN_EXTENT:
        return 1
    return max(2, -(-SPLIT_TARGET_BLOCKS // rows))


def _reduction(ctx: Ctx, i: int, step: Step, expr: tuple, axes, kind: str) -> None:
    """One block per output row (a block-stride loop past MAX_BLOCKS); the block's threads
    stride over the row's elements, then a shared-memory tree. Few rows over many elements
    (``split_parts``): the first pass gives each row ``parts`` blocks, whose threads stride over
    the row together, each block's result a partial in a scratch buffer (rows x parts); the
    second pass combines each row's partials."""
    node = step.node
    full = broadcast_shapes(node.op, node.inputs) if node.op is Op.FUSED else node.inputs[0].shape
    axes = set(a % len(full) for a in axes) if full else set()
    kept = [a for a in range(len(full)) if a not in axes]
    red = [a for a in range(len(full)) if a in axes]
    in_strides = [broadcast_strides(x.shape, full) for x in node.inputs]
    rows = size_of([full[a] for a in kept])
    extent = size_of([full[a] for a in red])
    parts = split_parts(rows, extent)
    if parts == 1:
        k = ctx.kernel(i, step, "", ("rows", rows), "reduction")
    else:
        scratch = Buffer("scratch", node.dtype, (as_dim(int(rows) * parts),), index=0)
        k = ctx.kernel(i, Step(node, scratch, list(step.ins)), "part", ("rows", int(rows) * parts), "reduction")
    b = k.b
    kd, ks = _nest(k, [full[a] for a in kept], [[s[a] for a in kept] for s in in_strides])
    rd, rs = _nest(k, [full[a] for a in red], [[s[a] for a in red] for s in in_strides])
    dtypes = [x.dtype for x in node.inputs]
    ty = LLVM_TYPE[node.dtype]
    acc = k.alloca(ty, cpu._identity(kind, node.dtype))
    tid, ntid = k.sreg("tid.x"), k.sreg("ntid.x")
    P = const_i64(1) if parts == 1 else _parts_used(k, extent, parts)
    with k.strided_loop(k.sreg("ctaid.x"), b.mul(k.size(rows), P), k.sreg("nctaid.x"), "item") as item:
        row, part = (item, const_i64(0)) if parts == 1 else (b.udiv(item, P), b.urem(item, P))
        base = _offsets(k, row, kd, ks, [const_i64(0)] * len(ks))
        b.store(cpu._identity(kind, node.dtype), acc)
        # the row's elements part, part + parts, ... in blocks of ntid (coalesced when the
        # reduced axes are the innermost)
        first = b.add(b.mul(part, ntid), tid)
        with k.strided_loop(first, k.size(extent), b.mul(ntid, P), "r") as r:
            offs = _offsets(k, r, rd, rs, base)
            args = [k.load(p, o, dt) for p, o, dt in zip(k.ins, offs, dtypes)]
            value, _ = cpu._expr_value(k, expr, args, dtypes)
            b.store(cpu._combine(k, kind, b.load(acc), value, node.dtype), acc)
        total = _block_reduce(k, b.load(acc), kind, node.dtype)
        with b.if_then(b.icmp_unsigned("==", tid, const_i64(0))):
            k.store(total, k.out, item, node.dtype)
    _finish(k)
    if parts > 1:
        _combine_partials(ctx, i, step, scratch, int(rows), extent, parts, kind)


def _parts_used(k: GpuKernel, extent, parts: int) -> ir.Value:
    """Blocks per row in the first pass: one per SPLIT_BLOCK_ELEMENTS elements, 1 to ``parts``
    (the first pass's grid has ``parts`` blocks a row; those past this exit at once)."""
    b = k.b
    want = b.udiv(b.add(k.size(extent), const_i64(SPLIT_BLOCK_ELEMENTS - 1)), const_i64(SPLIT_BLOCK_ELEMENTS))
    want = b.select(b.icmp_signed("<", want, const_i64(1)), const_i64(1), want)
    return b.select(b.icmp_signed(">", want, const_i64(parts)), const_i64(parts), want)


def _combine_partials(ctx: Ctx, i: int, step: Step, scratch: Buffer, rows: int, extent, parts: int,
                      kind: str) -> None:
    """The second pass of a split reduction: out[row] = the row's partials (scratch holds
    them row by row, as many a row as the first pass used)."""
    dtype = step.node.dtype
    k = ctx.kernel(i, Step(step.node, step.out, [scratch]), "combine", ("rows", rows), "reduction")
    b = k.b
    acc = k.alloca(LLVM_TYPE[dtype], cpu._identity(kind, dtype))
    tid, ntid = k.sreg("tid.x"), k.sreg("ntid.x")
    P = _parts_used(k, extent, parts)
    with k.strided_loop(k.sreg("ctaid.x"), const_i64(rows), k.sreg("nctaid.x"), "row") as row:
        b.store(cpu._identity(kind, dtype), acc)
        with k.strided_loop(tid, P, ntid, "q") as q:
            value = k.load(k.ins[0], b.add(b.mul(row, P), q), dtype)
            b.store(cpu._combine(k, kind, b.load(acc), value, dtype), acc)
        total = _block_reduce(k, b.load(acc), kind, dtype)
        with b.if_then(b.icmp_unsigned("==", tid, const_i64(0))):
            k.store(total, k.out, row, dtype)
    _finish(k)


def _lower_fused(ctx: Ctx, i: int, step: Step) -> None:
    a = step.node.attrs
    if a["reduce_axes"] is None:
        _pointwise(ctx, i, step, a["expr"])
    elif step.node.dtype == "bool":
        _serial(ctx, i, step)
    else:
        _reduction(ctx, i, step, a["expr"], a["reduce_axes"], "sum")


def _lower_reduce(kind: str):
    def lower(ctx: Ctx, i: int, step: Step) -> None:
        if step.node.dtype == "bool":
            return _serial(ctx, i, step)
        _reduction(ctx, i, step, ("in", 0), step.node.attrs["axes"], kind)
    return lower


def _lower_softmax(ctx: Ctx, i: int, step: Step) -> None:
    from graphc.lower.mathlib import math_function
    node = step.node
    (x,) = node.inputs
    axis = node.attrs["axis"] % len(x.shape)
    dt_ = node.dtype
    ty = LLVM_TYPE[dt_]
    rows = as_dim(size_of(x.shape[:axis]) * size_of(x.shape[axis + 1:]))
    k = ctx.kernel(i, step, "", ("rows", rows), "softmax")
    b = k.b
    n = k.size(x.shape[axis])
    inner = k.size(size_of(x.shape[axis + 1:]))
    exp_fn = math_function(b.module, scalar.MATH_NAMES[Op.EXP], ty)
    log_fn = math_function(b.module, "log", ty)
    log = node.op is Op.LOG_SOFTMAX
    tid, ntid = k.sreg("tid.x"), k.sreg("ntid.x")
    acc = k.alloca(ty, ir.Constant(ty, 0.0))
    with k.strided_loop(k.sreg("ctaid.x"), k.size(rows), k.sreg("nctaid.x"), "row") as row:
        o = b.udiv(row, inner)
        j = b.urem(row, inner)
        base = b.add(b.mul(b.mul(o, n), inner), j)

        def at(r):
            return b.add(base, b.mul(r, inner))
        b.store(ir.Constant(ty, float("-inf")), acc)
        with k.strided_loop(tid, n, ntid, "m") as r:
            b.store(scalar.binary(b, Op.MAXIMUM, b.load(acc), k.load(k.ins[0], at(r), dt_), dt_), acc)
        m = _block_reduce(k, b.load(acc), "max", dt_)
        m = b.select(b.fcmp_ordered("==", m, ir.Constant(ty, float("-inf"))), ir.Constant(ty, 0.0), m)
        b.store(ir.Constant(ty, 0.0), acc)
        with k.strided_loop(tid, n, ntid, "s") as r:
            e = b.call(exp_fn, [b.fsub(k.load(k.ins[0], at(r), dt_), m)])
            b.store(b.fadd(b.load(acc), e), acc)
        total = _block_reduce(k, b.load(acc), "sum", dt_)
        if log:
            shift = b.fadd(m, b.call(log_fn, [total]))
            with k.strided_loop(tid, n, ntid, "w") as r:
                k.store(b.fsub(k.load(k.ins[0], at(r), dt_), shift), k.out, at(r), dt_)
        else:
            inv = b.fdiv(ir.Constant(ty, 1.0), total)
            with k.strided_loop(tid, n, ntid, "w") as r:
                e = b.call(exp_fn, [b.fsub(k.load(k.ins[0], at(r), dt_), m)])
                k.store(b.fmul(e, inv), k.out, at(r), dt_)
    _finish(k)


def _lower_matmul(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    if node.dtype == "bool":
        return _serial(ctx, i, step)
    a, bb = node.inputs
    m, kk, n = a.shape[-2], a.shape[-1], bb.shape[-1]
    batch = list(node.shape[:-2])
    k = ctx.kernel(i, step, "", ("tiles", m, n, size_of(batch)), "matmul")
    b = k.b
    ty = LLVM_TYPE[node.dtype]
    fl = node.dtype.startswith("float")
    zero = scalar.constant(0, node.dtype)
    scale = lambda s, f: [as_dim(x * f) for x in s]  # noqa: E731
    strides = [scale(broadcast_strides(a.shape[:-2], batch), as_dim(m * kk)),
               scale(broadcast_strides(bb.shape[:-2], batch), as_dim(kk * n)),
               scale(contiguous_strides(batch), as_dim(m * n))]
    bd, bs = _nest(k, batch, strides)
    pa, pb, pc = _offsets(k, k.sreg("ctaid.z"), bd, bs, [const_i64(0)] * 3)
    A, B, C = gep(b, k.ins[0], pa), gep(b, k.ins[1], pb), gep(b, k.out, pc)
    ms, ks, ns = k.size(m), k.size(kk), k.size(n)
    _tiled_product(k, A, B, C, ms, ks, ns, ty, fl, zero)
    _finish(k)


def _tiled_product(k: GpuKernel, A, B, C, ms, ks, ns, ty: ir.Type, fl: bool, zero: ir.Value) -> None:
    """C = A @ B (row-major, m x k times k x n) for the block's TILE_OUT x TILE_OUT tile of C.

    Register tiling: thread (tx, ty) keeps PER_THREAD x PER_THREAD sums, for rows
    ``ty + TILE*i`` and columns ``tx + TILE*j`` of the tile, so that per step of k it reads
    2*PER_THREAD values from shared memory for PER_THREAD**2 multiply-adds (one output per
    thread read two for one). Per TILE_K steps the block stages a TILE_OUT x TILE_K tile of A
    (stored transposed, rows padded by one against bank conflicts) and a TILE_K x TILE_OUT
    tile of B in shared memory; threads load consecutive elements (coalesced), and a warp's
    reads of A's tile are broadcasts (one or two rows), of B's consecutive words. Out-of-range
    elements are staged as zeros; out-of-range outputs are not stored."""
    b = k.b
    R, KT, W = PER_THREAD, TILE_K, TILE_OUT
    a_ld = W + 1
    tx, ty_ = k.sreg("tid.x"), k.sreg("tid.y")
    tid = b.add(b.mul(ty_, const_i64(TILE)), tx)
    row0 = b.mul(k.sreg("ctaid.y"), const_i64(W))
    col0 = b.mul(k.sreg("ctaid.x"), const_i64(W))
    As = k.shared_array(ty, KT * a_ld)
    Bs = k.shared_array(ty, KT * W)
    accs = [[k.alloca(ty, zero) for _ in range(R)] for _ in range(R)]
    threads = TILE * TILE
    ntiles = b.udiv(b.add(ks, const_i64(KT - 1)), const_i64(KT))

    def stage(dst, src, r, c, rows, cols, ld_src, at):
        """dst[at] = src[r, c] (row-major, ld_src) when r < rows and c < cols, else 0."""
        slot = gep(b, dst, at)
        b.store(zero, slot)
        ok = b.and_(b.icmp_signed("<", r, rows), b.icmp_signed("<", c, cols))
        with b.if_then(ok):
            b.store(b.load(gep(b, src, b.add(b.mul(r, ld_src), c))), slot)

    with k.strided_loop(const_i64(0), ntiles, const_i64(1), "t") as t:
        t0 = b.mul(t, const_i64(KT))
        for q in range(W * KT // threads):
            e = b.add(tid, const_i64(q * threads))
            p, r = b.urem(e, const_i64(KT)), b.udiv(e, const_i64(KT))  # A: k fastest (coalesced)
            stage(As, A, b.add(row0, r), b.add(t0, p), ms, ks, ks, b.add(b.mul(p, const_i64(a_ld)), r))
            c, p = b.urem(e, const_i64(W)), b.udiv(e, const_i64(W))    # B: columns fastest
            stage(Bs, B, b.add(t0, p), b.add(col0, c), ks, ns, ns, b.add(b.mul(p, const_i64(W)), c))
        k.barrier()
        sums = [[b.load(accs[i][j]) for j in range(R)] for i in range(R)]
        for p in range(KT):
            av = [b.load(gep(b, As, b.add(const_i64(p * a_ld + TILE * i), ty_))) for i in range(R)]
            bv = [b.load(gep(b, Bs, b.add(const_i64(p * W + TILE * j), tx))) for j in range(R)]
            for i in range(R):
                for j in range(R):
                    if fl:
                        prod = b.fmul(av[i], bv[j], flags=("contract",))
                        sums[i][j] = b.fadd(sums[i][j], prod, flags=("contract",))
                    else:
                        sums[i][j] = b.add(sums[i][j], b.mul(av[i], bv[j]))
        for i in range(R):
            for j in range(R):
                b.store(sums[i][j], accs[i][j])
        k.barrier()
    for i in range(R):
        row = b.add(row0, b.add(ty_, const_i64(TILE * i)))
        for j in range(R):
            col = b.add(col0, b.add(tx, const_i64(TILE * j)))
            with b.if_then(b.and_(b.icmp_signed("<", row, ms), b.icmp_signed("<", col, ns))):
                b.store(b.load(accs[i][j]), gep(b, C, b.add(b.mul(row, ns), col)))


def _lower_transpose(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    (x,) = node.inputs
    own = contiguous_strides(x.shape)
    k = ctx.kernel(i, step, "", ("stride", size_of(node.shape)), "copy")
    _copy_loop(k, k.ins[0], k.out, node.shape, [own[p] for p in node.attrs["perm"]],
               contiguous_strides(node.shape), x.dtype)
    _finish(k)


def _lower_broadcast(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    (x,) = node.inputs
    k = ctx.kernel(i, step, "", ("stride", size_of(node.shape)), "copy")
    _copy_loop(k, k.ins[0], k.out, node.shape, broadcast_strides(x.shape, node.shape),
               contiguous_strides(node.shape), x.dtype)
    _finish(k)


def _lower_slice(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    (x,) = node.inputs
    a = node.attrs
    own = contiguous_strides(x.shape)
    base = as_dim(sum((as_dim(bg * s) for bg, s in zip(a["begin"], own)), start=0))
    k = ctx.kernel(i, step, "", ("stride", size_of(node.shape)), "copy")
    _copy_loop(k, k.ins[0], k.out, node.shape, [as_dim(s * st) for s, st in zip(own, a["step"])],
               contiguous_strides(node.shape), x.dtype, src_base=base)
    _finish(k)


def _lower_concat(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    axis = node.attrs["axis"]
    out_str = contiguous_strides(node.shape)
    k = ctx.kernel(i, step, "", ("stride", size_of(node.shape)), "copy")
    start: Dim = 0
    for j, (ptr, x) in enumerate(zip(k.ins, node.inputs)):  # disjoint parts: no ordering needed
        _copy_loop(k, ptr, k.out, x.shape, contiguous_strides(x.shape), out_str, x.dtype,
                   dst_base=as_dim(start * out_str[axis]))
        start = as_dim(start + x.shape[axis])
    _finish(k)


def _lower_pad(ctx: Ctx, i: int, step: Step) -> None:
    node = step.node
    (x,) = node.inputs
    a = node.attrs
    out_str = contiguous_strides(node.shape)
    k = ctx.kernel(i, step, "fill", ("stride", size_of(node.shape)), "copy")
    with _grid_stride(k, k.size(size_of(node.shape))) as idx:
        k.store(scalar.constant(a["value"], x.dtype), k.out, idx, x.dtype)
    _finish(k)
    k = ctx.kernel(i, step, "copy", ("stride", size_of(x.shape)), "copy")  # after the fill: a new launch
    base = as_dim(sum((as_dim(lo * s) for lo, s in zip(a["lo"], out_str)), start=0))
    _copy_loop(k, k.ins[0], k.out, x.shape, contiguous_strides(x.shape),
               [as_dim(s * (mm + 1)) for s, mm in zip(out_str, a["interior"])], x.dtype, dst_base=base)
    _finish(k)


def _serial(ctx: Ctx, i: int, step: Step) -> None:
    k = ctx.kernel(i, step, "", ("serial",), "serial")
    emitter = cpu.LOWER.get(step.node.op)
    if emitter is None:
        raise CompileError(f"no CUDA lowering for {step.node.op.value}")
    emitter(k)
    _finish(k)


def _lower_take(ctx: Ctx, i: int, step: Step) -> None:
    """One thread per output element; an index out of range sets the error word."""
    node = step.node
    x, idx = node.inputs
    axis = node.attrs["axis"]
    total = size_of(node.shape)
    k = ctx.kernel(i, step, "", ("stride", total), "gather")
    b = k.b
    d, inner, count = k.size(x.shape[axis]), k.size(size_of(x.shape[axis + 1:])), k.size(size_of(idx.shape))
    with _grid_stride(k, k.size(total)) as e:
        c = b.urem(e, inner)
        t = b.udiv(e, inner)
        j = b.urem(t, count)
        o = b.udiv(t, count)
        v = cpu._index(k, k.ins[1], j, idx.dtype, d)
        src = b.add(b.mul(b.add(b.mul(o, d), v), inner), c)
        k.store(k.load(k.ins[0], src, x.dtype), k.out, e, x.dtype)
    _finish(k)


def _lower_random(ctx: Ctx, i: int, step: Step) -> None:
    """One thread per element: the counter-based stream of cpu._lower_random, element for element."""
    from graphc.ir.shapes import RNG_STEP
    node = step.node
    a = node.attrs
    total = size_of(node.shape)
    k = ctx.kernel(i, step, "", ("stride", total), "random")
    b = k.b
    key = cpu.random_key(b, a["seed"], k.symbols[RNG_STEP])
    with _grid_stride(k, k.size(total)) as e:
        k.store(cpu.random_value(b, a, node.dtype, key, e), k.out, e, node.dtype)
    _finish(k)


def _lower_copy(ctx: Ctx, i: int, step: Step) -> None:
    n = size_of(step.out.shape)
    k = ctx.kernel(i, step, "", ("stride", n), "copy")
    dt_ = step.ins[0].dtype
    with _grid_stride(k, k.size(n)) as idx:
        k.store(k.load(k.ins[0], idx, dt_), k.out, idx, dt_)
    _finish(k)


# Ops the CUDA path expands into others before scheduling (graphc/passes/expand.py).
EXPANDED: dict[Op, str] = {
    Op.PATCHES: "strided slices concatenated (passes/expand.py)",
    Op.PATCHES_ADJOINT: "interior pads of column blocks, summed (passes/expand.py)",
}

GPU_LOWER: dict[Op, Callable[[Ctx, int, Step], None]] = {
    **{op: _lower_elementwise for op in ELEMENTWISE},
    Op.FUSED: _lower_fused,
    Op.SUM: _lower_reduce("sum"),
    Op.PROD: _lower_reduce("prod"),
    Op.MAX: _lower_reduce("max"),
    Op.MIN: _lower_reduce("min"),
    Op.ARGMAX: _serial,
    Op.ARGMIN: _serial,
    Op.MATMUL: _lower_matmul,
    Op.TRANSPOSE: _lower_transpose,
    Op.BROADCAST: _lower_broadcast,
    Op.SLICE: _lower_slice,
    Op.CONCAT: _lower_concat,
    Op.PAD: _lower_pad,
    Op.TAKE: _lower_take,
    Op.SCATTER_ADD: _serial,
    Op.SOFTMAX: _lower_softmax,
    Op.LOG_SOFTMAX: _lower_softmax,
    Op.RANDOM: _lower_random,
    Op.DIM: _serial,
}

# Ops run by a single GPU thread with the CPU emitter (correct but slow); see docs/cuda.md.
SERIAL_OPS = frozenset({Op.ARGMAX, Op.ARGMIN, Op.SCATTER_ADD, Op.DIM})


def emit_nvvm(program: Program, name: str) -> NvvmModule:
    """The NVVM IR (LLVM IR for nvptx64) of the program's kernels, and the launches in order."""
    module = ir.Module(name=name)
    module.triple = TRIPLE
    module.data_layout = DATA_LAYOUT
    ctx = Ctx(module, name, program.symbols)
    plan = _emit_program(ctx, program, name)
    return NvvmModule(str(module), ctx.launches, list(program.symbols), ctx.kinds, plan)


def _emit_program(ctx: Ctx, program: Program, prefix: str) -> list:
    """Emit the kernels of ``program`` (a loop's body: recursively, named after the loop) and
    return its host plan (see ``NvvmModule.plan``)."""
    plan: list = []
    for i, step in enumerate(program.steps):
        if step.kind == "scan":
            plan.append(("scan", step, _emit_program(ctx, step.body, f"{prefix}_s{i}")))
            continue
        first = len(ctx.launches)
        ctx.name = prefix
        if step.kind == "copy":
            _lower_copy(ctx, i, step)
        else:
            emitter = GPU_LOWER.get(step.node.op)
            if emitter is None:
                raise CompileError(f"no CUDA lowering for {step.node.op.value}")
            emitter(ctx, i, step)
        plan.extend(range(first, len(ctx.launches)))
    return plan


# ----------------------------------------------------------------------------- PTX
#: PTX compilers ``compile_ptx`` knows; ``GRAPHC_PTX_COMPILER`` picks the default
PTX_COMPILERS = ("llvm", "libnvvm")


def ptx_compiler() -> str:
    """The PTX compiler CUDA functions use: ``GRAPHC_PTX_COMPILER`` (``llvm`` or ``libnvvm``),
    by default ``llvm``. llvmlite's NVPTX target stays the default: its PTX (ISA 7.8) loads
    on drivers from CUDA 11.8 on, while a toolkit's libNVVM writes its own ISA (9.0 for CUDA
    13), which older drivers refuse; and no GPU has run either yet (docs/cuda.md)."""
    from graphc import env
    name = env.ptx_compiler()
    if name not in PTX_COMPILERS:
        raise CompileError(f"GRAPHC_PTX_COMPILER={name!r}: expected one of {', '.join(PTX_COMPILERS)}")
    return name


def compile_ptx(llvm_ir: str, arch: str = "sm_90", opt_level: int = 3, compiler: str = "llvm") -> str:
    """PTX text for ``arch`` from NVVM IR, through llvmlite's NVPTX target (``compiler="llvm"``)
    or NVIDIA's libNVVM (``"libnvvm"``, graphc/backend/libnvvm.py)."""
    if compiler == "libnvvm":
        from graphc.backend import libnvvm
        return libnvvm.compile_ptx(llvm_ir, arch, opt_level)
    if compiler != "llvm":
        raise CompileError(f"unknown PTX compiler {compiler!r}: expected one of {', '.join(PTX_COMPILERS)}")
    from graphc.backend import jit
    jit._init_all_targets()
    target = jit.TargetInfo(triple=TRIPLE, cpu=arch, features="")
    try:
        tm = jit._target_machine(target, opt_level)
    except Exception as exc:  # noqa: BLE001 - an LLVM without NVPTX
        raise CompileError(f"this LLVM cannot generate PTX for {arch}: {exc}") from exc
    mod = jit._parse(llvm_ir, tm, target)
    jit._optimize(mod, tm, opt_level)
    try:
        return tm.emit_assembly(mod)
    except RuntimeError as exc:
        raise CompileError(f"PTX generation failed: {exc}") from exc


__all__ = ["emit_nvvm", "compile_ptx", "ptx_compiler", "PTX_COMPILERS", "NvvmModule", "Launch", "launch_dims", "GPU_LOWER", "EXPANDED", "SERIAL_OPS",
           "BLOCK", "TILE", "TILE_OUT"]
