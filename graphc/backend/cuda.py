"""The CUDA driver API through ctypes over libcuda: context, modules, device memory, launches.

Importing this module never fails: libcuda is opened on first use. ``available()`` says
whether a CUDA device can be used here; every driver error becomes a ``CudaError`` naming the
call and the driver's error name and text; the absence of a driver or device becomes a
``NoCudaDevice`` (a ``CudaError``).

    ctx = Context.get()                    # primary context of device 0, made current
    mod = ctx.load_module(ptx_text)        # cuModuleLoadDataEx (the driver JIT-compiles PTX)
    fn = mod.function("kernel")            # cuModuleGetFunction
    buf = ctx.alloc(nbytes); ctx.htod(buf, array); ctx.dtoh(array, buf); ctx.free(buf)
    ctx.launch(fn, grid, block, [("ptr", buf), ("i64", 7)]); ctx.synchronize()
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any, Callable, Optional, Sequence

import numpy as np

from graphc.errors import GraphcError


class CudaError(GraphcError, RuntimeError):
    """A CUDA driver call failed."""


class NoCudaDevice(CudaError):
    """No usable CUDA driver or device on this machine."""


_LOCK = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_error: Optional[str] = None
_ctx: Optional["Context"] = None

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6


def _load() -> ctypes.CDLL:
    global _lib, _lib_error
    with _LOCK:
        if _lib is not None:
            return _lib
        if _lib_error is not None:
            raise NoCudaDevice(_lib_error)
        names = ["libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda") or ""]
        for name in names:
            if not name:
                continue
            try:
                _lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if _lib is None:
            _lib_error = "no CUDA device is available: the CUDA driver library (libcuda) is not installed"
            raise NoCudaDevice(_lib_error)
        return _lib


def _error_text(lib: ctypes.CDLL, code: int) -> str:
    name, text = ctypes.c_char_p(), ctypes.c_char_p()
    try:
        lib.cuGetErrorName(code, ctypes.byref(name))
        lib.cuGetErrorString(code, ctypes.byref(text))
    except AttributeError:
        pass
    n = name.value.decode() if name.value else f"CUDA error {code}"
    t = text.value.decode() if text.value else ""
    return f"{n}: {t}" if t else n


def _check(call: str, code: int) -> None:
    if code != 0:
        lib = _load()
        msg = f"{call} failed: {_error_text(lib, code)}"
        if call in ("cuInit", "cuDeviceGet", "cuDeviceGetCount") and code in (100, 3, 999, 34, 35):
            # CUDA_ERROR_NO_DEVICE, NOT_INITIALIZED, UNKNOWN, STUB_LIBRARY, INSUFFICIENT_DRIVER
            raise NoCudaDevice(f"no CUDA device is available ({msg})")
        raise CudaError(msg)


def _call(name: str, *args) -> None:
    lib = _load()
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise CudaError(f"the CUDA driver has no {name} (driver too old?)") from None
    _check(name, fn(*args))


def available() -> bool:
    """Whether a CUDA device can be used here (never raises)."""
    try:
        Context.get()
        return True
    except CudaError:
        return False


class Module:
    """A loaded module (PTX compiled by the driver)."""

    def __init__(self, ctx: "Context", handle: ctypes.c_void_p):
        self.ctx = ctx
        self.handle = handle
        self._functions: dict[str, ctypes.c_void_p] = {}

    def function(self, name: str) -> ctypes.c_void_p:
        fn = self._functions.get(name)
        if fn is None:
            fn = ctypes.c_void_p()
            _call("cuModuleGetFunction", ctypes.byref(fn), self.handle, name.encode())
            self._functions[name] = fn
        return fn


class Context:
    """The primary context of one device (device 0 by default), current on the calling thread."""

    def __init__(self, ordinal: int = 0):
        _call("cuInit", 0)
        count = ctypes.c_int()
        _call("cuDeviceGetCount", ctypes.byref(count))
        if count.value <= ordinal:
            raise NoCudaDevice(f"no CUDA device is available (the driver reports {count.value} devices)")
        self.device = ctypes.c_int()
        _call("cuDeviceGet", ctypes.byref(self.device), ordinal)
        self.handle = ctypes.c_void_p()
        _call("cuDevicePrimaryCtxRetain", ctypes.byref(self.handle), self.device)
        self.make_current()
        major, minor = ctypes.c_int(), ctypes.c_int()
        _call("cuDeviceGetAttribute", ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device)
        _call("cuDeviceGetAttribute", ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device)
        self.compute_capability = (major.value, minor.value)
        name = ctypes.create_string_buffer(256)
        _call("cuDeviceGetName", name, 256, self.device)
        self.name = name.value.decode(errors="replace")
        self.bytes_htod = self.bytes_dtoh = 0  # host<->device traffic, for tests and figures

    @classmethod
    def get(cls) -> "Context":
        """The process-wide context (created on first use); NoCudaDevice without a GPU."""
        global _ctx
        if _ctx is None:
            _ctx = cls()
        _ctx.make_current()
        return _ctx

    @property
    def arch(self) -> str:
        major, minor = self.compute_capability
        return f"sm_{major}{minor}"

    def make_current(self) -> None:
        _call("cuCtxSetCurrent", self.handle)

    # modules and launches
    def load_module(self, ptx: str, llvm_ir: str | None = None) -> Module:
        """Load PTX (``llvm_ir`` is ignored here; the emulator runs that instead)."""
        handle = ctypes.c_void_p()
        log = ctypes.create_string_buffer(16384)
        opts = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(len(log)))
        code = _load().cuModuleLoadDataEx(ctypes.byref(handle), ctypes.c_char_p(ptx.encode() + b"\0"), 2, opts, vals)
        if code != 0:
            detail = log.value.decode(errors="replace").strip()
            raise CudaError(f"cuModuleLoadDataEx failed: {_error_text(_load(), code)}"
                            + (f"\n{detail}" if detail else ""))
        return Module(self, handle)

    def launch(self, fn: ctypes.c_void_p, grid: Sequence[int], block: Sequence[int],
               args: Sequence[tuple[str, int]], shared_bytes: int = 0) -> None:
        """Launch ``fn``; ``args`` are ("ptr", device address), ("i64", value) or ("i32", value)."""
        holders = []
        for kind, value in args:
            if kind == "ptr":
                holders.append(ctypes.c_uint64(value))
            elif kind == "i64":
                holders.append(ctypes.c_int64(value))
            elif kind == "i32":
                holders.append(ctypes.c_int32(value))
            else:
                raise ValueError(f"unknown kernel argument kind {kind!r}")
        params = (ctypes.c_void_p * max(len(holders), 1))(
            *[ctypes.cast(ctypes.byref(h), ctypes.c_void_p) for h in holders])
        gx, gy, gz = grid
        bx, by, bz = block
        _call("cuLaunchKernel", fn, ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(gz),
              ctypes.c_uint(bx), ctypes.c_uint(by), ctypes.c_uint(bz), ctypes.c_uint(shared_bytes),
              ctypes.c_void_p(0), params, ctypes.c_void_p(0))

    def prepare(self, fn: ctypes.c_void_p, grid: Sequence[int], block: Sequence[int],
                args: Sequence[tuple[str, Any]], shared_bytes: int = 0) -> Callable[[], None]:
        """``launch`` with its arguments packed once: returns a function that launches it. An
        argument's value may be a ctypes integer, read at each launch (a size that changes
        from call to call); ints are fixed."""
        holders = []
        for kind, value in args:
            if isinstance(value, ctypes._SimpleCData):
                holders.append(value)
            else:
                holders.append({"ptr": ctypes.c_uint64, "i64": ctypes.c_int64, "i32": ctypes.c_int32}[kind](value))
        params = (ctypes.c_void_p * max(len(holders), 1))(
            *[ctypes.cast(ctypes.byref(h), ctypes.c_void_p) for h in holders])
        dims = [ctypes.c_uint(v) for v in (*grid, *block, shared_bytes)]
        launch = _load().cuLaunchKernel
        null = ctypes.c_void_p(0)

        def run() -> None:
            code = launch(fn, *dims, null, params, null)
            if code:
                _check("cuLaunchKernel", code)
        run.keep = (holders, params)  # the packed arguments live as long as the launcher
        return run

    def synchronize(self) -> None:
        _call("cuCtxSynchronize")

    # memory
    def alloc(self, nbytes: int) -> int:
        ptr = ctypes.c_uint64()
        _call("cuMemAlloc_v2", ctypes.byref(ptr), ctypes.c_size_t(max(int(nbytes), 1)))
        return ptr.value

    def free(self, ptr: int) -> None:
        if ptr:
            _call("cuMemFree_v2", ctypes.c_uint64(ptr))

    def htod(self, dst: int, src: np.ndarray) -> None:
        src = np.ascontiguousarray(src)
        self.bytes_htod += src.nbytes
        if src.nbytes:
            _call("cuMemcpyHtoD_v2", ctypes.c_uint64(dst), ctypes.c_void_p(src.ctypes.data), ctypes.c_size_t(src.nbytes))

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        if not dst.flags.c_contiguous:
            raise ValueError("dtoh needs a C-contiguous destination")
        self.bytes_dtoh += dst.nbytes
        if dst.nbytes:
            _call("cuMemcpyDtoH_v2", ctypes.c_void_p(dst.ctypes.data), ctypes.c_uint64(src), ctypes.c_size_t(dst.nbytes))

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            _call("cuMemcpyDtoD_v2", ctypes.c_uint64(dst), ctypes.c_uint64(src), ctypes.c_size_t(nbytes))

    def memset32(self, dst: int, value: int, count: int) -> None:
        if count:
            _call("cuMemsetD32_v2", ctypes.c_uint64(dst), ctypes.c_uint(value), ctypes.c_size_t(count))


class DeviceBuffer:
    """Device memory owned by Python: freed when garbage collected (if the context lives)."""

    def __init__(self, ctx: Context, nbytes: int):
        self.ctx = ctx
        self.nbytes = int(nbytes)
        self.ptr = ctx.alloc(self.nbytes)

    def __del__(self):
        try:
            self.ctx.free(self.ptr)
        except Exception:  # noqa: BLE001 - interpreter shutdown or a dead context
            pass


__all__ = ["CudaError", "NoCudaDevice", "available", "Context", "Module", "DeviceBuffer"]
