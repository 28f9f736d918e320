"""A compiled function's native side: schedule, emit, JIT-compile, and call through ctypes.

One call of the compiled function is one native call: Python only checks the inputs, binds
the symbolic sizes, allocates the outputs (and, once per distinct size, the workspace) and
passes pointers.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import sys
import threading
from typing import Mapping, Sequence

import numpy as np
import sympy

from graphc.backend.jit import compile_ir, link_objects, load_cached, source_key, store_object
from graphc.errors import InputError
from graphc.frontend.variables import HOST, storage
from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import RNG_STEP, evaluate
from graphc.lower import parallel_compile, runtime_library
from graphc.lower.cpu import ERR_INDEX, WORKSPACE_ALIGN, emit_module, profile_kernels
from graphc.ir.printer import debugprint
from graphc.lower.schedule import Program, schedule
from graphc.options import CompileOptions

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_WS_SIZE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
#: runtime_library.steps_function: (run, args, nargs, advance, syms, rng_index, step0, ws, n)
_RUN_STEPS = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)


def _matmul_dtypes(program: Program) -> tuple[str, ...]:
    """The float dtypes of the program's matmuls (loop bodies included)."""
    found: set[str] = set()
    for step in program.steps:
        if step.body is not None:
            found.update(_matmul_dtypes(step.body))
        elif step.node is not None and step.node.op is Op.MATMUL and step.node.dtype in runtime_library.DTYPES:
            found.add(step.node.dtype)
    return tuple(sorted(found))


def _count_kernels(program: Program) -> int:
    return sum(_count_kernels(s.body) if s.body is not None else 1 for s in program.steps)


def program_key(program: Program, graph: Graph, name: str, options: CompileOptions, jobs: int = 1) -> str:
    """The disk-cache key of a scheduled program: the optimised graph as text (symbols named by
    their position in the program, which is how the code reads them), the order of its
    arguments, its constants' bytes and the options that change the code."""
    index = {s.name: f"$s{i}" for i, s in enumerate(program.symbols)}
    text = debugprint(list(graph.outputs), file=False)
    if index:
        text = re.sub("|".join(sorted(map(re.escape, index), key=len, reverse=True)), lambda m: index[m.group(0)], text)
    args = [f"{b.kind}:{b.dtype}:{b.shape}" for b in program.inputs + program.shared + program.outputs]
    args = [re.sub(r"[A-Za-z_]\w*", lambda m: index.get(m.group(0), m.group(0)), a) for a in args]
    consts = hashlib.sha256()
    for _, value in program.consts:
        arr = np.ascontiguousarray(value)
        consts.update(f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes())
    return source_key("program", name, text, "\n".join(args), consts.hexdigest(), str(options.llvm_opt),
                      str(options.thread_count()), str(options.opt_level), f"parts={jobs}",
                      f"profile={options.profile}")


_char_at = ctypes.c_char.from_buffer
_pointer_at = ctypes.c_void_p.from_address


def _address_slow(a: np.ndarray) -> int:
    """The data pointer of a contiguous array, through the buffer protocol (0.5 us) where the
    array is writable and not empty, else through ``__array_interface__`` (1.7 us here)."""
    try:
        return ctypes.addressof(_char_at(a))
    except (TypeError, ValueError):
        return a.__array_interface__["data"][0]


def _data_offset() -> int | None:
    """Where an ndarray object keeps its data pointer: right after the object header
    (``PyArrayObject_fields.data``, NumPy's stable ABI). Checked here on arrays of every kind
    the calls pass; None (use ``_address_slow``) if any disagrees, or off CPython, where
    ``id`` is not an address."""
    if sys.implementation.name != "cpython":
        return None
    offset = object.__basicsize__
    base = np.arange(12, dtype=np.float32)
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    probes = [base, base[4:], base.reshape(3, 4)[1], readonly, np.empty(0), np.float64(1.0).reshape(())]
    for a in probes:
        a = np.asarray(a)
        if _pointer_at(id(a) + offset).value != a.__array_interface__["data"][0]:
            return None
    return offset


_DATA_OFFSET = _data_offset()


def _address(a: np.ndarray) -> int:
    """The data pointer of an ndarray (0.2 us: read from the object; ``_address_slow`` where
    this NumPy/Python lays its objects out differently)."""
    if _DATA_OFFSET is None:
        return _address_slow(a)
    return _pointer_at(id(a) + _DATA_OFFSET).value or 0


class NativeExecutable:
    """The native code of one compiled graph and what is needed to call it."""

    def __init__(self, graph: Graph, inputs: Sequence[Node], shared: Sequence[Node],
                 update_targets: Sequence[Node], options: CompileOptions, name: str):
        n_user = len(graph.outputs) - len(update_targets)
        self.program = schedule(list(graph.outputs), list(inputs), list(shared), n_user, list(update_targets))
        self.name = "".join(c if c.isalnum() else "_" for c in name) or "fn"
        self._options = options
        self._llvm_ir: str | None = None
        runtime_library.load(options.cache_dir, _matmul_dtypes(self.program))  # the GEMMs it calls
        jobs = parallel_compile.jobs_for(options.compile_jobs, _count_kernels(self.program))
        # The disk cache is keyed by the scheduled program, so a hit skips emitting LLVM IR too.
        key = program_key(self.program, graph, self.name, options, jobs) if options.cache_dir else None
        parts = [f"{key}-part{i}" for i in range(1, jobs)] if key else []
        module = load_cached(key, options.cache_dir, options.llvm_opt, parts) if key else None
        if module is None and jobs == 1:
            module = compile_ir(self.llvm_ir, options.llvm_opt, options.cache_dir, key=key)
        elif module is None:
            def part_ir(i: int) -> str:
                return emit_module(self.program, self.name, options, external_runtime=True, part=(i, jobs))
            blobs = parallel_compile.compile_parts(part_ir, jobs, options.llvm_opt)
            for k, blob in zip([key] + parts if key else [], blobs):
                store_object(k, options.cache_dir, blob)
            module = link_objects(blobs, options.llvm_opt,
                                  os.path.join(options.cache_dir, key + ".o") if key else None)
        self.module = module
        self._run = _ENTRY(self.module.address(f"{self.name}_run"))
        self._run_steps = _RUN_STEPS(runtime_library.address(runtime_library.RUN_STEPS))
        self._ws_size = _WS_SIZE(self.module.address(f"{self.name}_workspace_size"))
        self._symbols = self.program.symbols
        self._rng_index = self._symbols.index(RNG_STEP)
        out_shapes = [b.shape for b in self.program.outputs]
        self._out_dtypes = [np.dtype(b.dtype) for b in self.program.outputs]
        symbols = self._symbols

        def shapes(*values):
            # once per distinct set of sizes (see _plan): no need to compile an evaluator
            env = dict(zip(symbols, values))
            return [tuple(evaluate(d, env) for d in shape) for shape in out_shapes]
        self._shapes = shapes
        self._n_in = len(self.program.inputs)
        n_args = self._n_in + len(self.program.shared) + len(self.program.consts) + len(self.program.outputs)
        self._args = (ctypes.c_void_p * max(n_args, 1))()
        self._shared = [storage(s) for s in shared]
        self._writes_shared = bool(update_targets)  # counted in HOST.writes (CUDA copies check it)
        self._consts = [np.ascontiguousarray(a) for _, a in self.program.consts]
        base = self._n_in
        for i, st in enumerate(self._shared):
            self._args[base + i] = _address(st.array)
        base += len(self._shared)
        for i, a in enumerate(self._consts):
            self._args[base + i] = _address(a)
        self._out_base = base + len(self._consts)
        self._args_address = ctypes.addressof(self._args)
        self._syms = (ctypes.c_int64 * max(len(self._symbols), 1))()
        self._syms_address = ctypes.addressof(self._syms)
        self._plans: dict[tuple, tuple[list[tuple], np.ndarray, int]] = {}
        self._lock = threading.Lock()
        self._last_sizes: tuple | None = None  # the sizes now in self._syms
        self._last_plan: tuple | None = None   # and their plan
        self._profile = None
        if options.profile:
            names = profile_kernels(self.program)
            counters = (ctypes.c_int64 * (2 * max(len(names), 1))).from_address(
                self.module.address(f"{self.name}_profile"))
            self._profile = (names, counters)

    def profile(self, reset: bool = False) -> list[tuple[str, int, float]]:
        """``(kernel, calls, seconds)`` for every kernel since compiling (or the last reset),
        slowest first; needs ``CompileOptions(profile=True)``."""
        if self._profile is None:
            raise InputError("this function was compiled without profiling: pass "
                             "options=CompileOptions(profile=True) or set GRAPHC_PROFILE=1")
        names, counters = self._profile
        rows = [(name, int(counters[2 * i + 1]), counters[2 * i] * 1e-9) for i, name in enumerate(names)]
        if reset:
            ctypes.memset(counters, 0, ctypes.sizeof(counters))
        return sorted(rows, key=lambda r: -r[2])

    @property
    def llvm_ir(self) -> str:
        """The LLVM IR of this function (generated on demand after a disk-cache hit)."""
        if self._llvm_ir is None:
            self._llvm_ir = emit_module(self.program, self.name, self._options, external_runtime=True)
        return self._llvm_ir

    def _plan(self, key: tuple) -> tuple[list[tuple], np.ndarray, int]:
        plan = self._plans.get(key)
        if plan is None:
            shapes = self._shapes(*list(self._syms)[:len(self._symbols)])
            nbytes = int(self._ws_size(self._syms_address))
            ws = np.empty(nbytes + WORKSPACE_ALIGN, np.uint8)
            offset = (-_address(ws)) % WORKSPACE_ALIGN
            outs = list(zip(shapes, self._out_dtypes))
            plan = (outs, ws, _address(ws) + offset)
            self._plans[key] = plan
        return plan

    def sizes(self, env: Mapping[sympy.Symbol, int]) -> tuple:
        """The symbolic sizes bound in ``env``, in the order ``run_sizes`` takes them (the
        random-step symbol as 0)."""
        return tuple(0 if s is RNG_STEP else int(env.get(s, 0)) for s in self._symbols)

    def run_sizes(self, arrays: Sequence[np.ndarray], sizes: tuple, step: int) -> list[np.ndarray]:
        """Run on checked, contiguous input arrays, with the sizes from ``sizes()`` and the
        call's random step; returns the outputs, applies updates in place."""
        # This is the per-call overhead of every compiled function (about 2 us of Python):
        # keep it to plain Python, in one function, and to what changes from call to call. The
        # shared variables' buffers never move (SharedStorage): their addresses were set once.
        # One call at a time: the argument and size arrays and the workspace are this object's,
        # and ctypes lets another Python thread in while the native code runs.
        with self._lock:
            if HOST.device_newer:  # a CUDA function left newer values in device memory
                self._fetch_shared()
            syms = self._syms
            if sizes is not self._last_sizes:  # the caller passes the same tuple for the same shapes
                for i, v in enumerate(sizes):
                    syms[i] = v
                self._last_sizes = sizes
                self._last_plan = self._plan(sizes)
            syms[self._rng_index] = step
            outs_spec, _, ws_addr = self._last_plan
            args = self._args
            offset = _DATA_OFFSET  # the pointer read inline (a call per array costs more)
            i = 0
            for a in arrays:
                args[i] = _pointer_at(id(a) + offset).value if offset is not None else _address_slow(a)
                i += 1
            i = self._out_base
            outs = []
            for shape, dtype in outs_spec:
                o = np.empty(shape, dtype)
                args[i] = _pointer_at(id(o) + offset).value if offset is not None else _address_slow(o)
                outs.append(o)
                i += 1
            status = self._run(self._args_address, self._syms_address, ws_addr)
            if self._writes_shared:
                HOST.writes += 1
            if status:
                _raise_status(status)
            return outs

    def _fetch_shared(self) -> None:
        """Bring this function's shared variables' host arrays up to date (reading ``array``
        copies a newer device value back into the buffer the code reads)."""
        for st in self._shared:
            st.array  # noqa: B018 - the property fetches

    def run_steps(self, arrays: Sequence[np.ndarray], sizes: tuple, step: int, n: int) -> list[np.ndarray]:
        """``n`` calls in one (``graphc_run_steps``): call ``s`` reads the ``s``-th of ``n`` equal
        slices of each input's leading axis (checked, C-contiguous arrays; ``sizes`` are those of
        one slice) with random step ``step + s``, and writes its outputs into ``outs[i][s]``;
        the updates are applied after every call, as by ``n`` calls of ``run_sizes``."""
        with self._lock:
            if HOST.device_newer:
                self._fetch_shared()
            syms = self._syms
            for i, v in enumerate(sizes):
                syms[i] = v
            self._last_sizes = sizes
            self._last_plan = plan = self._plan(sizes)
            outs_spec, _, ws_addr = plan
            n_args = len(self._args)
            args = (ctypes.c_void_p * n_args)(*self._args)
            advance = (ctypes.c_int64 * n_args)()
            for i, a in enumerate(arrays):
                args[i] = _address(a)
                advance[i] = a.nbytes // n
            outs = []
            for i, (shape, dtype) in enumerate(outs_spec, self._out_base):
                o = np.empty((n, *shape), dtype)
                args[i] = _address(o)
                advance[i] = o.nbytes // n
                outs.append(o)
            status = self._run_steps(ctypes.cast(self._run, ctypes.c_void_p), ctypes.addressof(args), n_args,
                                     ctypes.addressof(advance), self._syms_address, self._rng_index, step,
                                     ws_addr, n)
            if self._writes_shared:
                HOST.writes += 1
            if status:
                _raise_status(status)
            return outs


def _raise_status(status: int) -> None:
    """The error of a nonzero status from the native code."""
    if status == ERR_INDEX:
        raise InputError("an index passed to take/gather/embedding is out of range")
    raise InputError(f"native code failed with status {status}")
