"""Compile options: one frozen value passed explicitly to every stage (no global flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CompileOptions:
    """How a function is compiled.

    - ``opt_level``: 0 runs the graph as built; 1 simplifies; 2 (default) also fuses.
    - ``llvm_opt``: the LLVM optimisation level of the native code: 2 (the default) vectorises
      loops; 3 also interleaves and unrolls them (twice the compile time; the GEMMs, in the
      runtime library, always get 3).
    - ``threads``: threads the generated code may use for large products (1 = none; None,
      the default: one per core). Products of at least ``gemm.PARALLEL_MIN_MACS`` (2^17)
      multiply-adds are split between the calling thread and the workers of a persistent
      pool (graphc/lower/threadpool.py); smaller ones run on the calling thread.
    - ``cache_dir``: where compiled object code is cached on disk (None: no disk cache).
    - ``target``: "cpu" (native code for this machine) or "cuda".
    - ``compile_jobs``: processes compiling one program's kernels (None: two on a multi-core
      Linux machine for programs of 12 kernels or more; 1: this process only). See
      graphc/lower/parallel_compile.py.
    - ``profile``: time every kernel of the native code (``fn.profile()`` reports them; the
      ``GRAPHC_PROFILE=1`` environment variable turns it on for every function). Costs two
      clock reads per kernel call.
    """

    opt_level: int = 2
    llvm_opt: int = 2
    threads: int | None = None
    cache_dir: str | None = None
    target: str = "cpu"
    compile_jobs: int | None = None
    profile: bool = False

    def thread_count(self) -> int:
        """``threads``, with None resolved to the number of cores."""
        return max(1, int(self.threads if self.threads is not None else (os.cpu_count() or 1)))

    def replace(self, **changes) -> "CompileOptions":
        return replace(self, **changes)
