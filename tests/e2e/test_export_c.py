"""The C example, built with the system C compiler against the exported header, prints the
same predictions as model.predict; the C API refuses bad weights files with a message."""
from __future__ import annotations

import os
import subprocess

import numpy as np


def _run(exe, art, *extra):
    n = 16
    x = os.path.join(os.path.dirname(art), "x_test.f32")
    return subprocess.run([exe, x, str(n), *extra], capture_output=True, text=True, timeout=20)


def test_c_program_matches_predict(digits_export, c_program):
    out, models, _ = digits_export
    proc = _run(c_program, os.path.join(out, "mlp"))
    assert proc.returncode == 0, proc.stderr
    x = np.load(os.path.join(out, "x_test.npy"))
    lines = [line.split() for line in proc.stdout.strip().splitlines()]
    for kind in ("mlp", "cnn"):  # two artifacts linked into one program
        rows = [r for r in lines if r[0] == kind]
        probs = np.array([[float(v) for v in r[3:]] for r in rows], np.float32)
        expected = models[kind].predict(x, verbose=0)
        np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
        assert [int(r[2]) for r in rows] == list(np.argmax(expected, 1))


def test_shared_library_needs_only_libc(digits_artifact):
    art = digits_artifact[0]
    out = subprocess.run(["readelf", "-d", os.path.join(art, "libgraphc_digits.so")], capture_output=True,
                         text=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    # ld-linux comes with glibc: thread-local last_error uses __tls_get_addr
    assert {n for n in needed if not n.startswith("ld-linux")} <= {"libc.so.6", "libm.so.6"}, needed
    syms = subprocess.run(["nm", "-D", "--defined-only", os.path.join(art, "libgraphc_digits.so")],
                          capture_output=True, text=True).stdout.split()
    exported = {s for s in syms if s.startswith("digits")}
    assert "digits_run" in exported and "digits_create" in exported
    assert not any("__impl" in s for s in syms)  # generated code stays internal


def test_c_api_refuses_bad_weights(digits_artifact, c_program, tmp_path):
    art = digits_artifact[0]
    with open(os.path.join(art, "digits.weights"), "rb") as f:
        blob = f.read()
    cases = {
        "trunc.weights": (blob[: len(blob) // 2], "truncated"),
        "flip.weights": (blob[:-5] + bytes([blob[-5] ^ 0xFF]) + blob[-4:], "does not match this model"),
        "magic.weights": (b"NOTGRAPH" + blob[8:], "bad magic"),
        "tiny.weights": (b"x", "truncated"),
    }
    for name, (data, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        proc = _run(c_program, art, str(p))
        assert proc.returncode == 1, (name, proc.stdout)
        assert message in proc.stderr, (name, proc.stderr)
    proc = _run(c_program, art, str(tmp_path / "missing.weights"))
    assert proc.returncode == 1 and "cannot open" in proc.stderr
