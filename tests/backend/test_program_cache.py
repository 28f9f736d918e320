"""The disk cache of compiled functions: keyed by the scheduled program, so a hit skips code
generation entirely; corrupt entries are rebuilt; ``GRAPHC_CACHE_DIR=off`` disables it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

import graphc as gc
from graphc import env
from graphc.options import CompileOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mlp_step(cache_dir: str) -> gc.Function:
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 6), name="x")
    w = gc.shared(rng.normal(size=(6, 4)).astype("float32"), name="w")
    b = gc.shared(np.zeros(4, "float32"), name="b")
    loss = gc.ops.mean(gc.ops.tanh(x @ w + b) ** 2)
    gw, gb = gc.grad(loss, [w, b])
    return gc.function([x], loss, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)],
                       options=CompileOptions(cache_dir=cache_dir), name="step")


def test_a_hit_loads_the_same_code_without_generating_it(tmp_path):
    cache = str(tmp_path / "cache")
    first = _mlp_step(cache)
    assert not first._native.module.cache_hit
    second = _mlp_step(cache)  # new shared variables, same program
    assert second._native.module.cache_hit
    assert second._native._llvm_ir is None  # no IR was generated for the hit ...
    # ... but it is there on demand: the same code, but for the names of the symbolic sizes
    def canonical(fn):
        text = fn.llvm_ir
        for i, sym in enumerate(fn._native.program.symbols):
            text = text.replace(sym.name, f"sym{i}")
        return text
    assert canonical(second) == canonical(first)
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    assert first(x) == second(x)


def test_different_constants_or_shapes_do_not_collide(tmp_path):
    cache = str(tmp_path / "cache")
    x = gc.placeholder((3,), name="x")
    f2 = gc.function([x], x * 2.0, options=CompileOptions(cache_dir=cache))
    f3 = gc.function([x], x * 3.0, options=CompileOptions(cache_dir=cache))
    y = gc.placeholder((4,), name="x")
    g2 = gc.function([y], y * 2.0, options=CompileOptions(cache_dir=cache))
    np.testing.assert_array_equal(f2(np.ones(3, "float32")), [2, 2, 2])
    np.testing.assert_array_equal(f3(np.ones(3, "float32")), [3, 3, 3])
    np.testing.assert_array_equal(g2(np.ones(4, "float32")), [2, 2, 2, 2])


def test_a_corrupt_entry_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    first = _mlp_step(str(cache))
    path = first._native.module.cache_path
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"garbage!")
    again = _mlp_step(str(cache))
    assert not again._native.module.cache_hit
    x = np.ones((2, 6), "float32")
    assert again(x) == first(x)
    assert _mlp_step(str(cache))._native.module.cache_hit  # rewritten intact


def test_a_fresh_process_hits_the_cache(tmp_path):
    cache = str(tmp_path / "cache")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {ROOT!r})
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from test_program_cache import _mlp_step
        fn = _mlp_step({cache!r})
        print(fn._native.module.cache_hit)
        """)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert [r.stdout.strip() for r in runs] == ["False", "True"]


def test_cache_location_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "off")
    assert env.default_cache_dir() is None
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    assert env.default_cache_dir() == str(tmp_path)
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert env.default_cache_dir() == str(tmp_path / "xdg" / "graphc")


def test_parallel_compile_matches_and_survives_a_failed_child(tmp_path, monkeypatch):
    """Kernels split over two processes give the same results as one process; a part whose
    child fails is compiled in this process instead."""
    from graphc.lower import parallel_compile
    x = np.random.default_rng(2).normal(size=(5, 6)).astype("float32")
    # each function is called once: a call updates its (fresh, equal) weights
    want = _mlp_step_opts(CompileOptions(cache_dir=None, compile_jobs=1))(x)
    assert _mlp_step_opts(CompileOptions(cache_dir=None, compile_jobs=2))(x) == want
    if parallel_compile.jobs_for(2, 100) == 2:
        parent = os.getpid()
        real = parallel_compile.jit_object

        def failing_in_children(ir, opt):
            if os.getpid() != parent:
                raise RuntimeError("simulated crash of a compiling child")
            return real(ir, opt)
        monkeypatch.setattr(parallel_compile, "jit_object", failing_in_children)
        rescued = _mlp_step_opts(CompileOptions(cache_dir=None, compile_jobs=2))
        monkeypatch.undo()
        assert rescued(x) == want
    # and through the cache: the parts are stored and loaded together
    cache = str(tmp_path / "cache")
    assert _mlp_step_opts(CompileOptions(cache_dir=cache, compile_jobs=2))(x) == want
    again = _mlp_step_opts(CompileOptions(cache_dir=cache, compile_jobs=2))
    assert again._native.module.cache_hit and again(x) == want


def _mlp_step_opts(options: CompileOptions) -> gc.Function:
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 6), name="x")
    ws = [gc.shared(rng.normal(size=(6, 6)).astype("float32"), name=f"w{i}") for i in range(4)]
    h = x
    for w in ws:
        h = gc.ops.tanh(h @ w + 0.1)
    loss = gc.ops.mean(h ** 2)
    grads = gc.grad(loss, ws)
    return gc.function([x], loss, updates=[(w, w - 0.1 * g) for w, g in zip(ws, grads)], options=options,
                       name="deep")
