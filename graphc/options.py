"""Compile options: one frozen value passed explicitly to every stage (no global flags)."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CompileOptions:
    """How a function is compiled.

    - ``opt_level``: 0 runs the graph as built; 1 simplifies; 2 (default) also fuses.
    - ``llvm_opt``: the LLVM optimisation level of the native code.
    - ``threads``: worker threads the generated code may use (1 = none).
    - ``cache_dir``: where compiled object code is cached on disk (None: no disk cache).
    - ``target``: "cpu" (native code for this machine) or "cuda".
    """

    opt_level: int = 2
    llvm_opt: int = 3
    threads: int = 1
    cache_dir: str | None = None
    target: str = "cpu"

    def replace(self, **changes) -> "CompileOptions":
        return replace(self, **changes)
