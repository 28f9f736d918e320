"""Run the CUDA kernels without a GPU, for testing: the NVVM IR retargeted to the host CPU.

``EmulatedContext`` has the interface of ``graphc.backend.cuda.Context`` (alloc/free/htod/dtoh/
memset32/load_module/launch/synchronize), with "device memory" in host arrays. Loading a module
rewrites its NVVM IR for the host: the thread/block index registers and ``barrier0`` become
calls into Python (thread-local ids), shared memory becomes
ordinary globals (blocks run one after the other), ``barrier0`` a native spinning barrier, and the ``ptx_kernel`` calling convention is
dropped. A block whose kernel has barriers runs its threads as OS threads; others run their
threads one after the other. Slow, and it checks the kernels' logic (indexing, grid-stride
loops, tree reductions, tiles, barrier placement), not PTX-level behaviour.

    fn = gc.function(..., options=gc.CompileOptions(target="cuda"))
    fn._native.context = EmulatedContext()
    fn(x)       # runs every launch of fn through the emulator
"""
from __future__ import annotations

import ctypes
import re
import threading
from typing import Sequence

import numpy as np

from graphc.backend import jit

_tls = threading.local()
_SREGS = [f"{r}.{a}" for r in ("tid", "ntid", "ctaid", "nctaid") for a in "xyz"]


def _sreg_reader(reg: str):
    kind, axis = reg.split(".")
    i = "xyz".index(axis)

    def read() -> int:
        return getattr(_tls, kind)[i]
    return read


_SREG_T = ctypes.CFUNCTYPE(ctypes.c_int32)

_CALLBACKS = {f"emu_sreg_{r.replace('.', '_')}": _SREG_T(_sreg_reader(r)) for r in _SREGS}
_registered = False
# A native spinning barrier (a Python one costs tens of ms per round with 256 threads): the
# launcher sets _BAR_N to the block's thread count; _BAR_COUNT/_BAR_GEN are its state.
_BAR_N, _BAR_COUNT, _BAR_GEN = ctypes.c_int32(0), ctypes.c_int32(0), ctypes.c_int32(0)
_BARRIER_IR = """
@"emu_bar_n" = external global i32
@"emu_bar_count" = external global i32
@"emu_bar_gen" = external global i32
declare i32 @"sched_yield"()
define internal void @"emu_barrier"() {
entry:
  %n = load volatile i32, i32* @"emu_bar_n"
  %g = load atomic i32, i32* @"emu_bar_gen" seq_cst, align 4
  %c = atomicrmw add i32* @"emu_bar_count", i32 1 seq_cst
  %n1 = sub i32 %n, 1
  %last = icmp eq i32 %c, %n1
  br i1 %last, label %release, label %spin
release:
  store atomic i32 0, i32* @"emu_bar_count" seq_cst, align 4
  %g1 = add i32 %g, 1
  store atomic i32 %g1, i32* @"emu_bar_gen" seq_cst, align 4
  ret void
spin:
  %g2 = load atomic i32, i32* @"emu_bar_gen" seq_cst, align 4
  %same = icmp eq i32 %g2, %g
  br i1 %same, label %wait, label %done
wait:
  %y = call i32 @"sched_yield"()
  br label %spin
done:
  ret void
}
"""


def host_ir(nvvm_ir: str) -> str:
    """NVVM IR rewritten so that the host CPU can run it (see the module docstring)."""
    s = "\n".join(line for line in nvvm_ir.splitlines()
                  if not line.startswith(("target triple", "target datalayout")))
    s = s.replace(" addrspace(3)", "").replace("addrspacecast", "bitcast").replace("ptx_kernel ", "")
    s = re.sub(r'@"llvm\.nvvm\.read\.ptx\.sreg\.(\w+)\.([xyz])"', r'@"emu_sreg_\1_\2"', s)
    s = "\n".join(line for line in s.splitlines()
                  if not (line.startswith("declare") and "llvm.nvvm.barrier0" in line))
    s = s.replace('@"llvm.nvvm.barrier0"', '@"emu_barrier"')
    return s + _BARRIER_IR if "emu_barrier" in s else s


class _EmuFunction:
    def __init__(self, address: int, name: str, barriers: bool):
        self.address = address
        self.name = name
        self.barriers = barriers


class EmulatedModule:
    def __init__(self, llvm_ir: str):
        global _registered
        if not _registered:
            for name, cb in _CALLBACKS.items():
                jit.register_symbol(name, ctypes.cast(cb, ctypes.c_void_p).value)
            for name, var in (("emu_bar_n", _BAR_N), ("emu_bar_count", _BAR_COUNT), ("emu_bar_gen", _BAR_GEN)):
                jit.register_symbol(name, ctypes.addressof(var))
            _registered = True
        text = host_ir(llvm_ir)
        self.native = jit.compile_ir(text, 1)
        bodies = re.split(r"\ndefine ", text)
        self._barriers = {}
        for body in bodies[1:]:
            m = re.search(r'@"([^"]+)"\(', body)
            if m:
                self._barriers[m.group(1)] = "emu_barrier" in body.split("\ndefine ")[0]

    def function(self, name: str) -> _EmuFunction:
        return _EmuFunction(self.native.address(name), name, self._barriers.get(name, True))


class EmulatedContext:
    """A stand-in for ``cuda.Context`` that runs kernels on the host (see the module docstring)."""

    arch = "sm_90"
    name = "graphc NVVM emulator"

    def __init__(self, max_blocks: int = 2, max_threads: int = 32):
        self.max_blocks = max_blocks
        self.max_threads = max_threads
        self._mem: dict[int, np.ndarray] = {}
        self.bytes_htod = self.bytes_dtoh = 0  # as cuda.Context counts them

    def make_current(self) -> None:
        pass

    def load_module(self, ptx: str, llvm_ir: str | None = None) -> EmulatedModule:
        if llvm_ir is None:
            raise ValueError("the emulator runs the NVVM IR, not PTX: pass llvm_ir")
        return EmulatedModule(llvm_ir)

    def launch(self, fn: _EmuFunction, grid: Sequence[int], block: Sequence[int],
               args: Sequence[tuple[str, int]], shared_bytes: int = 0) -> None:
        types = [{"ptr": ctypes.c_void_p, "i64": ctypes.c_int64, "i32": ctypes.c_int32}[k] for k, _ in args]
        cfn = ctypes.CFUNCTYPE(None, *types)(fn.address)
        values = [v for _, v in args]
        gx, gy, gz = grid
        bx, by, bz = block
        if by == 1 and bz == 1:
            # 1-D kernels loop over their work with a grid/block stride, so fewer blocks give the
            # same result (and exercise the stride loops): keep the emulation affordable.
            # They also read their block size from ntid (the tree reduction included), so
            # blocks of fewer threads are equally valid.
            gx = min(gx, self.max_blocks)
            bx = min(bx, self.max_threads)
        threads = [(x, y, z) for z in range(bz) for y in range(by) for x in range(bx)]
        for cz in range(gz):
            for cy in range(gy):
                for cx in range(gx):
                    ids = dict(ntid=(bx, by, bz), ctaid=(cx, cy, cz), nctaid=(gx, gy, gz))
                    if fn.barriers and len(threads) > 1:
                        self._run_threaded(cfn, values, ids, threads)
                    else:
                        for t in threads:
                            self._set(ids, t, None)
                            cfn(*values)

    def prepare(self, fn: _EmuFunction, grid: Sequence[int], block: Sequence[int],
                args: Sequence[tuple[str, object]], shared_bytes: int = 0):
        """As ``cuda.Context.prepare``: a launcher; ctypes values are read at each launch."""
        def run() -> None:
            values = [(k, v.value if isinstance(v, ctypes._SimpleCData) else v) for k, v in args]
            self.launch(fn, grid, block, values, shared_bytes)
        return run

    @staticmethod
    def _set(ids: dict, tid: tuple, barrier) -> None:
        _tls.tid = tid
        _tls.ntid, _tls.ctaid, _tls.nctaid = ids["ntid"], ids["ctaid"], ids["nctaid"]
        _tls.barrier = barrier

    def _run_threaded(self, cfn, values, ids, threads) -> None:
        _BAR_N.value = len(threads)
        _BAR_COUNT.value = 0
        errors: list[BaseException] = []

        def work(t):
            try:
                self._set(ids, t, None)
                cfn(*values)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        pool = [threading.Thread(target=work, args=(t,)) for t in threads]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        if errors:
            raise RuntimeError(f"emulated kernel failed: {errors[0]!r}")

    def synchronize(self) -> None:
        pass

    # memory: host arrays, addressed by their data pointers
    def alloc(self, nbytes: int) -> int:
        a = np.zeros(max(int(nbytes), 1) + 256, np.uint8)
        addr = a.ctypes.data
        ptr = addr + (-addr) % 256
        self._mem[ptr] = a
        return ptr

    def free(self, ptr: int) -> None:
        self._mem.pop(ptr, None)

    def htod(self, dst: int, src: np.ndarray) -> None:
        src = np.ascontiguousarray(src)
        self.bytes_htod += src.nbytes
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        self.bytes_dtoh += dst.nbytes
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        ctypes.memmove(dst, src, nbytes)

    def memset32(self, dst: int, value: int, count: int) -> None:
        (ctypes.c_uint32 * count).from_address(dst)[:] = [value] * count


__all__ = ["EmulatedContext", "host_ir"]
