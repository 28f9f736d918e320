"""The runtime library: native code every JIT-compiled graph shares, compiled once per process.

The packed GEMMs (``graphc/lower/gemm.py``) are large and do not depend on the graph: emitting
and optimising a copy in every compiled function cost most of the compile time of a small
model (an MLP training step spent about half of its LLVM time on them). JIT-compiled modules
declare them instead (``gemm.EXTERNAL_RUNTIME``) and this module's definitions are registered
as symbols before those modules are linked. Exported artifacts stay self-contained: their
module defines its own copy (``emit_module(..., external_runtime=False)``).

It also holds the thread pool (``graphc/lower/threadpool.py``): its workers run its code for
the rest of the process, so it must live in a module that is never freed; and the step loop
(``graphc_run_steps``, :func:`steps_function`) that runs a compiled function several times in
one call from Python (``Function.run_steps``, Keras' ``steps_per_execution``).
"""
from __future__ import annotations

import threading

from llvmlite import ir

from graphc.backend.jit import NativeModule, compile_ir, load_cached, register_symbol, source_key
from graphc.lower import threadpool
from graphc.lower.gemm import matmul_function
from graphc.lower.irutil import I64, for_range

DTYPES = ("float32", "float64")
OPT_LEVEL = 3
_lock = threading.Lock()
#: the step loop's name (see steps_function)
RUN_STEPS = "graphc_run_steps"
#: the parts loaded in this process: "pool", "steps", then one per dtype, each loaded when first needed
#: (a float32 model never compiles the float64 GEMMs: half of the first compile on a machine)
_parts: dict[str, NativeModule] = {}


def exported_names(part: str | None = None) -> list[str]:
    """The functions the library (or one part of it) defines for generated code to call."""
    if part == "pool":
        return [threadpool.NAME] if threadpool.available() else []
    if part == "steps":
        return [RUN_STEPS]
    dtypes = DTYPES if part is None else (part,)
    gemms = [f"graphc_{kind}_{dtype}{suffix}" for kind in ("gemm", "matmul") for dtype in dtypes
             for suffix in ("", "_mt")]
    return (exported_names("pool") + exported_names("steps") if part is None else []) + gemms


def library_ir(part: str) -> str:
    """LLVM IR of one part of the library ("pool", "steps" or a dtype's GEMMs), exported
    functions with external linkage."""
    module = ir.Module(name=f"graphc_runtime_{part}")
    if part == "steps":
        steps_function(module)
    elif part == "pool":
        if threadpool.available():
            threadpool.pool_run_function(module, define=True)  # the one pool of the process
    else:
        for threaded in (False, True):
            matmul_function(module, part, threaded)  # declares the pool's entry
    names = set(exported_names(part))
    for fn in module.functions:
        if fn.name in names:
            fn.linkage = "external"
    return str(module)


def load(cache_dir: str | None = None, dtypes: tuple[str, ...] = DTYPES) -> None:
    """Compile the pool and the GEMMs of ``dtypes`` (once per process; from the disk cache when
    ``cache_dir`` holds them) and make their functions resolvable by code JIT-compiled
    afterwards."""
    with _lock:
        for part in ("pool", "steps", *dtypes):
            if part in _parts:
                continue
            key = source_key("runtime-library", part)
            library = load_cached(key, cache_dir, OPT_LEVEL)
            if library is None:
                library = compile_ir(library_ir(part), OPT_LEVEL, cache_dir, key=key)
            for name in exported_names(part):
                register_symbol(name, library.address(name))
            _parts[part] = library


def address(name: str) -> int:
    """The address of the library function ``name`` (its part loaded by :func:`load`)."""
    for part, library in _parts.items():
        if name in exported_names(part):
            return library.address(name)
    raise KeyError(f"{name} is not in the loaded parts of the runtime library")


def steps_function(module: ir.Module) -> ir.Function:
    """``i32 graphc_run_steps(run, args, nargs, advance, syms, rng_index, step0, ws, n)``: call
    a compiled function's entry ``run(args, syms, ws)`` (see ``executable._ENTRY``) ``n``
    times, the random-step symbol ``syms[rng_index]`` set to ``step0 + s`` for step ``s``,
    and after each step every argument pointer ``i`` moved on by ``advance[i]`` bytes (the
    next slice of an input or output; 0 for weights). Returns the first nonzero status, which
    stops the loop, else 0. What n calls from Python would do, without their overhead."""
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    entry_ty = ir.FunctionType(i32, [i8p, i8p, i8p])
    fnty = ir.FunctionType(i32, [entry_ty.as_pointer(), i8p.as_pointer(), I64, I64.as_pointer(),
                                 I64.as_pointer(), I64, I64, i8p, I64])
    fn = ir.Function(module, fnty, RUN_STEPS)
    run, args, nargs, advance, syms, rng_index, step0, ws, n = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    local = b.alloca(i8p, size=nargs, name="args")  # this loop's copy: the caller's stays as it was
    with for_range(b, nargs, "copy") as i:
        b.store(b.load(b.gep(args, [i])), b.gep(local, [i]))
    failed = fn.append_basic_block("failed")
    statuses = []
    with for_range(b, n, "step") as s:
        b.store(b.add(step0, s), b.gep(syms, [rng_index]))
        status = b.call(run, [b.bitcast(local, i8p), b.bitcast(syms, i8p), ws])
        statuses.append(status)
        ok = fn.append_basic_block("ok")
        b.cbranch(b.icmp_signed("!=", status, ir.Constant(i32, 0)), failed, ok)
        b.position_at_end(ok)
        with for_range(b, nargs, "advance") as i:
            slot = b.gep(local, [i])
            b.store(b.gep(b.load(slot), [b.load(b.gep(advance, [i]))]), slot)
    b.ret(ir.Constant(i32, 0))
    b.position_at_end(failed)  # reached only from the step that failed: its status dominates
    b.ret(statuses[0])
    return fn
