"""The C example, built with the system C compiler against the exported header, prints the
same predictions as model.predict; the C API refuses bad weights files with a message."""
from __future__ import annotations

import os
import subprocess

import numpy as np


def _run(exe, art, *extra):
    n = 16
    proc = subprocess.run([exe, os.path.join(art, "x_test.f32"), str(n), *extra], capture_output=True, text=True,
                          timeout=20)
    return proc


def test_c_program_matches_predict(digits_artifact, c_program):
    art, model, _ = digits_artifact
    proc = _run(c_program, art)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.strip().splitlines()]
    probs = np.array([[float(v) for v in r[2:]] for r in rows], np.float32)
    expected = model.predict(np.load(os.path.join(art, "x_test.npy")), verbose=0)
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
    assert [int(r[1]) for r in rows] == list(np.argmax(expected, 1))


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
