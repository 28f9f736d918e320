"""graphc_runtime: the artifact runs in a clean virtual environment with only numpy and
graphc_runtime, and corrupted, truncated or mismatched artifacts are refused with clear errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv

import numpy as np
import pytest

from conftest import RUNTIME

import graphc_runtime
from graphc_runtime import ArtifactError


def _clean_env(root) -> str:
    """A venv (no pip, no system site-packages) that sees only numpy and graphc_runtime.

    numpy is not downloaded: a directory holding symlinks to the installed numpy package (and
    its bundled libraries) is put on the venv's path with a .pth file, so nothing else from
    the system site-packages (graphc, llvmlite, sympy) is importable."""
    env_dir = os.path.join(root, "venv")
    venv.EnvBuilder(with_pip=False, system_site_packages=False, symlinks=True).create(env_dir)
    site = subprocess.run([os.path.join(env_dir, "bin", "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    only = os.path.join(root, "only_numpy")
    os.makedirs(only)
    np_parent = os.path.dirname(os.path.dirname(np.__file__))
    for entry in os.listdir(np_parent):
        if entry == "numpy" or entry.startswith("numpy.libs") or entry.startswith("numpy-"):
            os.symlink(os.path.join(np_parent, entry), os.path.join(only, entry))
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(only + "\n" + RUNTIME + "\n")
    return os.path.join(env_dir, "bin", "python")


def test_clean_venv_runs_artifact(digits_artifact, tmp_path):
    art, model, _ = digits_artifact
    python = _clean_env(str(tmp_path))
    script = textwrap.dedent(f"""
        import importlib, json, sys
        for banned in ("graphc", "llvmlite", "sympy"):
            try:
                importlib.import_module(banned)
            except ImportError:
                pass
            else:
                sys.exit("import " + banned + " worked in the clean environment")
        import numpy as np, graphc_runtime
        fn = graphc_runtime.load({art!r})
        y = fn(np.load({os.path.join(os.path.dirname(art), 'x_test.npy')!r}))
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print("ok", graphc_runtime.__file__)
    """)
    proc = subprocess.run([python, "-I", "-c", script], capture_output=True, text=True, cwd=str(tmp_path),
                          timeout=20)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    expected = model.predict(np.load(os.path.join(os.path.dirname(art), "x_test.npy")), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5, rtol=0)


def test_runtime_call_and_batch_sizes(digits_artifact):
    art, model, x = digits_artifact
    fn = graphc_runtime.load(art)
    for n in (0, 1, 7, 100):
        np.testing.assert_allclose(fn(x[:n]), model.predict(x[:n], verbose=0) if n else np.zeros((0, 10)),
                                   atol=1e-5)
    np.testing.assert_allclose(fn(**{fn.inputs[0]["name"]: x[:3].astype("float64")}), fn(x[:3]))
    with pytest.raises(ValueError, match="expects shape"):
        fn(x[:3, :10])
    with pytest.raises(TypeError, match="expects float32"):
        fn(np.zeros((2, 64), "complex64"))


def _copy(art, tmp_path) -> str:
    dst = str(tmp_path / "copy")
    shutil.copytree(art, dst)
    return dst


def _edit_manifest(path, fn):
    p = os.path.join(path, "manifest.json")
    with open(p) as f:
        m = json.load(f)
    fn(m)
    with open(p, "w") as f:
        json.dump(m, f)


@pytest.mark.parametrize("case, message", [
    ("truncated_weights", "truncated"),
    ("flipped_weights", "weights checksum mismatch"),
    ("other_weights", "weights checksum mismatch"),
    ("format_version", "format version 99"),
    ("cpu_feature", "features this CPU lacks"),
    ("arch", "but this machine is"),
    ("corrupt_library", "corrupted"),
    ("truncated_manifest", "corrupted manifest"),
    ("missing_weights", "missing"),
    ("not_artifact", "no manifest.json"),
    ("path_escape", "bad file name"),
])
def test_refuses_bad_artifacts(digits_artifact, tmp_path, case, message):
    path = _copy(digits_artifact[0], tmp_path)
    weights = os.path.join(path, "digits.weights")
    blob = open(weights, "rb").read()
    if case == "truncated_weights":
        open(weights, "wb").write(blob[:-100])
    elif case == "flipped_weights":
        open(weights, "wb").write(blob[:500] + bytes([blob[500] ^ 1]) + blob[501:])
    elif case == "other_weights":
        arr = np.frombuffer(blob, np.uint8).copy()
        arr[-64:] = 0
        open(weights, "wb").write(arr.tobytes())
    elif case == "format_version":
        _edit_manifest(path, lambda m: m.update(format_version=99))
    elif case == "cpu_feature":
        from graphc_runtime._cpu import cpu_flags
        flags = cpu_flags() or set()
        if "avx512fp16" in flags or not flags or os.uname().machine != "x86_64":
            pytest.skip("needs an x86 CPU without avx512fp16")
        _edit_manifest(path, lambda m: m["target"]["features"].append("+avx512fp16"))
    elif case == "arch":
        _edit_manifest(path, lambda m: m["target"].update(triple="riscv64-unknown-linux-gnu"))
    elif case == "corrupt_library":
        lib = os.path.join(path, "libgraphc_digits.so")
        data = bytearray(open(lib, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(lib, "wb").write(bytes(data))
    elif case == "truncated_manifest":
        p = os.path.join(path, "manifest.json")
        open(p, "wb").write(open(p, "rb").read()[:200])
    elif case == "missing_weights":
        os.remove(weights)
    elif case == "path_escape":
        _edit_manifest(path, lambda m: m["files"].update(library="../../../lib/libc.so.6"))
    elif case == "not_artifact":
        os.remove(os.path.join(path, "manifest.json"))
    with pytest.raises(ArtifactError, match=message):
        graphc_runtime.load(path)


def test_runtime_does_not_import_graphc():
    src = os.path.join(RUNTIME, "graphc_runtime")
    for f in os.listdir(src):
        if f.endswith(".py"):
            text = open(os.path.join(src, f)).read()
            assert "import graphc\n" not in text and "from graphc." not in text and "import llvmlite" not in text
    assert "graphc" not in sys.modules["graphc_runtime"].__dict__


def test_recurrent_model_exports_as_one_native_loop(tmp_path):
    """An Embedding + LSTM + Dense model (its recurrence one loop node) exports and runs in the
    runtime like predict."""
    import graphc.keras as keras
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.layers.Input((12,), dtype="int32"), keras.layers.Embedding(20, 8),
                              keras.layers.LSTM(16), keras.layers.Dense(3, activation="softmax")])
    x = rng.integers(0, 20, size=(5, 12)).astype("int32")
    expected = model.predict(x, verbose=0)
    model.export(str(tmp_path / "rnn"))
    fn = graphc_runtime.load(str(tmp_path / "rnn"))
    np.testing.assert_allclose(fn(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fn(x[:1]), expected[:1], rtol=1e-5, atol=1e-6)
