"""PTX through NVIDIA's libNVVM (ctypes), the other way to compile graphc's NVVM IR.

libNVVM ships with the CUDA toolkit (``<cuda>/nvvm/lib64/libnvvm.so`` or ``<cuda>/lib``). It
reads the LLVM 7 dialect of LLVM IR, so ``nvvm7_compatible`` rewrites the few newer
constructs graphc's emitter produces: ``fneg`` (LLVM 8) becomes ``fsub -0.0, x``, and the
NaN-propagating ``llvm.maximum``/``llvm.minimum`` (LLVM 8) become small functions over
``llvm.maxnum``/``llvm.minnum`` that return NaN when either operand is. (libNVVM accepted
those intrinsics and left them as unresolved external calls in the PTX.) The module gets
the ``nvvmir.version`` it requires.

``find()`` looks in ``GRAPHC_LIBNVVM`` (a path), ``CUDA_HOME``/``CUDA_PATH`` and
``/usr/local/cuda*``. Which compiler a CUDA function uses is chosen in
graphc/lower/nvvm.py (``compile_ptx``).
"""
from __future__ import annotations

import ctypes
import glob
import os
import re

from graphc import env
from graphc.errors import CompileError

_lib: ctypes.CDLL | None = None
_searched = False

_NVVM_IR_VERSION = "\n!nvvmir.version = !{!9999990}\n!9999990 = !{i32 2, i32 0}\n"

_FNEG = re.compile(r"= fneg((?: [a-z]+)*) (float|double) ")
_MINMAX = re.compile(r'@"?llvm\.(maximum|minimum)\.(f32|f64)"?')


def find() -> str | None:
    """The path of libnvvm.so, or None."""
    explicit, roots = env.cuda_search_paths()
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for root in roots + sorted(glob.glob("/usr/local/cuda*"), reverse=True):
        for sub in ("nvvm/lib64", "lib64", "lib"):
            hits = sorted(glob.glob(os.path.join(root, sub, "libnvvm.so*")))
            if hits:
                return hits[0]
    return None


def available() -> bool:
    """Whether libNVVM can be loaded here."""
    return _load() is not None


def _load() -> ctypes.CDLL | None:
    global _lib, _searched
    if not _searched:
        _searched = True
        path = find()
        if path:
            try:
                _lib = ctypes.CDLL(path)
            except OSError:
                _lib = None
    return _lib


def nvvm7_compatible(llvm_ir: str) -> str:
    """``llvm_ir`` in the dialect libNVVM reads (see the module docstring)."""
    text = _FNEG.sub(lambda m: f"= fsub{m.group(1)} {m.group(2)} -0.000000e+00, ", llvm_ir)
    used = sorted(set(_MINMAX.findall(text)))
    if not used:
        return text + _NVVM_IR_VERSION
    # the declarations of the replaced intrinsics go; the calls point at the helpers below
    text = re.sub(r'declare [^\n]*@"?llvm\.(?:maximum|minimum)\.f(?:32|64)"?\([^\n]*\n', "", text)
    text = _MINMAX.sub(lambda m: f"@graphc_nvvm_{m.group(1)}_{m.group(2)}", text)
    helpers = []
    for kind, suffix in used:
        ty = "float" if suffix == "f32" else "double"
        base = "maxnum" if kind == "maximum" else "minnum"
        helpers.append(
            f"declare {ty} @llvm.{base}.{suffix}({ty}, {ty})\n"
            f"define internal {ty} @graphc_nvvm_{kind}_{suffix}({ty} %a, {ty} %b) alwaysinline {{\n"
            f"  %nan = fcmp uno {ty} %a, %b\n"
            f"  %m = call {ty} @llvm.{base}.{suffix}({ty} %a, {ty} %b)\n"
            f"  %s = fadd {ty} %a, %b\n"
            f"  %r = select i1 %nan, {ty} %s, {ty} %m\n"
            f"  ret {ty} %r\n}}\n")
    return text + "\n" + "".join(helpers) + _NVVM_IR_VERSION


def compile_ptx(llvm_ir: str, arch: str = "sm_90", opt_level: int = 3) -> str:
    """PTX text for ``arch`` (``sm_XY``) from graphc's NVVM IR, through libNVVM."""
    lib = _load()
    if lib is None:
        raise CompileError("libNVVM was not found (set GRAPHC_LIBNVVM to libnvvm.so, or CUDA_HOME)")
    source = nvvm7_compatible(llvm_ir).encode()
    prog = ctypes.c_void_p()
    if lib.nvvmCreateProgram(ctypes.byref(prog)) != 0:
        raise CompileError("libNVVM: nvvmCreateProgram failed")
    try:
        if lib.nvvmAddModuleToProgram(prog, source, ctypes.c_size_t(len(source)), b"graphc") != 0:
            raise CompileError("libNVVM: nvvmAddModuleToProgram failed")
        compute = "compute_" + arch.removeprefix("sm_")
        opts = [f"-arch={compute}".encode(), f"-opt={min(max(opt_level, 0), 3)}".encode()]
        rc = lib.nvvmCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        if rc != 0:
            size = ctypes.c_size_t()
            lib.nvvmGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvvmGetProgramLog(prog, log)
            raise CompileError(f"libNVVM could not compile the kernels for {arch} (status {rc}):\n"
                               f"{log.value.decode(errors='replace').strip()}")
        size = ctypes.c_size_t()
        lib.nvvmGetCompiledResultSize(prog, ctypes.byref(size))
        out = ctypes.create_string_buffer(size.value)
        lib.nvvmGetCompiledResult(prog, out)
        ptx = out.value.decode()
    finally:
        lib.nvvmDestroyProgram(ctypes.byref(prog))
    unresolved = re.findall(r"\.extern \.func[^\n]*?([\w.$]+)\s*\(", ptx)
    if unresolved:
        raise CompileError(f"libNVVM left calls to {sorted(set(unresolved))} unresolved")
    return ptx


__all__ = ["find", "available", "compile_ptx", "nvvm7_compatible"]
