"""export(): byte-identical artifacts, cross-compilation to aarch64, plain graphc.Function
exports, and the graphc command."""
from __future__ import annotations

import filecmp
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
import graphc_runtime
from graphc.errors import InputError
from graphc.keras.layers import Dense, Input
from graphc.keras.models import Sequential
from conftest import ROOT


@pytest.fixture(scope="module")
def small_model():
    np.random.seed(1)
    m = Sequential([Input(shape=(8,)), Dense(5, activation="tanh"), Dense(3, activation="softmax")], name="small")
    m.compile(loss="categorical_crossentropy", optimizer="adam")
    return m


def test_same_model_twice_is_byte_identical(small_model, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    gc.export(small_model, a)
    small_model.export(b)
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b)) and "libgraphc_small.so" in names
    for f in names:
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f


def test_aarch64_artifact_builds_here(small_model, tmp_path):
    out = str(tmp_path / "arm")
    m = gc.export(small_model, out, target="aarch64", cpu="cortex-a72")
    assert m["target"]["triple"].startswith("aarch64") and m["target"]["cpu"] == "cortex-a72"
    obj = open(os.path.join(out, m["files"].get("object", "small.o")), "rb").read()
    assert obj[:4] == b"\x7fELF" and struct.unpack("<H", obj[18:20])[0] == 183  # EM_AARCH64
    if "library" not in m["files"]:  # no aarch64 cross compiler here: object + wrapper source
        assert os.path.exists(os.path.join(out, m["files"]["wrapper_source"]))
    with pytest.raises(graphc_runtime.ArtifactError, match="aarch64"):
        graphc_runtime.load(out)
    # the wrapper is portable C: it compiles here too (linking needs the aarch64 toolchain)
    proc = subprocess.run(["cc", "-fsyntax-only", "-Wall", "-Werror", "-std=gnu11", m["files"]["wrapper_source"]],
                          cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_portable_x86_64_target(small_model, tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 only")
    out = str(tmp_path / "x")
    m = gc.export(small_model, out, target="x86_64")
    assert m["target"] == {"triple": "x86_64-unknown-linux-gnu", "cpu": "x86-64", "features": []}
    x = np.random.rand(4, 8).astype("float32")
    np.testing.assert_allclose(graphc_runtime.load(out)(x), small_model.predict(x, verbose=0), atol=1e-5)


def test_bad_target_is_refused(small_model, tmp_path):
    with pytest.raises(InputError, match="target must be"):
        gc.export(small_model, str(tmp_path / "z"), target="pdp11 please")


def test_export_function_with_shared_and_updates(tmp_path):
    x = gc.placeholder((None, 3), name="x")
    w = gc.shared(np.arange(6, dtype="float32").reshape(3, 2), name="w")
    count = gc.shared(np.zeros((), "float32"), name="count")
    fn = gc.function([x], [gc.ops.tanh(x @ w), gc.ops.sum(x)], updates=[(count, count + 1.0)], name="f")
    m = gc.export(fn, str(tmp_path / "f"))
    assert [o["shape"] for o in m["outputs"]] == [[None, 2], []]
    art = graphc_runtime.load(str(tmp_path / "f"))
    xv = np.random.rand(5, 3).astype("float32")
    y, s = art(xv)
    np.testing.assert_allclose(y, np.tanh(xv @ w_value(w)), atol=1e-6)
    np.testing.assert_allclose(s, xv.sum(), rtol=1e-5)
    art(xv)
    names = [a["name"] for a in m["weights"]["arrays"]]
    assert float(art.get_weights()[names.index("shared/count")]) == 2.0


def w_value(w):
    from graphc.frontend.variables import get_value
    return get_value(w)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "graphc.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_cli_compile_info_run_bench(small_model, tmp_path):
    from graphc.cli import main
    saved = str(tmp_path / "small.keras")
    small_model.save(saved)
    out = str(tmp_path / "art")
    assert main(["compile", saved, "-o", out]) == 0
    assert json.load(open(os.path.join(out, "manifest.json")))["name"] == "small"
    x = np.random.rand(6, 8).astype("float32")
    np.save(tmp_path / "x.npy", x)
    assert main(["run", out, "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), small_model.predict(x, verbose=0), atol=1e-5)
    proc = _cli("info", out)
    assert proc.returncode == 0 and "batch" in proc.stdout and "sha256" in proc.stdout, proc.stderr
    proc = _cli("bench", out, "--repeat", "5")
    assert proc.returncode == 0 and "per call" in proc.stdout, proc.stderr
    proc = _cli("info", str(tmp_path))
    assert proc.returncode == 1 and "no manifest.json" in proc.stderr


@pytest.mark.parametrize("cmd", [[], ["compile"], ["info"], ["run"], ["bench"]])
def test_cli_help(cmd):
    proc = _cli(*cmd, "--help")
    assert proc.returncode == 0 and "usage: graphc" in proc.stdout
