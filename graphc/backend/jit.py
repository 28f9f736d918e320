"""In-process native compilation of LLVM IR through llvmlite's MCJIT.

``compile_ir`` parses and verifies a module, optimises it with LLVM's new pass manager
(loop and SLP vectorisation on) for the host CPU, and JIT-compiles it with an MCJIT
engine that owns its own TargetMachine (sharing one between engines crashed here).
Object code can be cached on disk: the key covers the IR text, the optimisation level,
the target (triple, CPU name, CPU features) and the llvmlite/LLVM versions; a cache hit
skips both the optimisation pipeline and code generation.  Entries carry a checksum and
are written atomically, so concurrent compilers and corrupt files are harmless.

``compile_object`` emits a relocatable object file for any LLVM target (ahead-of-time
export); ``register_symbol`` makes a runtime helper callable from JIT-compiled code.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from typing import Sequence

import llvmlite
import llvmlite.binding as llvm

from graphc.errors import CompileError

__all__ = [
    "CACHE_FORMAT_VERSION",
    "NativeModule",
    "TargetInfo",
    "cache_key",
    "compile_ir",
    "compile_object",
    "load_cached",
    "jit_object",
    "link_objects",
    "store_object",
    "source_key",
    "host_target",
    "init_native",
    "register_symbol",
]

#: Bumped whenever the layout of cache entries or the compilation recipe changes.
CACHE_FORMAT_VERSION = 1
_MAGIC = b"GRAPHC-OBJ\x00"
_HEADER = struct.Struct("<11sIQ32s")  # magic, format version, payload length, sha256

# LLVM's global context is not thread-safe: all parsing/optimising/codegen is serialised.
_LOCK = threading.RLock()
_native_ready = False
_all_targets_ready = False
_host: TargetInfo | None = None


@dataclass(frozen=True)
class TargetInfo:
    """What code is generated for: LLVM triple, CPU name and CPU feature string."""

    triple: str
    cpu: str
    features: str


#: the fewest known iterations LLVM vectorises with a scalar remainder (see init_native;
#: irutil.for_range keeps shorter constant loops scalar)
VECTOR_MIN_TRIP_COUNT = 8


def init_native() -> None:
    """Initialise LLVM's native target and asm printer (idempotent).

    ``llvm.binding.initialize()`` raises in recent llvmlite, so only these are set up.
    """
    global _native_ready
    with _LOCK:
        if not _native_ready:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            # LLVM vectorises a loop of fewer than 16 known iterations only by folding its
            # tail into masked loads and stores, which are microcoded on AMD Zen (a (32, 10)
            # bias add: 0.9 us). From 8 iterations on, a vector body and a scalar remainder
            # are chosen instead (0.07 us); shorter loops are kept scalar by loop metadata
            # (irutil.for_range). A process-wide LLVM option: it only moves that threshold.
            llvm.set_option("graphc", f"-vectorizer-min-trip-count={VECTOR_MIN_TRIP_COUNT}")
            _native_ready = True


def _init_all_targets() -> None:
    """Initialise every target LLVM was built with (for cross compilation), once."""
    global _all_targets_ready
    with _LOCK:
        if not _all_targets_ready:
            init_native()
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _all_targets_ready = True


def host_target() -> TargetInfo:
    """The host's triple, CPU name (e.g. ``znver1``) and CPU features (``+avx2,+fma,...``)."""
    global _host
    with _LOCK:
        if _host is None:
            init_native()
            try:
                features = llvm.get_host_cpu_features().flatten()
            except RuntimeError:  # not every platform can report them
                features = ""
            _host = TargetInfo(
                triple=llvm.get_process_triple(),
                cpu=llvm.get_host_cpu_name(),
                features=features,
            )
        return _host


def _target_machine(
    target: TargetInfo, opt_level: int, reloc: str = "default", jit: bool = False
) -> llvm.TargetMachine:
    """A fresh TargetMachine for ``target`` (never share one between MCJIT engines)."""
    try:
        tgt = llvm.Target.from_triple(target.triple)
    except RuntimeError as exc:
        raise CompileError(f"LLVM has no target for triple {target.triple!r}: {exc}") from exc
    return tgt.create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=min(max(opt_level, 0), 3),
        reloc=reloc,
        codemodel="jitdefault" if jit else "default",
        jit=jit,
    )


def _parse(llvm_ir: str, tm: llvm.TargetMachine, target: TargetInfo) -> llvm.ModuleRef:
    """Parse and verify ``llvm_ir``, retargeting it to ``target``; CompileError on failure."""
    try:
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
    except RuntimeError as exc:
        raise CompileError(f"invalid LLVM IR: {exc}") from exc
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    return mod


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int) -> None:
    """Run the new pass manager's default pipeline at ``opt_level`` over ``mod``."""
    pto = llvm.create_pipeline_tuning_options(speed_level=min(max(opt_level, 0), 3))
    # Level 2 vectorises; level 3 also interleaves and unrolls loops, which doubled the LLVM time
    # of an MLP training step (0.59 s -> 0.28 s without) for no speed-up measured in its kernels.
    pto.loop_vectorization = opt_level >= 2
    pto.slp_vectorization = opt_level >= 2
    pto.loop_interleaving = opt_level >= 3
    pto.loop_unrolling = opt_level >= 3
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)


def cache_key(llvm_ir: str, opt_level: int, target: TargetInfo) -> str:
    """Hex sha256 naming the object code of ``llvm_ir`` compiled at ``opt_level`` for ``target``."""
    h = hashlib.sha256()
    for part in (
        f"graphc-jit-cache/{CACHE_FORMAT_VERSION}",
        str(opt_level),
        target.triple,
        target.cpu,
        target.features,
        llvmlite.__version__,
        ".".join(map(str, llvm.llvm_version_info)),
        llvm_ir,
    ):
        data = part.encode()
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
    return h.hexdigest()


def _read_entry(path: str) -> bytes | None:
    """The object code stored at ``path``, or None if missing, truncated or corrupt."""
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except OSError:
        return None
    if len(blob) < _HEADER.size:
        return None
    magic, version, length, digest = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size:]
    if (
        magic != _MAGIC
        or version != CACHE_FORMAT_VERSION
        or length != len(payload)
        or hashlib.sha256(payload).digest() != digest
    ):
        return None
    try:
        os.utime(path)  # used now: trimmed last (see _trim)
    except OSError:
        pass
    return payload


def _trim(directory: str, keep: str) -> None:
    """Delete the entries used longest ago (by modification time, which a hit refreshes)
    until the cache fits in ``env.cache_max_bytes()``; never ``keep``, the entry just
    written. Another process may be reading a deleted entry: on POSIX its open file stays
    valid, and a process that lists it afterwards only misses and compiles again."""
    from graphc import env
    limit = env.cache_max_bytes()
    try:
        entries = []
        with os.scandir(directory) as it:
            for e in it:
                if e.name.endswith(".o") and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, e.path))
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if os.path.abspath(path) == os.path.abspath(keep):
            continue
        try:
            os.unlink(path)
            total -= size
        except OSError:
            pass


def _write_entry(path: str, payload: bytes) -> None:
    """Store ``payload`` at ``path`` atomically (temp file, fsync, rename); errors ignored."""
    directory = os.path.dirname(path)
    header = _HEADER.pack(_MAGIC, CACHE_FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _trim(directory, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


class NativeModule:
    """A JIT-compiled module: look up function addresses, inspect the optimised code.

    Keeps the execution engine (and thereby the machine code) alive for as long as this
    object lives.  Attributes: ``engine``, ``module``, ``target``, ``opt_level``,
    ``cache_path`` (None without a cache) and ``cache_hit``.
    """

    def __init__(
        self,
        engine: llvm.ExecutionEngine,
        module: llvm.ModuleRef,
        target: TargetInfo,
        opt_level: int,
        source_ir: str,
        optimized: bool,
        cache_path: str | None,
        cache_hit: bool,
    ) -> None:
        """Wrap a finalized engine; ``optimized`` tells whether ``module`` went through O-level."""
        self.engine = engine
        self.module = module
        self.target = target
        self.opt_level = opt_level
        self.cache_path = cache_path
        self.cache_hit = cache_hit
        self._source_ir = source_ir
        self._optimized_ir: str | None = str(module) if optimized else None
        self._asm: str | None = None

    def address(self, name: str) -> int:
        """Address of the compiled function (or global) ``name``; InputError if absent."""
        from graphc.errors import InputError

        with _LOCK:
            addr = self.engine.get_function_address(name)
            if not addr:
                addr = self.engine.get_global_value_address(name)
        if not addr:
            raise InputError(f"no function or global named {name!r} in the compiled module")
        return addr

    def cfunc(self, name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:
        """A ctypes callable for function ``name`` with the given C signature."""
        return ctypes.CFUNCTYPE(restype, *argtypes)(self.address(name))

    @property
    def optimized_ir(self) -> str:
        """Text of the optimised module (recomputed on demand after a cache hit)."""
        if self._optimized_ir is None:
            with _LOCK:
                tm = _target_machine(self.target, self.opt_level)
                mod = _parse(self._source_ir, tm, self.target)
                _optimize(mod, tm, self.opt_level)
                self._optimized_ir = str(mod)
        return self._optimized_ir

    def asm(self) -> str:
        """Assembly text of the optimised module for this target."""
        if self._asm is None:
            with _LOCK:
                tm = _target_machine(self.target, self.opt_level)
                mod = llvm.parse_assembly(self.optimized_ir)
                self._asm = tm.emit_assembly(mod)
        return self._asm


def source_key(*parts: str) -> str:
    """Hex sha256 of ``parts`` plus what any object code depends on: the cache format, the
    host target, llvmlite/LLVM versions and graphc's own source (so that a changed code
    generator never reuses old entries). For caller-built keys (see ``load_cached``)."""
    h = hashlib.sha256()
    target = host_target()
    for part in (f"graphc-jit-cache/{CACHE_FORMAT_VERSION}", target.triple, target.cpu, target.features,
                 llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), _graphc_source_digest(),
                 *parts):
        data = part.encode()
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
    return h.hexdigest()


_source_digest: str | None = None


def _graphc_source_digest() -> str:
    """sha256 over the text of every module of the graphc package (computed once)."""
    global _source_digest
    if _source_digest is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".py"):
                    with open(os.path.join(folder, f), "rb") as fh:
                        h.update(f.encode() + b"\0" + fh.read())
        _source_digest = h.hexdigest()
    return _source_digest


def load_cached(key: str, cache_dir: str | None, opt_level: int = 3, parts: Sequence[str] = ()) -> NativeModule | None:
    """The module stored under ``key`` by ``compile_ir(..., key=key)`` (and the objects stored
    under ``parts`` by ``store_object``), linked and ready, without its IR (so the caller need
    not even generate it); None on a miss or a corrupt entry."""
    if cache_dir is None:
        return None
    blobs = [_read_entry(os.path.join(cache_dir, k + ".o")) for k in (key, *parts)]
    if any(b is None for b in blobs):
        return None
    try:
        return link_objects(blobs, opt_level, os.path.join(cache_dir, key + ".o"), cache_hit=True)
    except CompileError:
        return None  # unusable entries: the caller compiles again and rewrites them


def link_objects(blobs: Sequence[bytes], opt_level: int = 3, cache_path: str | None = None,
                 cache_hit: bool = False) -> NativeModule:
    """One JIT engine holding the object code ``blobs`` (see ``jit_object``), linked together."""
    target = host_target()
    with _LOCK:
        engine_tm = _target_machine(target, opt_level, jit=True)
        mod = llvm.parse_assembly("")
        mod.triple = target.triple
        try:
            engine = llvm.create_mcjit_compiler(mod, engine_tm)
            for blob in blobs:
                engine.add_object_file(llvm.ObjectFileRef.from_data(blob))
            engine.finalize_object()
        except RuntimeError as exc:
            raise CompileError(f"cannot link the compiled code: {exc}") from exc
        return NativeModule(engine, mod, target, opt_level, "", optimized=False, cache_path=cache_path,
                            cache_hit=cache_hit)


def jit_object(llvm_ir: str, opt_level: int = 3) -> bytes:
    """Object code of ``llvm_ir`` for the host, to be linked into a JIT engine with
    ``link_objects`` (e.g. made by another process)."""
    target = host_target()
    with _LOCK:
        tm = _target_machine(target, opt_level, jit=True)
        mod = _parse(llvm_ir, tm, target)
        _optimize(mod, tm, opt_level)
        return tm.emit_object(mod)


def store_object(key: str, cache_dir: str | None, blob: bytes) -> None:
    """Store object code under ``key`` in the disk cache (atomically; errors ignored)."""
    if cache_dir is not None:
        _write_entry(os.path.join(cache_dir, key + ".o"), blob)


def compile_ir(llvm_ir: str, opt_level: int = 3, cache_dir: str | None = None, key: str | None = None) -> NativeModule:
    """Optimise and JIT-compile ``llvm_ir`` for the host CPU (AVX2/FMA where present).

    With ``cache_dir`` the object code is looked up in / stored to that directory, under
    ``key`` if given (see ``source_key``) or else a hash of the IR; a valid entry skips
    optimisation and code generation, an unreadable or corrupt one is recompiled and
    rewritten.  Raises CompileError for IR that does not parse or verify.
    """
    target = host_target()
    with _LOCK:
        cache_path = None
        cached: bytes | None = None
        if cache_dir is not None:
            cache_path = os.path.join(cache_dir, (key or cache_key(llvm_ir, opt_level, target)) + ".o")
            cached = _read_entry(cache_path)
        tm_opt = _target_machine(target, opt_level)
        mod = _parse(llvm_ir, tm_opt, target)
        if cached is None:
            _optimize(mod, tm_opt, opt_level)
        engine_tm = _target_machine(target, opt_level, jit=True)  # owned by the engine
        try:
            engine = llvm.create_mcjit_compiler(mod, engine_tm)
        except RuntimeError as exc:
            raise CompileError(f"cannot create the JIT engine: {exc}") from exc
        if cache_path is not None:
            path = cache_path

            def notify(_module: llvm.ModuleRef, buf: bytes) -> None:
                """MCJIT compiled the module: store its object code."""
                _write_entry(path, buf)

            def getbuffer(_module: llvm.ModuleRef) -> bytes | None:
                """MCJIT asks for stored object code: the validated entry, or None."""
                return cached

            engine.set_object_cache(notify, getbuffer)
        engine.finalize_object()
        engine.run_static_constructors()
        return NativeModule(
            engine, mod, target, opt_level, llvm_ir,
            optimized=cached is None, cache_path=cache_path, cache_hit=cached is not None,
        )


def compile_object(
    llvm_ir: str,
    triple: str | None = None,
    cpu: str | None = None,
    features: str | None = None,
    opt_level: int = 3,
    reloc: str = "pic",
) -> bytes:
    """Compile ``llvm_ir`` to a relocatable object file (ELF, Mach-O, COFF per triple).

    ``triple`` defaults to the host's; ``cpu`` and ``features`` default to the host's for
    the host triple and to the generic CPU otherwise.  Raises CompileError.
    """
    host = host_target()
    if triple is None or triple == host.triple:
        target = TargetInfo(
            host.triple,
            host.cpu if cpu is None else cpu,
            host.features if features is None else features,
        )
    else:
        _init_all_targets()
        target = TargetInfo(triple, cpu or "", features or "")
    with _LOCK:
        tm = _target_machine(target, opt_level, reloc=reloc)
        mod = _parse(llvm_ir, tm, target)
        _optimize(mod, tm, opt_level)
        try:
            return bytes(tm.emit_object(mod))
        except RuntimeError as exc:
            raise CompileError(f"code generation for {target.triple} failed: {exc}") from exc


def register_symbol(name: str, address: int) -> None:
    """Make ``name`` resolve to ``address`` in code JIT-compiled from now on."""
    llvm.add_symbol(name, address)
