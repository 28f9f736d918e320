"""A train-step artifact updates its weights in place, step for step like model.train_on_batch,
and gives them back with get_weights."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc_runtime
from graphc.keras.layers import Dense, Input
from graphc.keras.models import Sequential


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_train_step_artifact_matches_train_on_batch(tmp_path, loss):
    np.random.seed(3)
    m = Sequential([Input(shape=(4,)), Dense(5, activation="relu"), Dense(3, activation="softmax")], name="t")
    m.compile(loss=loss, optimizer="adam", run_mode="reference")  # the NumPy oracle, and fast to build
    labels = np.array([1, 2, 0, 1, 2, 0])
    y = labels if loss.startswith("sparse") else np.eye(3)[labels]
    manifest = gc.export(m, str(tmp_path / "t"), train=True)
    assert manifest["kind"] == "train_step" and "get_weight" in manifest["entry_points"]
    assert [i["name"].split("_")[0] for i in manifest["inputs"]] == ["input", "y", "sample"]
    art = graphc_runtime.load(str(tmp_path / "t"))
    x = np.random.rand(6, 4).astype("float32")
    for _ in range(3):
        expected = m.train_on_batch(x, y)
        loss_value = art(x, y.astype("float32"), np.ones(6, "float32"))[0]
        np.testing.assert_allclose(loss_value, expected, rtol=1e-5)
    got = art.get_weights()
    for w in m.get_weights():
        assert any(a.shape == w.shape and np.allclose(a, w, atol=1e-6) for a in got)


def test_inference_artifact_has_no_weight_access(tmp_path):
    m = Sequential([Input(shape=(2,)), Dense(1)], name="inf")
    gc.export(m, str(tmp_path / "i"))
    with pytest.raises(graphc_runtime.ArtifactError, match="not a train-step artifact"):
        graphc_runtime.load(str(tmp_path / "i")).get_weights()


def test_c_finetune_example(tmp_path):
    """examples/c/finetune.c runs training steps through the C API; its losses match the
    Python runtime's on the same artifact, and they go down."""
    import os
    import shutil
    import subprocess
    from conftest import ROOT
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    np.random.seed(5)
    m = Sequential([Input(shape=(64,)), Dense(10, activation="softmax")], name="digits_train")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", run_mode="reference")
    art = str(tmp_path / "train")
    gc.export(m, art, train=True, name="digits_train")
    n, steps = 12, 8
    x = np.random.rand(n, 64).astype("float32")
    y = np.random.randint(0, 10, n).astype("float32")
    x.tofile(tmp_path / "x.f32")
    y.tofile(tmp_path / "y.f32")
    exe = str(tmp_path / "finetune")
    subprocess.run([cc, "-O2", "-Wall", "-Werror", f"-I{art}", os.path.join(ROOT, "examples", "c", "finetune.c"),
                    f"-L{art}", "-lgraphc_digits_train", f"-Wl,-rpath,{art}", "-o", exe], check=True)
    proc = subprocess.run([exe, str(tmp_path / "x.f32"), str(tmp_path / "y.f32"), str(n), str(steps)],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    c_losses = [float(line.split()[3]) for line in proc.stdout.splitlines() if line.startswith("step")]
    py = graphc_runtime.load(art)
    py_losses = [float(py(x, y, np.ones(n, "float32"))[0]) for _ in range(steps)]
    np.testing.assert_allclose(c_losses, py_losses, rtol=1e-6)
    assert c_losses[-1] < c_losses[0]
    assert f"first value {py.get_weights()[0].flat[0]:.9g}" in proc.stdout
