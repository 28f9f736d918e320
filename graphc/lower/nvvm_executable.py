"""A compiled function's CUDA side: schedule, emit NVVM IR, compile to PTX, launch through the
driver API (graphc/backend/cuda.py).

Compiling needs no GPU: the PTX is made with llvmlite's NVPTX target and exposed as ``ptx``.
The first call loads the module on device 0; without a device it raises ``NoCudaDevice``.

Memory: constants live in device memory for the life of the executable. A shared variable
(weights, optimizer state) has one copy in each CUDA context (``DeviceCopy``), which every CUDA
function of that context uses: a training step and a predict function share the weights on
the device. After a call, the variables it updated are newest on the device and stay there;
the host array is brought up to date only when something reads it (``get_value``, a CPU
function, an export: ``SharedStorage.array`` fetches). Before a call, a copy is uploaded again
only if the host may have written the variable since: ``set_value`` (the variable's
``version``), or a CPU function with updates (``HOST.writes``; then the host value is compared
with the one last uploaded). So a run of training steps on the GPU copies only its inputs and
outputs. Intermediates live in one device workspace per distinct set of sizes.
"""
from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Mapping, Sequence

import numpy as np
import sympy

from graphc.backend import cuda
from graphc.errors import InputError
from graphc.frontend.variables import HOST, SharedStorage, storage
from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ir.shapes import RNG_STEP, evaluate, size_of
from graphc.lower.nvvm import ERR_INDEX, compile_ptx, emit_nvvm, launch_dims, ptx_compiler
from graphc.lower.schedule import ITEMSIZE, Buffer, schedule
from graphc.options import CompileOptions

DEFAULT_ARCH = "sm_90"
ALIGN = 256


def _default_arch() -> str:
    try:
        return cuda.Context.get().arch if cuda.available() else DEFAULT_ARCH
    except cuda.CudaError:
        return DEFAULT_ARCH


class DeviceCopy:
    """A shared variable's value in one CUDA context's memory (see the module docstring)."""

    def __init__(self, ctx, nbytes: int):
        self.ctx = ctx
        self.buf = cuda.DeviceBuffer(ctx, nbytes)
        self.version: int | None = None    # the storage's version when last synchronised
        self.host_writes: int | None = None  # HOST.writes then
        self.snapshot: np.ndarray | None = None  # the value then (None while newer here)

    def _synced(self, st: SharedStorage) -> None:
        self.snapshot = st._array.copy()
        self.version, self.host_writes = st.version, HOST.writes

    def sync(self, st: SharedStorage) -> None:
        """Make this copy current before a launch (uploading only what the host changed)."""
        if st.device is self:
            return
        arr = st.array  # fetches it first if another context's copy is newer
        if self.version == st.version and (
                self.host_writes == HOST.writes
                or np.array_equal(self.snapshot, arr, equal_nan=arr.dtype.kind == "f")):
            self.host_writes = HOST.writes
            return
        self.ctx.htod(self.buf.ptr, arr)
        self._synced(st)

    def updated(self, st: SharedStorage) -> None:
        """A launch wrote the variable: its newest value is here now."""
        st.device = self
        HOST.device_newer.add(st)
        self.snapshot = None

    def fetch(self, st: SharedStorage) -> None:
        """Copy the value back into the host array (``SharedStorage.array`` calls this)."""
        self.ctx.make_current()
        self.ctx.dtoh(st._array, self.buf.ptr)
        self.forget(st)
        self._synced(st)

    def forget(self, st: SharedStorage) -> None:
        """The host holds the newest value again."""
        st.device = None
        HOST.device_newer.discard(st)


def device_copy(ctx, st: SharedStorage) -> DeviceCopy:
    """The one copy of ``st`` in ``ctx`` (made on first use)."""
    copies = getattr(ctx, "_graphc_copies", None)
    if copies is None:
        copies = ctx._graphc_copies = weakref.WeakKeyDictionary()
    dc = copies.get(st)
    if dc is None:
        dc = copies[st] = DeviceCopy(ctx, st._array.nbytes)
    return dc


class CudaExecutable:
    """The PTX of one compiled graph and what is needed to run it on a GPU."""

    def __init__(self, graph: Graph, inputs: Sequence[Node], shared: Sequence[Node],
                 update_targets: Sequence[Node], options: CompileOptions, name: str, arch: str | None = None):
        n_user = len(graph.outputs) - len(update_targets)
        self.program = schedule(list(graph.outputs), list(inputs), list(shared), n_user, list(update_targets),
                                fold_transposes=False, in_place=False)
        self.name = "".join(c if c.isalnum() else "_" for c in name) or "fn"
        self._lock = threading.Lock()
        self.nvvm = emit_nvvm(self.program, self.name)
        self.llvm_ir = self.nvvm.llvm_ir
        self.arch = arch or _default_arch()
        self.ptx_compiler = ptx_compiler()
        self.ptx = compile_ptx(self.llvm_ir, self.arch, options.llvm_opt, self.ptx_compiler)
        self._symbols = self.program.symbols
        out_shapes = [b.shape for b in self.program.outputs]
        self._out_dtypes = [np.dtype(b.dtype) for b in self.program.outputs]
        flat = [d for s in out_shapes for d in s]
        fn = sympy.lambdify(self._symbols, flat, modules="math") if flat else (lambda *a: [])
        ranks = [len(s) for s in out_shapes]

        def shapes(*values):
            it = iter(int(v) for v in fn(*values))
            return [tuple(next(it) for _ in range(r)) for r in ranks]
        self._shapes = shapes
        self._shared_nodes = list(shared)
        ids = {id(s): i for i, s in enumerate(shared)}
        self._updated = [ids[id(t)] for t in update_targets]
        self._consts = [np.ascontiguousarray(a) for _, a in self.program.consts]
        # Launches with their grids and arguments worked out once per set of sizes and buffers
        # (a program without loops): a call then only sets the random step and launches.
        self._straight = all(isinstance(e, int) for e in self.nvvm.plan)
        self._rng_index = self._symbols.index(RNG_STEP) if RNG_STEP in self._symbols else None
        self._rng_value = ctypes.c_int64(0)
        self._prepared: dict[tuple, list] = {}
        self._io_holders: tuple[list, list] | None = None
        self._ctx: cuda.Context | None = None
        # Where to run: None is the process's CUDA context; tests may set an EmulatedContext
        # (graphc/lower/nvvm_emulate.py) before the first call.
        self.context = None

    # ------------------------------------------------------------------------- device state
    def _device(self) -> cuda.Context:
        if self._ctx is not None:
            self._ctx.make_current()
            return self._ctx
        try:
            ctx = self.context if self.context is not None else cuda.Context.get()
        except cuda.NoCudaDevice as exc:
            raise cuda.NoCudaDevice(f"{self.name}: compiled for target='cuda', but it cannot run here: {exc}. "
                                    "Its PTX is in fn.ptx; compile with target='cpu' to run on this machine.") from None
        self.module = ctx.load_module(self.ptx, llvm_ir=self.llvm_ir)
        self._fns = [self.module.function(l.kernel) for l in self.nvvm.launches]
        self._const_bufs = []
        for a in self._consts:
            buf = cuda.DeviceBuffer(ctx, a.nbytes)
            ctx.htod(buf.ptr, a)
            self._const_bufs.append(buf)
        self._storages = [storage(s) for s in self._shared_nodes]
        self._copies = [device_copy(ctx, st) for st in self._storages]
        self._err = cuda.DeviceBuffer(ctx, 4)
        # partial results of split reductions (constant sizes; launches run one at a time)
        scratch = [evaluate(l.out.nbytes, {}) for l in self.nvvm.launches if l.out.kind == "scratch"]
        self._scratch = cuda.DeviceBuffer(ctx, max(scratch, default=0))
        self._in_bufs: dict[int, cuda.DeviceBuffer] = {}
        self._out_bufs: dict[int, cuda.DeviceBuffer] = {}
        self._workspaces: dict[tuple, tuple[cuda.DeviceBuffer, list[int]]] = {}
        self._ctx = ctx
        return ctx

    def _sized(self, ctx: cuda.Context, cache: dict, i: int, nbytes: int) -> cuda.DeviceBuffer:
        buf = cache.get(i)
        if buf is None or buf.nbytes < nbytes:
            buf = cuda.DeviceBuffer(ctx, nbytes)
            cache[i] = buf
        return buf

    def _sync_shared_to_device(self) -> None:
        for st, dc in zip(self._storages, self._copies):
            dc.sync(st)

    def _workspace(self, ctx: cuda.Context, key: tuple, env: Mapping) -> list[int]:
        ws = self._workspaces.get(key)
        if ws is None:
            offsets, total = [], 0
            for nbytes in self.program.slots:
                offsets.append(total)
                total += -(-max(evaluate(nbytes, env), 0) // ALIGN) * ALIGN
            buf = cuda.DeviceBuffer(ctx, total)
            ws = (buf, [buf.ptr + o for o in offsets])
            self._workspaces[key] = ws
        return ws[1]

    # ------------------------------------------------------------------------- running
    def _execute(self, ctx, plan: list, pointer, slots: list[int], slot_base: int, env: Mapping, sym_args) -> None:
        """Launch ``plan``'s kernels in order; a loop runs its body's plan once per step from
        the host, pointing the body's parameters and results at the right rows (as the CPU
        entry function does, see graphc/lower/cpu.py ``_Entry.emit_loop``)."""
        for entry in plan:
            if isinstance(entry, int):
                launch = self.nvvm.launches[entry]
                grid, block = launch_dims(launch.grid, env)
                args = [("ptr", pointer(launch.out))] + [("ptr", pointer(b)) for b in launch.ins]
                ctx.launch(self._fns[entry], grid, block, args + sym_args + [("ptr", self._err.ptr)])
                continue
            _, step, body_plan = entry
            a = step.node.attrs
            body = a["body"]
            nc, ns = len(body.carries), len(body.seqs)
            rows = [evaluate(size_of(p.shape), env) * ITEMSIZE[p.dtype] for p in body.carries + body.seqs]
            y_rows = [evaluate(size_of(y.shape), env) * ITEMSIZE[y.dtype] for y in body.ys]
            ins = [pointer(b) for b in step.ins]
            outs = [pointer(b) for b in step.outs]
            temps = iter(pointer(b) for b in step.temps)
            temp_of = {k: next(temps) for k in range(nc) if not a["keep"][k]}
            steps = evaluate(a["length"], env)
            base = slot_base + step.slot_base
            for t in range(steps):
                idx = steps - 1 - t if a["reverse"] else t
                prev = idx + 1 if a["reverse"] else idx - 1
                even = (steps - 1 - t) % 2 == 0  # a final-only carry's last step writes its output
                params, results = [], []
                for k in range(nc):
                    if a["keep"][k]:
                        results.append(outs[k] + idx * rows[k])
                        earlier = outs[k] + prev * rows[k]
                    else:
                        results.append(outs[k] if even else temp_of[k])
                        earlier = temp_of[k] if even else outs[k]
                    params.append(ins[k] if t == 0 else earlier)
                params += [ins[nc + j] + idx * rows[nc + j] for j in range(ns)] + ins[nc + ns:]
                results += [outs[nc + l] + idx * y_rows[l] for l in range(len(body.ys))]

                def body_pointer(buf: Buffer, params=params, results=results) -> int:
                    root = buf.root()
                    if root.kind == "input":
                        return params[root.index]
                    if root.kind == "output":
                        return results[root.index]
                    if root.kind == "workspace":
                        return slots[base + root.slot]
                    return pointer(root)  # constants: the program's
                self._execute(ctx, body_plan, body_pointer, slots, base, env, sym_args)
            if steps == 0:  # no step: a final-only carry is its initial value
                for k in temp_of:
                    ctx.dtod(outs[k], ins[k], rows[k])

    def _launch_prepared(self, ctx, key: tuple, pointer, env: Mapping, syms: list[int]) -> None:
        """Launch the program's kernels in order, packed once per set of sizes (the host's work
        per launch is then one driver call: working out the grids and packing the arguments
        took about 20 us a launch, 0.9 ms an MLP step). Inputs and outputs are read through
        ctypes holders (``_io``) and the random step through ``_rng_value``, set per call."""
        launchers = self._prepared.get(key)
        if launchers is None:
            if len(self._prepared) >= 16:
                self._prepared.clear()
            sym_args = [("i64", self._rng_value if i == self._rng_index else v) for i, v in enumerate(syms)]
            launchers = []
            for entry in self.nvvm.plan:
                launch = self.nvvm.launches[entry]
                grid, block = launch_dims(launch.grid, env)
                args = [("ptr", pointer(launch.out))] + [("ptr", pointer(b)) for b in launch.ins]
                launchers.append(ctx.prepare(self._fns[entry], grid, block,
                                             args + sym_args + [("ptr", self._err.ptr)]))
            self._prepared[key] = launchers
        if self._rng_index is not None:
            self._rng_value.value = syms[self._rng_index]
        for run in launchers:
            run()

    def run(self, arrays: Sequence[np.ndarray], env: Mapping[sympy.Symbol, int]) -> list[np.ndarray]:
        """Run on checked, contiguous input arrays; returns the outputs, applies updates in place.
        One call at a time: the device buffers and the workspace are this object's."""
        with self._lock:
            return self._run_locked(arrays, env, 1)

    def run_steps_env(self, arrays: Sequence[np.ndarray], env: Mapping[sympy.Symbol, int], n: int) -> list[np.ndarray]:
        """``n`` calls on the ``n`` equal slices of each input's leading axis (``env``: the
        sizes of one slice and the random step of the first call), as ``Function.run_steps``:
        the inputs go up in one copy each, the calls' launches follow one another with no
        synchronisation between them, and the outputs (stacked) come back in one copy each.
        An index error is reported after the n calls, not at the one that made it."""
        with self._lock:
            return self._run_locked(arrays, env, n)

    def _run_locked(self, arrays: Sequence[np.ndarray], env: Mapping[sympy.Symbol, int], n: int) -> list[np.ndarray]:
        ctx = self._device()
        syms = [int(env.get(s, 0)) for s in self._symbols]
        key = tuple(v for s, v in zip(self._symbols, syms) if s is not RNG_STEP)
        shapes = self._shapes(*syms)
        slots = self._workspace(ctx, key, env)
        self._sync_shared_to_device()
        in_ptrs = []
        for i, a in enumerate(arrays):
            buf = self._sized(ctx, self._in_bufs, i, a.nbytes)
            ctx.htod(buf.ptr, a)
            in_ptrs.append(buf.ptr)
        stacked = (lambda shape: (n, *shape)) if n > 1 else (lambda shape: shape)
        outs = [np.empty(stacked(shape), dtype) for shape, dtype in zip(shapes, self._out_dtypes)]
        out_ptrs = [self._sized(ctx, self._out_bufs, i, o.nbytes).ptr for i, o in enumerate(outs)]
        in_step = [a.nbytes // n for a in arrays]
        out_step = [o.nbytes // n for o in outs]
        io_in, io_out = self._io(len(arrays), len(outs))

        def pointer(buf: Buffer):
            root = buf.root()
            if root.kind == "workspace":
                return slots[root.slot]
            if root.kind == "input":
                return io_in[root.index] if self._straight else io_in[root.index].value
            if root.kind == "shared":
                return self._copies[root.index].buf.ptr
            if root.kind == "const":
                return self._const_bufs[root.index].ptr
            if root.kind == "scratch":
                return self._scratch.ptr
            return io_out[root.index] if self._straight else io_out[root.index].value

        ctx.memset32(self._err.ptr, 0, 1)
        first_step = syms[self._rng_index] if self._rng_index is not None else 0
        for s in range(n):
            for holder, base, step in zip(io_in, in_ptrs, in_step):
                holder.value = base + s * step
            for holder, base, step in zip(io_out, out_ptrs, out_step):
                holder.value = base + s * step
            if self._rng_index is not None:
                syms[self._rng_index] = first_step + s
            if self._straight:
                self._launch_prepared(ctx, key, pointer, env, syms)
            else:
                self._execute(ctx, self.nvvm.plan, pointer, slots, 0, env, [("i64", v) for v in syms])
        ctx.synchronize()
        err = np.zeros(1, np.int32)
        ctx.dtoh(err, self._err.ptr)
        if err[0] == ERR_INDEX:
            raise InputError("an index passed to take/gather/embedding is out of range")
        if err[0]:
            raise InputError(f"CUDA kernel failed with status {int(err[0])}")
        for o, p in zip(outs, out_ptrs):
            ctx.dtoh(o, p)
        for i in self._updated:  # newest on the device now; fetched when the host reads them
            self._copies[i].updated(self._storages[i])
        return outs

    def _io(self, n_in: int, n_out: int) -> tuple[list, list]:
        """The ctypes holders of the input and output addresses that prepared launches read."""
        if self._io_holders is None:
            self._io_holders = ([ctypes.c_uint64(0) for _ in range(n_in)], [ctypes.c_uint64(0) for _ in range(n_out)])
        return self._io_holders


__all__ = ["CudaExecutable", "DeviceCopy", "device_copy"]
