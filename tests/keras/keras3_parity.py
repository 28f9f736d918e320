"""Shared set-up of the Keras 3 parity tests: the real ``keras`` (torch backend), or a skip of
the importing test module where it is absent, and ``check_parity``.

Keras is not a dependency of graphc; ``scripts/test.sh`` installs it (with torch, CPU) into the
test environment only.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
# tests/keras/ itself can shadow the name as a namespace package: only a real install counts.
_spec = importlib.util.find_spec("keras") if "keras" not in sys.modules else sys.modules["keras"].__spec__
if _spec is None or not _spec.origin or not _spec.origin.endswith(".py"):
    sys.modules.pop("keras", None)
    pytest.skip("Keras 3 is not installed (pip install torch keras to run the parity tests)", allow_module_level=True)
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover
    pytest.skip("keras parity runs with KERAS_BACKEND=torch", allow_module_level=True)

import graphc.keras as gk  # noqa: E402


def check_parity(build, x, y, steps=2, lr=0.05, loss="mse", pred_tol=1e-5, w_tol=1e-4):
    """``build(lib)`` makes the same model with keras and graphc.keras; copy Keras's weights
    into graphc, compare predictions, train ``steps`` SGD steps on both, compare weights."""
    k, g = build(keras), build(gk)
    assert [w.shape for w in k.get_weights()] == [w.shape for w in g.get_weights()]
    g.set_weights(k.get_weights())
    np.testing.assert_allclose(g.predict(x, verbose=0), np.asarray(k.predict(x, verbose=0)), atol=pred_tol,
                               rtol=pred_tol)
    k.compile(keras.optimizers.SGD(lr), loss)
    g.compile(gk.optimizers.SGD(lr), loss, run_mode="reference")
    for _ in range(steps):
        lk = float(np.asarray(k.train_on_batch(x, y)))
        lg = float(g.train_on_batch(x, y))
        np.testing.assert_allclose(lg, lk, rtol=1e-4, atol=1e-5)
    for wg, wk in zip(g.get_weights(), k.get_weights()):
        np.testing.assert_allclose(wg, wk, atol=w_tol, rtol=w_tol)
    np.testing.assert_allclose(g.predict(x, verbose=0), np.asarray(k.predict(x, verbose=0)), atol=w_tol,
                               rtol=w_tol)


@pytest.fixture
def reference_mode():
    """graphc.keras models in the reference interpreter for the test (the native path is
    checked against the interpreter elsewhere)."""
    from graphc.keras import config
    old = config.run_mode()
    config.set_run_mode("reference")
    yield
    config.set_run_mode(old)
