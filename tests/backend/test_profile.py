"""Kernel profiling (CompileOptions(profile=True) / GRAPHC_PROFILE=1): every kernel is
listed, with a call count and a time, and profiling does not change what the code computes."""
from __future__ import annotations

import io

import numpy as np
import pytest

import graphc as gc
from graphc.errors import InputError


def _mlp(options):
    x = gc.placeholder((None, 6), "float32", name="x")
    w = gc.shared(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4), name="w")
    loss = gc.ops.mean(gc.ops.tanh(x @ w) ** 2)
    return gc.function([x], loss, updates=[(w, w - 0.1 * gc.grad(loss, w))], options=options)


def test_profile_counts_every_kernel_call():
    f = _mlp(gc.CompileOptions(profile=True))
    ref = _mlp(gc.CompileOptions())
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    for _ in range(3):
        assert np.allclose(f(x), ref(x))
    out = io.StringIO()
    rows = f.profile(file=out)
    assert rows and all(calls == 3 and seconds >= 0 for _, calls, seconds in rows)
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    assert any(" matmul " in name for name, _, _ in rows)
    assert any("test_profile.py" in name for name, _, _ in rows)  # the user's line
    assert "kernel" in out.getvalue() and len(out.getvalue().splitlines()) == len(rows) + 1
    f.profile(reset=True)
    assert all(calls == 0 and seconds == 0 for _, calls, seconds in f.profile())


def test_profile_counts_loop_body_kernels_per_step():
    def step(h, x):
        h = gc.ops.tanh(h * 0.5 + x)
        return h, h
    xs = gc.placeholder((7, 3), "float32")
    _, ys = gc.scan(step, gc.ops.zeros((3,), "float32"), xs)
    f = gc.function([xs], ys, options=gc.CompileOptions(profile=True))
    f(np.ones((7, 3), np.float32))
    assert any(name.startswith("s") and calls == 7 for name, calls, _ in f.profile())


def test_profile_environment_variable(monkeypatch):
    monkeypatch.setenv("GRAPHC_PROFILE", "1")
    f = _mlp(gc.CompileOptions())
    f(np.ones((2, 6), np.float32))
    assert all(calls == 1 for _, calls, _ in f.profile())


def test_profile_needs_the_option():
    f = _mlp(gc.CompileOptions())
    with pytest.raises(InputError, match="profile=True"):
        f.profile()

