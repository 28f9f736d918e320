"""Tests for graphc.backend.jit: JIT compilation, the object-code disk cache, AOT objects."""

from __future__ import annotations

import ctypes
import os
import re
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from graphc.backend import jit
from graphc.backend.jit import (
    NativeModule,
    TargetInfo,
    compile_ir,
    compile_object,
    host_target,
    init_native,
    register_symbol,
)
from graphc.errors import CompileError, GraphcError, InputError

ROOT = Path(__file__).resolve().parents[2]

ADD_IR = """
define i64 @add(i64 %a, i64 %b) {
entry:
  %s = add i64 %a, %b
  ret i64 %s
}
"""

# out[i] = a * x[i] + y[i]: a loop the vectoriser must turn into SIMD code.
SAXPY_IR = """
define void @saxpy(float %a, ptr noalias %x, ptr noalias %y, ptr noalias %out, i64 %n) {
entry:
  %nonempty = icmp sgt i64 %n, 0
  br i1 %nonempty, label %loop, label %done
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %px = getelementptr inbounds float, ptr %x, i64 %i
  %py = getelementptr inbounds float, ptr %y, i64 %i
  %po = getelementptr inbounds float, ptr %out, i64 %i
  %vx = load float, ptr %px
  %vy = load float, ptr %py
  %m = fmul float %a, %vx
  %s = fadd float %m, %vy
  store float %s, ptr %po
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}
"""


def _saxpy(nm: NativeModule) -> ctypes._CFuncPtr:
    """ctypes view of the saxpy kernel."""
    p = ctypes.c_void_p
    return nm.cfunc("saxpy", None, ctypes.c_float, p, p, p, ctypes.c_int64)


def _check_saxpy(nm: NativeModule, n: int = 1003) -> None:
    """Run saxpy on random data and compare with NumPy."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    out = np.zeros(n, np.float32)
    _saxpy(nm)(2.5, x.ctypes.data, y.ctypes.data, out.ctypes.data, n)
    np.testing.assert_allclose(out, np.float32(2.5) * x + y, rtol=1e-6, atol=1e-6)


def test_init_native_is_idempotent() -> None:
    """init_native can be called any number of times."""
    init_native()
    init_native()


def test_host_target() -> None:
    """The host target is a frozen description with a real triple, CPU and features."""
    t = host_target()
    assert isinstance(t, TargetInfo)
    assert t is host_target()
    assert t.triple and t.cpu
    assert "+" in t.features or t.features == ""
    with pytest.raises(AttributeError):
        t.cpu = "generic"  # type: ignore[misc]


def test_compile_and_call() -> None:
    """A trivial function compiles and can be called through ctypes."""
    nm = compile_ir(ADD_IR)
    add = nm.cfunc("add", ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
    assert add(40, 2) == 42
    assert add(-5, 3) == -2
    assert nm.address("add") == ctypes.cast(add, ctypes.c_void_p).value
    assert nm.cache_path is None and nm.cache_hit is False


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_opt_levels(opt_level: int) -> None:
    """Every optimisation level produces working code."""
    _check_saxpy(compile_ir(SAXPY_IR, opt_level=opt_level))


def test_vectorised_loop_and_host_features() -> None:
    """At O3 the loop is vectorised and the host's vector ISA is used."""
    nm = compile_ir(SAXPY_IR)
    _check_saxpy(nm, 4099)
    widths = {int(w) for w in re.findall(r"<(\d+) x float>", nm.optimized_ir)}
    assert widths and max(widths) >= 4, nm.optimized_ir
    if "+avx2" in host_target().features:
        assert max(widths) >= 8
        assert re.search(r"\b(?:vfmadd\w*|vmulps|vaddps)\b[^\n]*%[yz]mm", nm.asm())


def test_asm_and_optimized_ir() -> None:
    """The optimised IR and assembly are available as text."""
    nm = compile_ir(ADD_IR)
    assert "define" in nm.optimized_ir and "@add" in nm.optimized_ir
    assert "add" in nm.asm()


def test_parse_error_raises_compile_error() -> None:
    """IR that does not parse is a CompileError (a GraphcError)."""
    with pytest.raises(CompileError) as info:
        compile_ir("define i32 @f( {")
    assert isinstance(info.value, GraphcError)


def test_verify_error_raises_compile_error() -> None:
    """IR that parses but does not verify is a CompileError."""
    bad = """
define i32 @f() {
entry:
  %a = add i32 %b, 1
  %b = add i32 1, 1
  ret i32 %a
}
"""
    with pytest.raises(CompileError):
        compile_ir(bad)


def test_unknown_symbol() -> None:
    """Asking for a function that is not there is an InputError."""
    nm = compile_ir(ADD_IR)
    with pytest.raises(InputError):
        nm.address("nope")


def test_register_symbol() -> None:
    """JIT code can call a helper registered with register_symbol."""
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)
    helper = proto(lambda v: v * 3 + 1)
    register_symbol("graphc_test_helper_triple", ctypes.cast(helper, ctypes.c_void_p).value)
    nm = compile_ir(
        """
declare i64 @graphc_test_helper_triple(i64)
define i64 @g(i64 %x) {
  %r = call i64 @graphc_test_helper_triple(i64 %x)
  %s = add i64 %r, 1
  ret i64 %s
}
"""
    )
    assert nm.cfunc("g", ctypes.c_int64, ctypes.c_int64)(5) == 17
    assert helper  # keep the callback alive until here


def test_threads_compile_concurrently() -> None:
    """Compiling from several threads at once is safe."""
    results: list[bool] = []
    errors: list[BaseException] = []

    def work() -> None:
        """Compile and check one kernel, recording the outcome."""
        try:
            _check_saxpy(compile_ir(SAXPY_IR))
            results.append(True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


# ------------------------------------------------------------------------------- cache


def _entries(d: Path) -> list[Path]:
    """Cache entries (not temp files) in ``d``."""
    return sorted(p for p in d.iterdir() if p.suffix == ".o" and not p.name.startswith("."))


def test_cache_hit_skips_codegen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second compile of the same IR loads the stored object instead of compiling."""
    writes: list[str] = []
    real_write = jit._write_entry

    def counting_write(path: str, payload: bytes) -> None:
        """Record the write, then do it."""
        writes.append(path)
        real_write(path, payload)

    monkeypatch.setattr(jit, "_write_entry", counting_write)
    first = compile_ir(SAXPY_IR, cache_dir=str(tmp_path))
    assert first.cache_hit is False
    assert len(writes) == 1 and len(_entries(tmp_path)) == 1
    assert first.cache_path == str(_entries(tmp_path)[0])
    _check_saxpy(first)

    second = compile_ir(SAXPY_IR, cache_dir=str(tmp_path))
    assert second.cache_hit is True
    assert len(writes) == 1  # no code generation, nothing written
    assert second.cache_path == first.cache_path
    _check_saxpy(second)
    assert "<" in second.optimized_ir  # recomputed lazily after a hit
    assert "saxpy" in second.asm()


def test_cache_key_depends_on_inputs() -> None:
    """The key changes with the IR, the optimisation level and the target."""
    t = host_target()
    k = jit.cache_key(ADD_IR, 3, t)
    assert k == jit.cache_key(ADD_IR, 3, t)
    assert k != jit.cache_key(ADD_IR, 2, t)
    assert k != jit.cache_key(ADD_IR + "\n", 3, t)
    assert k != jit.cache_key(ADD_IR, 3, TargetInfo(t.triple, "generic", t.features))
    assert k != jit.cache_key(ADD_IR, 3, TargetInfo(t.triple, t.cpu, t.features + ",-avx"))


def test_different_opt_levels_get_different_entries(tmp_path: Path) -> None:
    """O2 and O3 builds of the same IR are cached separately."""
    compile_ir(ADD_IR, opt_level=2, cache_dir=str(tmp_path))
    compile_ir(ADD_IR, opt_level=3, cache_dir=str(tmp_path))
    assert len(_entries(tmp_path)) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_corrupt_entry_is_a_miss_and_rewritten(tmp_path: Path, damage: str) -> None:
    """A damaged entry is detected, the code recompiled and the entry rewritten."""
    nm = compile_ir(SAXPY_IR, cache_dir=str(tmp_path))
    path = Path(nm.cache_path or "")
    good = path.read_bytes()
    if damage == "flip":
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0x55
        path.write_bytes(bytes(bad))
    elif damage == "truncate":
        path.write_bytes(good[: len(good) - 17])
    elif damage == "garbage":
        path.write_bytes(b"\x7fELF" + os.urandom(200))
    else:
        path.write_bytes(b"")
    again = compile_ir(SAXPY_IR, cache_dir=str(tmp_path))
    assert again.cache_hit is False
    _check_saxpy(again)
    assert path.read_bytes() == good  # rewritten (object code is deterministic)
    third = compile_ir(SAXPY_IR, cache_dir=str(tmp_path))
    assert third.cache_hit is True
    _check_saxpy(third)


def test_entry_format(tmp_path: Path) -> None:
    """Entries carry a magic, a version, the payload length and its sha256."""
    import hashlib

    nm = compile_ir(ADD_IR, cache_dir=str(tmp_path))
    blob = Path(nm.cache_path or "").read_bytes()
    magic, version, length, digest = jit._HEADER.unpack_from(blob)
    payload = blob[jit._HEADER.size:]
    assert magic == jit._MAGIC and version == jit.CACHE_FORMAT_VERSION
    assert length == len(payload) and hashlib.sha256(payload).digest() == digest
    assert jit._read_entry(str(tmp_path / "missing.o")) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_cache_is_trimmed_to_its_limit_least_recently_used_first(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Over GRAPHC_CACHE_MAX_MB the entries used longest ago go; a hit counts as a use, and
    the entry just written is kept even when it alone is over the limit."""
    for i, name in enumerate(("old", "hit", "newer")):
        jit._write_entry(str(tmp_path / f"{name}.o"), bytes(1000))
        os.utime(tmp_path / f"{name}.o", (1000 + i, 1000 + i))
    assert jit._read_entry(str(tmp_path / "hit.o")) is not None  # "hit" is now the newest
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", str(2500 / (1024 * 1024)))  # room for two entries
    jit._write_entry(str(tmp_path / "new.o"), bytes(1000))
    assert sorted(p.name for p in tmp_path.glob("*.o")) == ["hit.o", "new.o"]
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "0")
    jit._write_entry(str(tmp_path / "big.o"), bytes(5000))
    assert [p.name for p in tmp_path.glob("*.o")] == ["big.o"]
    nm = compile_ir(ADD_IR, cache_dir=str(tmp_path))  # and compiling still works
    assert nm.cache_path is not None and Path(nm.cache_path).exists()


def test_unwritable_cache_dir_still_compiles(tmp_path: Path) -> None:
    """A cache directory that cannot be created only costs speed."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    nm = compile_ir(ADD_IR, cache_dir=str(blocker / "sub"))
    assert nm.cfunc("add", ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(1, 2) == 3


def test_two_processes_share_a_cache(tmp_path: Path) -> None:
    """Two processes compiling the same IR into one cache directory at once both succeed."""
    script = textwrap.dedent(
        f"""
        import ctypes, sys
        sys.path.insert(0, {str(ROOT)!r})
        from graphc.backend.jit import compile_ir
        ir = {ADD_IR!r}
        for i in range(3):
            nm = compile_ir(ir.replace("@add", "@add%d" % i), cache_dir=sys.argv[1])
            f = nm.cfunc("add%d" % i, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
            assert f(2, 3) == 5
        print("ok")
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    entries = _entries(tmp_path)
    assert len(entries) == 3
    assert all(jit._read_entry(str(e)) is not None for e in entries)


# ----------------------------------------------------------------------- AOT objects


def _elf_machine(obj: bytes) -> int:
    """e_machine of a little-endian ELF64 object."""
    assert obj[:4] == b"\x7fELF"
    assert obj[4] == 2 and obj[5] == 1  # ELFCLASS64, little endian
    (e_type, e_machine) = struct.unpack_from("<HH", obj, 16)
    assert e_type == 1  # ET_REL: relocatable
    return e_machine


def test_compile_object_host() -> None:
    """The default object is for the host."""
    if not host_target().triple.startswith("x86_64") or "linux" not in host_target().triple:
        pytest.skip("ELF x86-64 host expected")
    obj = compile_object(SAXPY_IR)
    assert _elf_machine(obj) == 62  # EM_X86_64


def test_compile_object_x86_64_generic() -> None:
    """An x86-64 object for the generic CPU."""
    obj = compile_object(SAXPY_IR, triple="x86_64-unknown-linux-gnu", cpu="x86-64", features="")
    assert isinstance(obj, bytes)
    assert _elf_machine(obj) == 62
    assert b"saxpy" in obj


def test_compile_object_aarch64() -> None:
    """Cross compilation to AArch64 (all targets initialised lazily)."""
    obj = compile_object(SAXPY_IR, triple="aarch64-unknown-linux-gnu")
    assert _elf_machine(obj) == 183  # EM_AARCH64
    obj2 = compile_object(SAXPY_IR, triple="aarch64-unknown-linux-gnu", cpu="neoverse-n1", opt_level=2)
    assert _elf_machine(obj2) == 183


def test_compile_object_errors() -> None:
    """Bad IR and unknown triples are CompileErrors."""
    with pytest.raises(CompileError):
        compile_object("this is not IR")
    with pytest.raises(CompileError):
        compile_object(ADD_IR, triple="nosucharch-unknown-none")


@pytest.mark.parametrize("n", [3, 5, 9, 10, 12, 15])
def test_loops_with_a_tiny_constant_trip_count(n: int) -> None:
    """Rows of a few (< 16) elements: the results match NumPy, and on AVX2 the loops use no
    masked loads or stores (microcoded on AMD Zen; LLVM's default for such loops)."""
    import graphc as gc

    x = gc.placeholder((None, n), "float32", name="x")
    bias = np.linspace(-1, 1, n).astype(np.float32)
    fn = gc.function([x], [x + gc.constant(bias), gc.ops.sum(x * x, axis=-1), gc.ops.log_softmax(x, axis=-1)])
    xs = np.random.default_rng(n).standard_normal((7, n)).astype(np.float32)
    added, squares, logp = fn(xs)
    np.testing.assert_allclose(added, xs + bias, rtol=1e-6)
    np.testing.assert_allclose(squares, (xs * xs).sum(-1), rtol=1e-5)
    z = xs - xs.max(-1, keepdims=True)
    np.testing.assert_allclose(logp, z - np.log(np.exp(z).sum(-1, keepdims=True)), rtol=1e-5, atol=1e-6)
    if "+avx2" in host_target().features:
        asm = compile_ir(fn.llvm_ir).asm()
        assert "maskmov" not in asm


def test_models_compile_without_llvm_warnings(capfd) -> None:
    """LLVM prints a warning for every loop whose forced vectorisation failed (see
    irutil.for_range): an MLP, a convnet and an LSTM training step compile (no disk cache, so
    LLVM runs) without any."""
    import graphc as gc
    from graphc.keras import layers as L

    opts = gc.CompileOptions(cache_dir=None, compile_jobs=1)
    x = gc.placeholder((None, 12, 12, 3), "float32", name="x")
    y = gc.placeholder((None, 10), "float32", name="y")
    conv = L.Conv2D(5, 3, activation="relu")
    dense = L.Dense(10)
    h = L.MaxPooling2D(2)(conv(x))
    logits = dense(L.Flatten()(h))
    loss = -gc.ops.mean(gc.ops.sum(y * gc.ops.log_softmax(logits, axis=-1), axis=-1))
    weights = conv.trainable_weights + dense.trainable_weights
    gc.function([x, y], loss, updates=[(w, w - 0.1 * g) for w, g in zip(weights, gc.grad(loss, weights))],
                options=opts)
    s = gc.placeholder((4, 7, 3), "float32", name="s")
    lstm = L.LSTM(6)
    out = gc.ops.mean(lstm(s) ** 2)
    gc.function([s], out, updates=[(w, w - 0.1 * g) for w, g in zip(lstm.trainable_weights,
                                                                      gc.grad(out, lstm.trainable_weights))],
                options=opts)
    err = capfd.readouterr().err
    assert "not vectorized" not in err and "warning" not in err, err
