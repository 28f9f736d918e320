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
_library: NativeModule | None = None


def exported_names() -> list[str]:
    """The functions the library defines for generated code to call."""
    pool = [threadpool.NAME] if threadpool.available() else []
    return pool + [f"graphc_{kind}_{dtype}{suffix}" for kind in ("gemm", "matmul") for dtype in DTYPES
                   for suffix in ("", "_mt")]


def library_ir() -> str:
    """LLVM IR of the library: every exported function, with external linkage."""
    module = ir.Module(name="graphc_runtime")
    if threadpool.available():
        threadpool.pool_run_function(module, define=True)  # the one pool of the process
    for dtype in DTYPES:
        for threaded in (False, True):
            matmul_function(module, dtype, threaded)
    names = set(exported_names())
    for fn in module.functions:
        if fn.name in names:
            fn.linkage = "external"
    return str(module)


def load(cache_dir: str | None = None) -> NativeModule:
    """Compile the library (once per process; from the disk cache when ``cache_dir`` holds it)
    and make its functions resolvable by code JIT-compiled afterwards."""
    global _library
    with _lock:
        if _library is None:
            key = source_key("runtime-library")
            library = load_cached(key, cache_dir, OPT_LEVEL)
            if library is None:
                library = compile_ir(library_ir(), OPT_LEVEL, cache_dir, key=key)
            for name in exported_names():
                register_symbol(name, library.address(name))
            _library = library
        return _library
