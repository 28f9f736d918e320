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
