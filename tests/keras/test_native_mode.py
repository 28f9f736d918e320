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
