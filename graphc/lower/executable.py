"""A compiled function's native side: schedule, emit, JIT-compile, and call through ctypes.

One call of the compiled function is one native call: Python only checks the inputs, binds
the symbolic sizes, allocates the outputs (and, once per distinct size, the workspace) and
passes pointers.
"""
from __future__ import annotations

import ctypes
from typing import Mapping, Sequence

import numpy as np
import sympy

from graphc.backend.jit import compile_ir
from graphc.errors import InputError
from graphc.frontend.variables import storage
from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ir.shapes import RNG_STEP
from graphc.lower.cpu import ERR_INDEX, WORKSPACE_ALIGN, emit_module
from graphc.lower.schedule import schedule
from graphc.options import CompileOptions

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_WS_SIZE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class NativeExecutable:
    """The native code of one compiled graph and what is needed to call it."""

    def __init__(self, graph: Graph, inputs: Sequence[Node], shared: Sequence[Node],
                 update_targets: Sequence[Node], options: CompileOptions, name: str):
        n_user = len(graph.outputs) - len(update_targets)
        self.program = schedule(list(graph.outputs), list(inputs), list(shared), n_user, list(update_targets))
        self.name = "".join(c if c.isalnum() else "_" for c in name) or "fn"
        self.llvm_ir = emit_module(self.program, self.name, options)
        self.module = compile_ir(self.llvm_ir, options.llvm_opt, options.cache_dir)
        self._run = _ENTRY(self.module.address(f"{self.name}_run"))
        self._ws_size = _WS_SIZE(self.module.address(f"{self.name}_workspace_size"))
        self._symbols = self.program.symbols
        self._rng_index = self._symbols.index(RNG_STEP)
        out_shapes = [b.shape for b in self.program.outputs]
        self._out_dtypes = [np.dtype(b.dtype) for b in self.program.outputs]
        flat = [d for s in out_shapes for d in s]
        fn = sympy.lambdify(self._symbols, flat, modules="math") if flat else (lambda *a: [])
        ranks = [len(s) for s in out_shapes]

        def shapes(*values):
            it = iter(int(v) for v in fn(*values))
            return [tuple(next(it) for _ in range(r)) for r in ranks]
        self._shapes = shapes
        self._n_in = len(self.program.inputs)
        n_args = self._n_in + len(self.program.shared) + len(self.program.consts) + len(self.program.outputs)
        self._args = (ctypes.c_void_p * max(n_args, 1))()
        self._shared = [storage(s) for s in shared]
        self._consts = [np.ascontiguousarray(a) for _, a in self.program.consts]
        base = self._n_in
        for i, st in enumerate(self._shared):
            self._args[base + i] = _address(st.array)
        base += len(self._shared)
        for i, a in enumerate(self._consts):
            self._args[base + i] = _address(a)
        self._out_base = base + len(self._consts)
        self._syms = np.zeros(max(len(self._symbols), 1), np.int64)
        self._plans: dict[tuple, tuple[list[tuple], np.ndarray, int]] = {}

    def _plan(self, key: tuple) -> tuple[list[tuple], np.ndarray, int]:
        plan = self._plans.get(key)
        if plan is None:
            shapes = self._shapes(*self._syms.tolist())
            nbytes = int(self._ws_size(_address(self._syms)))
            ws = np.empty(nbytes + WORKSPACE_ALIGN, np.uint8)
            offset = (-_address(ws)) % WORKSPACE_ALIGN
            plan = (shapes, ws, _address(ws) + offset)
            self._plans[key] = plan
        return plan

    def run(self, arrays: Sequence[np.ndarray], env: Mapping[sympy.Symbol, int]) -> list[np.ndarray]:
        """Run on checked, contiguous input arrays; returns the outputs, applies updates in place."""
        syms = self._syms
        for i, s in enumerate(self._symbols):
            syms[i] = env.get(s, 0)
        key = tuple(syms[i] for i in range(len(self._symbols)) if i != self._rng_index)
        shapes, _, ws_addr = self._plan(key)
        args = self._args
        for i, a in enumerate(arrays):
            args[i] = _address(a)
        for i, st in enumerate(self._shared):  # set_value keeps the buffer, but be safe
            args[self._n_in + i] = _address(st.array)
        outs = [np.empty(shape, dtype) for shape, dtype in zip(shapes, self._out_dtypes)]
        for i, o in enumerate(outs):
            args[self._out_base + i] = _address(o)
        status = self._run(ctypes.addressof(args), _address(syms), ws_addr)
        if status == ERR_INDEX:
            raise InputError("an index passed to take/gather/embedding is out of range")
        if status:
            raise InputError(f"native code failed with status {status}")
        return outs
