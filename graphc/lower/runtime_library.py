"""The runtime library: native code every JIT-compiled graph shares, compiled once per process.

The packed GEMMs (``graphc/lower/gemm.py``) are large and do not depend on the graph: emitting
and optimising a copy in every compiled function cost most of the compile time of a small
model (an MLP training step spent about half of its LLVM time on them). JIT-compiled modules
declare them instead (``gemm.EXTERNAL_RUNTIME``) and this module's definitions are registered
as symbols before those modules are linked. Exported artifacts stay self-contained: their
module defines its own copy (``emit_module(..., external_runtime=False)``).

It also holds the thread pool (``graphc/lower/threadpool.py``): its workers run its code for
the rest of the process, so it must live in a module that is never freed.
"""
from __future__ import annotations

import threading

from llvmlite import ir

from graphc.backend.jit import NativeModule, compile_ir, load_cached, register_symbol, source_key
from graphc.lower import threadpool
from graphc.lower.gemm import matmul_function

DTYPES = ("float32", "float64")
OPT_LEVEL = 3
_lock = threading.Lock()
#: the parts loaded in this process: "pool", then one per dtype, each loaded when first needed
#: (a float32 model never compiles the float64 GEMMs: half of the first compile on a machine)
_parts: dict[str, NativeModule] = {}


def exported_names(part: str | None = None) -> list[str]:
    """The functions the library (or one part of it) defines for generated code to call."""
    if part == "pool":
        return [threadpool.NAME] if threadpool.available() else []
    dtypes = DTYPES if part is None else (part,)
    gemms = [f"graphc_{kind}_{dtype}{suffix}" for kind in ("gemm", "matmul") for dtype in dtypes
             for suffix in ("", "_mt")]
    return (exported_names("pool") if part is None else []) + gemms


def library_ir(part: str) -> str:
    """LLVM IR of one part of the library ("pool" or a dtype's GEMMs), exported functions
    with external linkage."""
    module = ir.Module(name=f"graphc_runtime_{part}")
    if part == "pool":
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
        for part in ("pool", *dtypes):
            if part in _parts:
                continue
            key = source_key("runtime-library", part)
            library = load_cached(key, cache_dir, OPT_LEVEL)
            if library is None:
                library = compile_ir(library_ir(part), OPT_LEVEL, cache_dir, key=key)
            for name in exported_names(part):
                register_symbol(name, library.address(name))
            _parts[part] = library
