"""The same training run compiled natively and through the reference interpreter agrees
(skipped while the native backend module does not exist yet)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc.keras as keras
from graphc.keras.layers import Dense, Dropout, Input
from graphc.keras.models import Sequential


def _run(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 50)]
    np.random.seed(0)
    m = Sequential([Input(shape=(6,)), Dense(8, activation="relu"), Dropout(0.25, seed=1), Dense(3, activation="softmax")])
    m.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"], run_mode=mode)
    h = m.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return h.history["loss"], m.get_weights(), m.predict(x, verbose=0), m.compiled_functions


def test_native_matches_reference():
    pytest.importorskip("graphc.lower.executable")
    loss_n, w_n, p_n, count = _run("native")
    loss_r, w_r, p_r, _ = _run("reference")
    np.testing.assert_allclose(loss_n, loss_r, rtol=1e-4)
    for a, b in zip(w_n, w_r):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p_n, p_r, rtol=1e-4, atol=1e-6)
    assert count == 2  # one train step function, one predict function


def test_run_mode_switch():
    from graphc.keras import config
    old = config.run_mode()
    try:
        config.set_run_mode("reference")
        assert config.run_mode() == "reference"
        with pytest.raises(Exception, match="run mode"):
            config.set_run_mode("fast")
    finally:
        config.set_run_mode(old)


def test_model_profile_reports_the_compiled_functions():
    """compile(..., profile=True): model.profile() lists each compiled function's kernels, and
    profiling leaves the results as they were."""
    import io
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 40)]
    results = []
    for profile in (False, True):
        m = Sequential([Input(shape=(6,)), Dense(8, activation="relu"), Dense(3, activation="softmax")])
        m.set_weights([np.full(w.shape, 0.1, "float32") for w in m.get_weights()])
        m.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", profile=profile)
        m.fit(x, y, batch_size=20, epochs=2, shuffle=False, verbose=0)
        results.append(m.predict(x, verbose=0))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    out = io.StringIO()
    report = m.profile(file=out)
    assert set(report) == {"train", "predict"}
    assert all(calls == 4 for _, calls, _ in report["train"])  # 2 epochs x 2 batches
    assert any(" matmul " in name for name, _, _ in report["predict"])
    assert out.getvalue().startswith(f"== {m.name}: ")
