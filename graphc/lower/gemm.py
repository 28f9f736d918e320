"""Matrix multiply for the CPU: a BLIS-style packed GEMM emitted as LLVM IR with explicit
vector types, and the plain loop it falls back to.

``C[m, n] = alpha * A[m, k] @ B[k, n] + beta * C`` (C not read when ``beta == 0``; C row-major
with leading dimension ``ldc``; ``A[i, p]`` at
``A + i*ars + p*acs`` and ``B[p, j]`` at ``B + p*brs + j*bcs``, so a transposed operand is read
in place, without a copy) for
float32 and float64 is one internal function per module and dtype, ``graphc_gemm_<dtype>``,
that a matmul kernel calls once per matrix of its batch:

- cache blocking: ``NC`` columns of B x ``KC`` rows are packed into ``NR``-wide panels
  (``KC x NC`` on the stack), then ``MC`` rows of A x ``KC`` into ``MR``-tall panels
  (``MC x KC`` on the stack); partial panels are zero-padded, so the micro-kernel always
  computes a full tile. A with contiguous rows is read in place instead of packed when C has
  few columns (see ``DIRECT_A_MAX_N``);
- register blocking: the micro-kernel keeps an ``MR x NR`` tile of C in ``MR * NR / VW``
  vector accumulators (``VW`` lanes: 16 float32 with AVX-512, 8 with AVX2) and does
  ``MR * NR / VW`` FMAs per step of ``k``: a row of B panel (``NR / VW`` vector loads) times
  ``MR`` broadcast elements of the A panel;
- edges: a full tile is written back with vector loads/stores; a partial one (``m`` or ``n``
  not a multiple of the tile) goes through a small tile buffer and a scalar loop, so any
  ``m``, ``n``, ``k`` (known at compile time or not) works; ``k == 0`` gives ``beta * C``.

Products with very few rows (``m < SMALL_M``, e.g. batch-1 inference) use the plain loop
instead: it streams B once, which is all such a product needs. Integer dtypes always use the
plain loop. The ``_mt`` variants split a product between threads (the pool of
graphc/lower/threadpool.py): by columns or rows, or, for few rows, by k.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from graphc.lower import threadpool
from graphc.lower.irutil import F32, F64, I64, const_i64, for_range, gep

SMALL_M = 4
#: A is read in place, not packed, when C has fewer columns than this (see gemm_function)
DIRECT_A_MAX_N = 256


@dataclass(frozen=True)
class GemmConfig:
    """Blocking of the packed GEMM: vector lanes, register tile, cache blocks (elements)."""

    vw: int   # lanes of one vector
    mr: int   # rows of the register tile
    nrv: int  # vectors per row of the register tile (NR = nrv * vw columns)
    kc: int
    mc: int
    nc: int

    @property
    def nr(self) -> int:
        return self.nrv * self.vw


def _has_avx512() -> bool:
    try:
        from graphc.backend.jit import host_target
        return "+avx512f" in host_target().features.split(",")
    except Exception:  # noqa: BLE001 - no host information: assume AVX2
        return False


def config_for(dtype: str, avx512: bool | None = None) -> GemmConfig:
    """The blocking used for ``dtype`` on this host (measured; see docs/performance.md)."""
    if avx512 is None:
        avx512 = _has_avx512()
    bits = 512 if avx512 else 256
    vw = bits // (32 if dtype == "float32" else 64)
    # Stack use is (KC*NC + MC*KC) elements: about 750 KB; float64 halves KC to keep it so.
    kc = 256 if dtype == "float32" else 128
    if avx512:
        # Measured on znver5 (float32 GFLOP/s, one core, 512/1024/2048): 6x4 217/199/176,
        # 8x3 205/184/164, 12x2 206/179/150, 14x2 205/169/145, 7x4 and 5x5 much slower.
        return GemmConfig(vw=vw, mr=6, nrv=4, kc=kc, mc=240, nc=512)
    # AVX2 (16 registers): the BLIS Haswell/Zen tile, 6 x 2 vectors (12 accumulators).
    return GemmConfig(vw=vw, mr=6, nrv=2, kc=kc, mc=144, nc=512)


# ----------------------------------------------------------------------------- IR helpers
def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _ceil_div(b: ir.IRBuilder, x: ir.Value, d: int) -> ir.Value:
    return b.udiv(b.add(x, const_i64(d - 1)), const_i64(d))


def _fma_fn(module: ir.Module, vty: ir.VectorType) -> ir.Function:
    # declare_intrinsic("llvm.fma", [vector]) fails in llvmlite; a plain declaration works
    name = f"llvm.fma.v{vty.count}{'f32' if vty.element == F32 else 'f64'}"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(vty, [vty, vty, vty]), name)
    return fn


def _splat(b: ir.IRBuilder, x: ir.Value, vty: ir.VectorType) -> ir.Value:
    v = b.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return b.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)


def _vptr(b: ir.IRBuilder, ptr: ir.Value, vty: ir.VectorType) -> ir.Value:
    return b.bitcast(ptr, vty.as_pointer())


# ----------------------------------------------------------------------------- the function
# A module with this attribute set calls the GEMM functions of the runtime library (compiled
# once per process, see graphc/lower/runtime_library.py) instead of defining its own copies.
EXTERNAL_RUNTIME = "graphc_external_runtime"


def _gemm_type(dtype: str, threaded: bool) -> ir.FunctionType:
    """(m, n, k, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta[, threads])"""
    T = F32 if dtype == "float32" else F64
    TP = T.as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, TP, I64, I64, TP, I64, I64, TP, I64, T, T]
                           + ([I64] if threaded else []))


def _declared(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function | None:
    """The function ``name`` already in ``module``, or its declaration when the module links
    against the runtime library; None when the caller must define it."""
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    if getattr(module, EXTERNAL_RUNTIME, False):
        return ir.Function(module, fnty, name)
    return None


def gemm_function(module: ir.Module, dtype: str, cfg: GemmConfig | None = None) -> ir.Function:
    """``void graphc_gemm_<dtype>(m, n, k, T* A, ars, acs, T* B, brs, bcs, T* C, ldc, T alpha,
    T beta)`` (i64 sizes),
    emitted into ``module`` once (declared only, if the module uses the runtime library)."""
    name = f"graphc_gemm_{dtype}"
    fn = _declared(module, name, _gemm_type(dtype, False))
    if fn is not None:
        return fn
    cfg = cfg or config_for(dtype)
    T = F32 if dtype == "float32" else F64
    VW, MR, NRV, KC, MC, NC = cfg.vw, cfg.mr, cfg.nrv, cfg.kc, cfg.mc, cfg.nc
    NR = cfg.nr
    assert NC % NR == 0 and MC % MR == 0
    V = ir.VectorType(T, VW)
    zero_s = ir.Constant(T, 0.0)
    zero_v = ir.Constant(V, [0.0] * VW)
    fma = _fma_fn(module, V)
    esize = 4 if dtype == "float32" else 8

    fn = ir.Function(module, _gemm_type(dtype, False), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # one copy per module: inlining it per call site costs compile time
    for i in (3, 6, 9):
        fn.args[i].add_attribute("noalias")
    m, n, kk, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    scale = _Scale(b, alpha, beta, V)
    ap_buf = b.alloca(ir.ArrayType(T, MC * KC), name="apack")
    ap_buf.align = 64
    bp_buf = b.alloca(ir.ArrayType(T, KC * NC), name="bpack")
    bp_buf.align = 64
    tile_buf = b.alloca(ir.ArrayType(T, MR * NR), name="tile")
    tile_buf.align = 64
    i32_0 = ir.Constant(ir.IntType(32), 0)
    ap = b.gep(ap_buf, [i32_0, i32_0], inbounds=True)
    bp = b.gep(bp_buf, [i32_0, i32_0], inbounds=True)
    tile = b.gep(tile_buf, [i32_0, i32_0], inbounds=True)

    # k == 0: C is beta * C
    with b.if_then(b.icmp_signed("==", kk, const_i64(0))):
        with for_range(b, m, "zi") as i:
            row = gep(b, C, b.mul(i, ldc))
            with for_range(b, n, "zj") as j:
                cp = gep(b, row, j)
                b.store(scale.first(b.load(cp), zero_s, scalar=True), cp)

    # A with contiguous rows is read in place when C has few columns: packing A cost up to a
    # third of a product with a convolution's 32 or 64 channels (only n / NR panels share each
    # packed block), and MR rows of A are as good a stream for the micro-kernel. With many
    # columns packing is cheap, and it is kept; so it is when A's row stride is a multiple of
    # 4 KB, whose rows would all fall in the same L1 sets (1024^3 ran 20% slower).
    direct_a = b.and_(b.and_(b.icmp_signed("==", acs, const_i64(1)), b.icmp_signed("<", n, const_i64(DIRECT_A_MAX_N))),
                      b.icmp_signed("!=", b.urem(b.mul(ars, const_i64(esize)), const_i64(4096)), const_i64(0)))
    # B is always packed. Reading full panels of B in place when A is one block (few rows)
    # saved 10% on znver5, but with a power-of-two row stride (n = 256, 512: every MLP) the
    # panel's rows map to two L1 sets, and on znver3 128x784x512 ran at 0.7 x NumPy instead of
    # at parity.
    with for_range(b, _ceil_div(b, n, NC), "jc") as jci:
        jc = b.mul(jci, const_i64(NC))
        nc = _min(b, const_i64(NC), b.sub(n, jc))
        with for_range(b, _ceil_div(b, kk, KC), "pc") as pci:
            pc = b.mul(pci, const_i64(KC))
            kc = _min(b, const_i64(KC), b.sub(kk, pc))
            first = b.icmp_signed("==", pci, const_i64(0))
            _pack_b(b, B, brs, bcs, pc, jc, kc, nc, bp, V, NR, NRV, VW, zero_s, esize)
            with for_range(b, _ceil_div(b, m, MC), "ic") as ici:
                ic = b.mul(ici, const_i64(MC))
                mc = _min(b, const_i64(MC), b.sub(m, ic))
                with b.if_then(b.not_(direct_a)):
                    _pack_a(b, A, ars, acs, ic, pc, mc, kc, ap, MR, zero_s)
                with for_range(b, _ceil_div(b, nc, NR), "jr") as jri:
                    jr = b.mul(jri, const_i64(NR))
                    nr = _min(b, const_i64(NR), b.sub(nc, jr))
                    bpanel = gep(b, bp, b.mul(jr, kc))
                    with for_range(b, _ceil_div(b, mc, MR), "ir") as iri:
                        ir_ = b.mul(iri, const_i64(MR))
                        mr = _min(b, const_i64(MR), b.sub(mc, ir_))
                        c0 = gep(b, C, b.add(b.mul(b.add(ic, ir_), ldc), b.add(jc, jr)))
                        with b.if_else(direct_a) as (rows_of_a, packed_a):
                            with rows_of_a:  # rows past mc read the last row: their sums are not written
                                last = b.sub(mr, const_i64(1))
                                a_rows = [gep(b, A, b.add(b.mul(b.add(b.add(ic, ir_), _min(b, const_i64(r), last)), ars),
                                                          pc)) for r in range(MR)]
                                accs = _micro(b, fn, fma, a_rows, 1, bpanel, const_i64(NR), kc, MR, NRV, VW, V,
                                              zero_v, esize)
                                _write_back(b, accs, c0, ldc, mr, nr, first, tile, MR, NR, NRV, VW, V, esize, scale)
                            with packed_a:
                                apanel = gep(b, ap, b.mul(ir_, kc))
                                a_rows = [gep(b, apanel, const_i64(r)) for r in range(MR)]
                                accs = _micro(b, fn, fma, a_rows, MR, bpanel, const_i64(NR), kc, MR, NRV, VW, V,
                                              zero_v, esize)
                                _write_back(b, accs, c0, ldc, mr, nr, first, tile, MR, NR, NRV, VW, V, esize, scale)
    b.ret_void()
    return fn


def _pack_b(b, B, brs, bcs, pc, jc, kc, nc, bp, V, NR, NRV, VW, zero_s, esize) -> None:
    """bp[jp*NR*kc + p*NR + c] = B[pc + p, jc + jp*NR + c] (0 past column nc)."""
    with for_range(b, _ceil_div(b, nc, NR), "pbj") as jp:
        col0 = b.mul(jp, const_i64(NR))
        ncols = _min(b, const_i64(NR), b.sub(nc, col0))
        src0 = gep(b, B, b.add(b.mul(pc, brs), b.mul(b.add(jc, col0), bcs)))
        dst0 = gep(b, bp, b.mul(col0, kc))
        full_rows = b.and_(b.icmp_signed("==", ncols, const_i64(NR)), b.icmp_signed("==", bcs, const_i64(1)))
        with b.if_else(full_rows) as (full, part):
            with full:  # contiguous rows of NR: vector copies
                with for_range(b, kc, "pbp") as p:
                    src = gep(b, src0, b.mul(p, brs))
                    dst = gep(b, dst0, b.mul(p, const_i64(NR)))
                    for v in range(NRV):
                        x = b.load(_vptr(b, gep(b, src, const_i64(v * VW)), V), align=esize)
                        b.store(x, _vptr(b, gep(b, dst, const_i64(v * VW)), V), align=64)
            with part:  # a partial panel, or a transposed B (columns strided): element by element
                last = b.sub(ncols, const_i64(1))
                with for_range(b, const_i64(NR), "pbc") as cc:
                    src = gep(b, src0, b.mul(_min(b, cc, last), bcs))
                    keep = b.icmp_signed("<", cc, ncols)
                    # a loop, not unrolled code: small code compiles fast
                    with for_range(b, kc, "pbq") as p:
                        x = b.load(gep(b, src, b.mul(p, brs)))
                        b.store(b.select(keep, x, zero_s), gep(b, dst0, b.add(b.mul(p, const_i64(NR)), cc)))


def _pack_a(b, A, ars, acs, ic, pc, mc, kc, ap, MR, zero_s) -> None:
    """ap[ip*MR*kc + p*MR + r] = A[ic + ip*MR + r, pc + p] (0 past row mc)."""
    last = b.sub(mc, const_i64(1))
    with for_range(b, _ceil_div(b, mc, MR), "pai") as ip:
        row0 = b.mul(ip, const_i64(MR))
        rows = []
        valid = []
        for r in range(MR):
            row = b.add(row0, const_i64(r))
            valid.append(b.icmp_signed("<", row, mc))
            rows.append(gep(b, A, b.add(b.mul(b.add(ic, _min(b, row, last)), ars), b.mul(pc, acs))))
        dst0 = gep(b, ap, b.mul(row0, kc))
        # A read transposed (the autodiff's x.T @ g: column-major, ars == 1) and a full panel:
        # its MR rows at one p are adjacent, one short vector copy per p
        column_major = b.and_(b.icmp_signed("==", ars, const_i64(1)), valid[-1])
        with b.if_else(column_major) as (adjacent, general):
            with adjacent:
                VT = ir.VectorType(zero_s.type, MR)
                align = 4 if zero_s.type == F32 else 8
                with for_range(b, kc, "pav") as p:
                    x = b.load(_vptr(b, gep(b, rows[0], b.mul(p, acs)), VT), align=align)
                    b.store(x, _vptr(b, gep(b, dst0, b.mul(p, const_i64(MR))), VT), align=align)
            with general:
                with for_range(b, kc, "pap") as p:
                    dst = gep(b, dst0, b.mul(p, const_i64(MR)))
                    step = b.mul(p, acs)
                    for r in range(MR):
                        x = b.load(gep(b, rows[r], step))
                        b.store(b.select(valid[r], x, zero_s), gep(b, dst, const_i64(r)))


def _micro(b, fn, fma, a_rows, a_step, bpanel, bstride, kc, MR, NRV, VW, V, zero_v, esize) -> list[list[ir.Value]]:
    """The register tile: acc[r][v] += a_rows[r][p*a_step] * bpanel[p*bstride + v*VW : +VW] over
    p < kc (``a_rows``: a packed panel's MR interleaved rows, step MR, or A's rows, step 1)."""
    pre = b.block
    head = fn.append_basic_block("mk.head")
    body = fn.append_basic_block("mk.body")
    end = fn.append_basic_block("mk.end")
    b.branch(head)
    b.position_at_end(head)
    p = b.phi(I64, name="mk.p")
    p.add_incoming(const_i64(0), pre)
    accs = []
    for r in range(MR):
        row = []
        for v in range(NRV):
            phi = b.phi(V, name=f"acc{r}_{v}")
            phi.add_incoming(zero_v, pre)
            row.append(phi)
        accs.append(row)
    b.cbranch(b.icmp_signed("<", p, kc), body, end)
    b.position_at_end(body)
    bptr = gep(b, bpanel, b.mul(p, bstride))
    bv = [b.load(_vptr(b, gep(b, bptr, const_i64(v * VW)), V), align=esize) for v in range(NRV)]
    at = b.mul(p, const_i64(a_step)) if a_step != 1 else p
    new = []
    for r in range(MR):
        a = _splat(b, b.load(gep(b, a_rows[r], at)), V)
        new.append([b.call(fma, [a, bv[v], accs[r][v]]) for v in range(NRV)])
    nxt = b.add(p, const_i64(1), flags=("nsw",))
    p.add_incoming(nxt, b.block)
    for r in range(MR):
        for v in range(NRV):
            accs[r][v].add_incoming(new[r][v], b.block)
    b.branch(head)
    b.position_at_end(end)
    return accs


class _Scale:
    """alpha and beta of ``C = alpha * AB + beta * C``, as scalars and as vectors."""

    def __init__(self, b: ir.IRBuilder, alpha: ir.Value, beta: ir.Value, V: ir.VectorType):
        self._b = b  # the GEMM's one builder
        self.alpha, self.beta = alpha, beta
        self.alpha_v, self.beta_v = _splat(b, alpha, V), _splat(b, beta, V)
        self.beta_zero = b.fcmp_ordered("==", beta, ir.Constant(beta.type, 0.0))

    def first(self, old: ir.Value, product: ir.Value, scalar: bool = False) -> ir.Value:
        """What the first block of k writes: alpha * product (+ beta * old, unless beta is 0:
        then C may hold anything, NaN included, and is not read)."""
        b = self._b
        a, bt = (self.alpha, self.beta) if scalar else (self.alpha_v, self.beta_v)
        new = b.fmul(a, product)
        return b.select(self.beta_zero, new, b.fadd(b.fmul(bt, old), new))

    def later(self, old: ir.Value, product: ir.Value, scalar: bool = False) -> ir.Value:
        """What a later block of k writes: old + alpha * product."""
        return self._b.fadd(old, self._b.fmul(self.alpha if scalar else self.alpha_v, product))


def _write_back(b, accs, c0, ldc, mr, nr, first, tile, MR, NR, NRV, VW, V, esize, scale) -> None:
    """C tile = alpha * accs (+ beta * C) on the first block of k, C tile += alpha * accs after
    it: vector stores for a full tile, a scalar loop over a partial one."""
    full = b.and_(b.icmp_signed("==", mr, const_i64(MR)), b.icmp_signed("==", nr, const_i64(NR)))
    with b.if_else(full) as (then, otherwise):
        with then:
            for r in range(MR):
                crow = gep(b, c0, b.mul(const_i64(r), ldc))
                for v in range(NRV):
                    cp = _vptr(b, gep(b, crow, const_i64(v * VW)), V)
                    old = b.load(cp, align=esize)
                    b.store(b.select(first, scale.first(old, accs[r][v]), scale.later(old, accs[r][v])), cp,
                            align=esize)
        with otherwise:
            for r in range(MR):
                for v in range(NRV):
                    b.store(accs[r][v], _vptr(b, gep(b, tile, const_i64(r * NR + v * VW)), V), align=64)
            with for_range(b, mr, "wr") as r:
                crow = gep(b, c0, b.mul(r, ldc))
                trow = gep(b, tile, b.mul(r, const_i64(NR)))
                with for_range(b, nr, "wc") as c:
                    x = b.load(gep(b, trow, c))
                    cp = gep(b, crow, c)
                    old = b.load(cp)
                    b.store(b.select(first, scale.first(old, x, scalar=True), scale.later(old, x, scalar=True)), cp)


# ----------------------------------------------------------------------------- threads
#: below this many multiply-adds (a few microseconds on one core) a product runs on the
#: calling thread only; handing a slice to a pool worker costs about a microsecond. Few-row
#: products (batch-1 inference) are bound by reading B, and two cores read a B of this size
#: (half a megabyte) faster than one.
PARALLEL_MIN_MACS = 1 << 17
#: elements of the partial results a threaded few-row product keeps on the stack
SPLIT_K_TEMP = 1 << 14


def gemm_parallel_function(module: ir.Module, dtype: str, cfg: GemmConfig | None = None) -> ir.Function:
    """``void graphc_gemm_<dtype>_mt(m, n, k, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta,
    i64 threads)``: the product split into ``threads`` slices of columns (or of rows, when C
    is taller than wide), each slice a call of the single-thread GEMM; slices 1.. run on the
    workers of the thread pool (graphc/lower/threadpool.py; on systems without it, on threads
    made with ``pthread_create`` per call), slice 0 on the caller. Products under
    ``PARALLEL_MIN_MACS`` and ``threads <= 1`` call the GEMM directly; a slice with no thread to
    run it runs on the caller."""
    name = f"graphc_gemm_{dtype}_mt"
    fn = _declared(module, name, _gemm_type(dtype, True))
    if fn is not None:
        return fn
    cfg = cfg or config_for(dtype)
    return _sliced(module, dtype, name, gemm_function(module, dtype, cfg), cfg.nr, cfg.mr, PARALLEL_MIN_MACS)


def _few_rows_function(module: ir.Module, dtype: str) -> ir.Function:
    """``graphc_few_rows_<dtype>``: the plain loop with the GEMM's signature (a slice of a
    threaded product with few rows)."""
    name = f"graphc_few_rows_{dtype}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, _gemm_type(dtype, False), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    m, n, kk, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_else(b.icmp_signed("==", bcs, const_i64(1))) as (unit, strided):
        with unit:  # B's rows contiguous (the usual case): a loop LLVM vectorises
            _emit_rows_of_b(b, A, B, C, m, kk, n, dtype, ars, acs, brs, ldc, alpha, beta)
        with strided:
            emit_naive(b, A, B, C, m, kk, n, dtype, (ars, acs), (brs, bcs), ldc, alpha, beta)
    b.ret_void()
    return fn


#: rows of B added into C per pass over C's row in the few-rows loop
ROWS_PER_PASS = 8


def _emit_rows_of_b(b, A, B, C, m, kk, n, dtype, ars, acs, brs, ldc, alpha, beta) -> None:
    """``C = alpha * A @ B + beta * C`` for few rows of A and B with contiguous rows:
    ``ROWS_PER_PASS`` rows of B are added into a row of C per pass over it, so that C is
    loaded and stored once per that many rows of B (the loop streams B; C stays in L1).
    On znver3, against one row per pass (best times of 27 blocks of 500 calls, three runs):
    1x512x256 on one thread 27-29 us -> 18-19 us; 1x784x512 on two 54-73 us -> 38-56 us."""
    T = F32 if dtype == "float32" else F64
    zero = ir.Constant(T, 0.0)
    U = ROWS_PER_PASS
    with for_range(b, m, "i") as i:
        crow = gep(b, C, b.mul(i, ldc))
        with for_range(b, n, "z") as j:  # beta == 0: C is not read (it may hold NaN)
            cptr = gep(b, crow, j)
            scaled = b.fmul(beta, b.load(cptr))
            b.store(b.select(b.fcmp_ordered("==", beta, zero), zero, scaled), cptr)
        arow = gep(b, A, b.mul(i, ars))

        def add_rows(p0: ir.Value, count: int, name: str) -> None:
            """C's row += alpha * sum of A[i, p] * B[p, :] for the ``count`` rows from ``p0``."""
            avs, brows = [], []
            for u in range(count):
                p = b.add(p0, const_i64(u))
                avs.append(b.fmul(b.load(gep(b, arow, b.mul(p, acs))), alpha))
                brows.append(gep(b, B, b.mul(p, brs)))
            with for_range(b, n, name) as j:
                cptr = gep(b, crow, j)
                acc = b.load(cptr)
                for av, brow in zip(avs, brows):
                    acc = b.fadd(acc, b.fmul(av, b.load(gep(b, brow, j)), flags=("contract",)), flags=("contract",))
                b.store(acc, cptr)

        passes = b.sdiv(kk, const_i64(U))
        with for_range(b, passes, "pq") as q:
            add_rows(b.mul(q, const_i64(U)), U, "j")
        done = b.mul(passes, const_i64(U))
        with for_range(b, b.sub(kk, done), "pr") as r:  # the rows left over, one at a time
            add_rows(b.add(done, r), 1, "jr")


def _sliced(module: ir.Module, dtype: str, name: str, inner: ir.Function, col_unit: int, row_unit: int,
            min_macs: int, split_k: bool = False) -> ir.Function:
    """``name(m, n, k, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta, threads)``: ``inner`` (same
    arguments, no threads) on ``threads`` slices of C's columns (multiples of ``col_unit``) or
    rows (of ``row_unit``), at once; with ``split_k``, on slices of k, each into a partial C
    of its own (on the stack, up to ``SPLIT_K_TEMP`` elements), summed afterwards."""
    T = F32 if dtype == "float32" else F64
    TP = T.as_pointer()
    I8P = ir.IntType(8).as_pointer()
    I32 = ir.IntType(32)
    args_ty = ir.LiteralStructType([I64, I64, I64, TP, I64, I64, TP, I64, I64, TP, I64, T, T])
    worker_ty = ir.FunctionType(I8P, [I8P])

    worker = ir.Function(module, worker_ty, f"{name}_worker")
    worker.linkage = "internal"
    wb = ir.IRBuilder(worker.append_basic_block("entry"))
    sp = wb.bitcast(worker.args[0], args_ty.as_pointer())
    i32 = lambda v: ir.Constant(I32, v)  # noqa: E731
    vals = [wb.load(wb.gep(sp, [i32(0), i32(f)], inbounds=True)) for f in range(13)]
    wb.call(inner, vals)
    wb.ret(ir.Constant(I8P, None))
    pooled = threadpool.available()
    if pooled:
        pool_run = threadpool.pool_run_function(module)
        task = ir.Function(module, threadpool.TASK, f"{name}_task")
        task.linkage = "internal"
        tb = ir.IRBuilder(task.append_basic_block("entry"))
        tb.call(worker, [task.args[0]])
        tb.ret_void()

    create = module.globals.get("pthread_create") or ir.Function(
        module, ir.FunctionType(I32, [I64.as_pointer(), I8P, worker_ty.as_pointer(), I8P]), "pthread_create")
    join = module.globals.get("pthread_join") or ir.Function(
        module, ir.FunctionType(I32, [I64, I8P.as_pointer()]), "pthread_join")

    fn = ir.Function(module, _gemm_type(dtype, True), name)
    fn.linkage = "internal"
    m, n, kk, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta, nthreads = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    max_t = 64
    slots = b.alloca(ir.ArrayType(args_ty, max_t), name="slices")
    tids = b.alloca(ir.ArrayType(I64, max_t), name="tids")
    started = b.alloca(ir.ArrayType(ir.IntType(8), max_t), name="started")
    if split_k:
        temp = b.gep(b.alloca(ir.ArrayType(T, SPLIT_K_TEMP), name="partials"), [i32(0), i32(0)], inbounds=True)
    nt = _min(b, nthreads, const_i64(max_t))
    macs = b.mul(b.mul(m, n), kk)
    serial = b.or_(b.icmp_signed("<=", nt, const_i64(1)), b.icmp_signed("<", macs, const_i64(min_macs)))
    with b.if_else(serial) as (one, many):
        with one:
            b.call(inner, [m, n, kk, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta])
        with many:
            def run(per, total):
                if pooled:  # workers kept between calls (graphc/lower/threadpool.py)
                    size = b.ptrtoint(b.gep(ir.Constant(args_ty.as_pointer(), None), [i32(1)]), I64)
                    b.call(pool_run, [nt, task, b.bitcast(slots, I8P), size])
                else:  # a thread per slice and call
                    _spawn_and_join(b, nt, per, total, slots, started, tids, create, join, worker)

            def store_slot(t, values):
                slot = b.gep(slots, [i32(0), t], inbounds=True)
                for f, v in enumerate(values):
                    b.store(v, b.gep(slot, [i32(0), i32(f)], inbounds=True))

            def by_rows_or_columns():
                by_cols = b.icmp_signed(">=", n, m)
                unit = b.select(by_cols, const_i64(col_unit), const_i64(row_unit))
                total = b.select(by_cols, n, m)
                per = b.sdiv(b.add(total, b.sub(nt, const_i64(1))), nt)           # ceil(total / nt)
                per = b.mul(b.sdiv(b.add(per, b.sub(unit, const_i64(1))), unit), unit)  # to whole tiles
                with for_range(b, nt, "slice") as t:
                    start = b.mul(t, per)
                    cnt = _min(b, per, b.sub(total, start))
                    cnt = b.select(b.icmp_signed("<", cnt, const_i64(0)), const_i64(0), cnt)
                    ms = b.select(by_cols, m, cnt)
                    ns = b.select(by_cols, cnt, n)
                    a0 = b.select(by_cols, A, gep(b, A, b.mul(start, ars)))
                    b0 = b.select(by_cols, gep(b, B, b.mul(start, bcs)), B)
                    c0 = gep(b, C, b.select(by_cols, start, b.mul(start, ldc)))
                    store_slot(t, [ms, ns, kk, a0, ars, acs, b0, brs, bcs, c0, ldc, alpha, beta])
                run(per, total)

            if not split_k:
                by_rows_or_columns()
            else:
                # Few rows (batch-1 inference) read B once, row after row: each thread takes a
                # contiguous block of B's rows (of k) into its own partial C, added up after.
                # Half of B's columns took 74% of the time of all of them (strided rows), half
                # of its rows 59% (1x784x512, znver3).
                fits = b.icmp_signed("<=", b.mul(b.mul(m, n), b.sub(nt, const_i64(1))), const_i64(SPLIT_K_TEMP))
                with b.if_else(fits) as (split, columns):
                    with columns:
                        by_rows_or_columns()
                    with split:
                        per = b.sdiv(b.add(kk, b.sub(nt, const_i64(1))), nt)
                        mn = b.mul(m, n)
                        zero = ir.Constant(T, 0.0)
                        with for_range(b, nt, "kslice") as t:
                            start = b.mul(t, per)
                            cnt = _min(b, per, b.sub(kk, start))
                            cnt = b.select(b.icmp_signed("<", cnt, const_i64(0)), const_i64(0), cnt)
                            first = b.icmp_signed("==", t, const_i64(0))
                            part = gep(b, temp, b.mul(b.sub(t, const_i64(1)), mn))
                            store_slot(t, [m, n, cnt, gep(b, A, b.mul(start, acs)), ars, acs,
                                           gep(b, B, b.mul(start, brs)), brs, bcs,
                                           b.select(first, C, part), b.select(first, ldc, n), alpha,
                                           b.select(first, beta, zero)])
                        run(per, kk)
                        with for_range(b, b.sub(nt, const_i64(1)), "ksum") as t:
                            part = gep(b, temp, b.mul(t, mn))
                            with for_range(b, m, "ksi") as i:
                                crow, prow = gep(b, C, b.mul(i, ldc)), gep(b, part, b.mul(i, n))
                                with for_range(b, n, "ksj") as j:
                                    cp = gep(b, crow, j)
                                    b.store(b.fadd(b.load(cp), b.load(gep(b, prow, j))), cp)
    b.ret_void()
    return fn


def _spawn_and_join(b, nt, per, total, slots, started, tids, create, join, worker) -> None:
    """Slices 1.. on threads made now, slice 0 (and any whose thread failed) on this one."""
    I8P = ir.IntType(8).as_pointer()
    i32 = lambda v: ir.Constant(ir.IntType(32), v)  # noqa: E731
    with for_range(b, nt, "spawn") as t:
        slot = b.gep(slots, [i32(0), t], inbounds=True)
        cnt = b.sub(total, b.mul(t, per))
        flag = b.gep(started, [i32(0), t], inbounds=True)
        b.store(ir.Constant(ir.IntType(8), 0), flag)
        go = b.and_(b.icmp_signed(">", t, const_i64(0)), b.icmp_signed(">", cnt, const_i64(0)))
        with b.if_then(go):
            rc = b.call(create, [b.gep(tids, [i32(0), t], inbounds=True), ir.Constant(I8P, None),
                                 worker, b.bitcast(slot, I8P)])
            b.store(b.zext(b.icmp_signed("==", rc, i32(0)), ir.IntType(8)), flag)
    with for_range(b, nt, "own") as t:
        flag = b.load(b.gep(started, [i32(0), t], inbounds=True))
        with b.if_then(b.icmp_unsigned("==", flag, ir.Constant(ir.IntType(8), 0))):
            slot = b.gep(slots, [i32(0), t], inbounds=True)
            b.call(worker, [b.bitcast(slot, I8P)])
    with for_range(b, nt, "join") as t:
        flag = b.load(b.gep(started, [i32(0), t], inbounds=True))
        with b.if_then(b.icmp_unsigned("!=", flag, ir.Constant(ir.IntType(8), 0))):
            b.call(join, [b.load(b.gep(tids, [i32(0), t], inbounds=True)), ir.Constant(I8P.as_pointer(), None)])


# ----------------------------------------------------------------------------- the plain loop
def emit_naive(b: ir.IRBuilder, pa, pb, pc, ms, ks, ns, dtype: str, a_strides=None, b_strides=None,
               ldc=None, alpha=None, beta=None) -> None:
    """``C[i, :] = alpha * sum_p A[i, p] * B[p, :] + beta * C[i, :]``: the i-p-j loop,
    vectorised by LLVM over j (when B's rows are contiguous). ``a_strides``/``b_strides``: (row,
    column) strides in elements, row-major by default; without ``alpha``/``beta`` (integer
    dtypes), ``C = A @ B``. Measured on znver5 for 1x784x512, unrolling over p did not help
    (on znver3 it does: see ``_emit_rows_of_b``, what few-row products use)."""
    from graphc.lower import scalar
    fl = dtype.startswith("float")
    zero = scalar.constant(0, dtype)
    ars, acs = a_strides or (ks, const_i64(1))
    brs, bcs = b_strides or (ns, const_i64(1))
    ldc = ldc if ldc is not None else ns
    unit = isinstance(bcs, ir.Constant) and int(bcs.constant) == 1
    with for_range(b, ms, "i") as i:
        crow = gep(b, pc, b.mul(i, ldc))
        with for_range(b, ns, "z") as j:
            cptr = gep(b, crow, j)
            if beta is None:
                b.store(zero, cptr)
            else:  # beta == 0: C is not read (it may hold NaN)
                scaled = b.fmul(beta, b.load(cptr))
                b.store(b.select(b.fcmp_ordered("==", beta, zero), zero, scaled), cptr)
        arow = gep(b, pa, b.mul(i, ars))
        with for_range(b, ks, "p") as p:
            av = b.load(gep(b, arow, b.mul(p, acs)))
            if alpha is not None:
                av = b.fmul(av, alpha)
            brow = gep(b, pb, b.mul(p, brs))
            with for_range(b, ns, "j") as j:
                cptr = gep(b, crow, j)
                bv = b.load(gep(b, brow, j if unit else b.mul(j, bcs)))
                if fl:
                    prod = b.fmul(av, bv, flags=("contract",))
                    b.store(b.fadd(b.load(cptr), prod, flags=("contract",)), cptr)
                else:
                    b.store(b.add(b.load(cptr), b.mul(av, bv)), cptr)


def matmul_function(module: ir.Module, dtype: str, threaded: bool) -> ir.Function:
    """``graphc_matmul_<dtype>[_mt](m, n, k, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta[, threads])``:
    the plain loop for fewer than ``SMALL_M`` rows, else the packed GEMM. What a matmul kernel
    calls when ``m`` is known only at run time."""
    name = f"graphc_matmul_{dtype}" + ("_mt" if threaded else "")
    fn = _declared(module, name, _gemm_type(dtype, threaded))
    if fn is not None:
        return fn
    fn = ir.Function(module, _gemm_type(dtype, threaded), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    m, n, kk, A, ars, acs, B, brs, bcs, C, ldc, alpha, beta = fn.args[:13]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_else(b.icmp_signed("<", m, const_i64(SMALL_M))) as (few, many):
        with few:
            if threaded:  # slices of columns, each a multiple of a cache line of C
                few_rows = _sliced(module, dtype, f"graphc_few_rows_{dtype}_mt", _few_rows_function(module, dtype),
                                   64 // (4 if dtype == "float32" else 8), 1, PARALLEL_MIN_MACS,
                                   split_k=True)
                b.call(few_rows, list(fn.args))
            else:
                b.call(_few_rows_function(module, dtype), list(fn.args))
        with many:
            if threaded:
                b.call(gemm_parallel_function(module, dtype), list(fn.args))
            else:
                b.call(gemm_function(module, dtype), list(fn.args))
    b.ret_void()
    return fn


# ----------------------------------------------------------------------------- the kernel
def lower_matmul(k) -> None:
    """The body of a MATMUL kernel (``k`` is a ``graphc.lower.cpu.Kernel``): a loop over the
    (broadcast) batch, one GEMM per matrix."""
    from graphc.ir.shapes import as_dim
    from graphc.lower.loops import broadcast_strides, contiguous_strides, emit_nest

    node = k.node
    a, bb = node.inputs
    b = k.b
    m, kk, n = a.shape[-2], a.shape[-1], bb.shape[-1]
    batch = node.shape[:-2]
    a_str = broadcast_strides(a.shape[:-2], batch)
    b_str = broadcast_strides(bb.shape[:-2], batch)
    o_str = contiguous_strides(batch)
    a_mat, b_mat, o_mat = as_dim(m * kk), as_dim(kk * n), as_dim(m * n)

    def scale(s, f):
        return [as_dim(x * f) for x in s]

    ms, ks, ns = k.size(m), k.size(kk), k.size(n)
    dtype = node.dtype
    packed = dtype in ("float32", "float64")
    static_m = int(ms.constant) if isinstance(ms, ir.Constant) else None
    # CompileOptions.threads reaches here when the kernel carries the options (k.options)
    options = getattr(k, "options", None)
    threads = options.thread_count() if options is not None else 1
    extra = [const_i64(threads)] if threads > 1 else []
    if packed and static_m is not None and static_m < SMALL_M and threads <= 1:
        packed = False  # the plain loop, inline
    if packed and static_m is not None and static_m >= SMALL_M:
        gemm = gemm_parallel_function(b.module, dtype) if threads > 1 else gemm_function(b.module, dtype)
    elif packed:  # few rows, or rows known only at run time: the dispatcher (threaded or not)
        gemm = matmul_function(b.module, dtype, threads > 1)

    # An operand the schedule left transposed in place (a view of its source, see
    # schedule._folds_into_matmul) is read with swapped strides instead of being copied.
    one = const_i64(1)
    a_str2 = (one, ms) if k.step.ins[0].transposed else (ks, one)
    b_str2 = (one, ks) if k.step.ins[1].transposed else (ns, one)

    # C = alpha * A @ B + beta * C: alpha 1, beta 0, unless the schedule folded an update
    # ``w - lr * (A @ B)`` into this product (Step.accumulate: C is w, beta 1)
    alpha = beta = None
    if packed or dtype.startswith("float"):
        T = F32 if dtype == "float32" else F64
        alpha, beta = ir.Constant(T, 1.0), ir.Constant(T, 0.0)
        acc = k.step.accumulate
        if acc is not None:
            sign, const = acc
            factor = ir.Constant(T, const) if const is not None else k.load(k.ins[2], const_i64(0), dtype)
            alpha, beta = b.fmul(ir.Constant(T, sign), factor), ir.Constant(T, 1.0)

    def body(offsets: list[ir.Value]) -> None:
        pa, pb, pc = (gep(b, p, off) for p, off in zip((k.ins[0], k.ins[1], k.out), offsets))
        if not packed:
            emit_naive(b, pa, pb, pc, ms, ks, ns, dtype, a_str2, b_str2, None, alpha, beta)
        else:
            b.call(gemm, [ms, ns, ks, pa, *a_str2, pb, *b_str2, pc, ns, alpha, beta] + extra)

    emit_nest(b, k.size, batch, [scale(a_str, a_mat), scale(b_str, b_mat), scale(o_str, o_mat)],
              [const_i64(0)] * 3, body)


__all__ = ["GemmConfig", "config_for", "gemm_function", "gemm_parallel_function", "matmul_function",
           "PARALLEL_MIN_MACS", "emit_naive", "lower_matmul", "SMALL_M", "EXTERNAL_RUNTIME"]
