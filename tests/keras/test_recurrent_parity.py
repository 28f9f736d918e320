"""Parity with Keras 3 (torch backend) for Embedding, SimpleRNN, LSTM and GRU with and without
return_sequences, go_backwards, Bidirectional and TimeDistributed: the same weights give the
same predictions (1e-5) and the same weights after SGD steps (1e-4).

Keras is not a dependency of graphc: this test skips where it is absent
(``pip install torch keras`` to run it). Models run through the reference interpreter here to
keep the test fast; the native path is checked against the interpreter elsewhere.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
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


@pytest.fixture(autouse=True)
def reference_mode():
    from graphc.keras import config
    old = config.run_mode()
    config.set_run_mode("reference")
    yield
    config.set_run_mode(old)



def _seq(lib, layer, shape=(5, 3), flatten=False):
    L = lib.layers
    out = [L.Input(shape), layer] + ([L.Flatten()] if flatten else []) + [L.Dense(2)]
    return lib.Sequential(out)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU", "GRU_v1"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent(cls, return_sequences, go_backwards):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")

    def layer(lib):
        kw = {"return_sequences": return_sequences, "go_backwards": go_backwards}
        if cls == "GRU_v1":
            return lib.layers.GRU(4, reset_after=False, **kw)
        return getattr(lib.layers, cls)(4, **kw)
    check_parity(lambda lib: _seq(lib, layer(lib), flatten=return_sequences), x, y)


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(merge_mode, return_sequences):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    check_parity(lambda lib: _seq(lib, lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=return_sequences),
                                                                merge_mode=merge_mode), flatten=return_sequences),
                 x, y)


def test_embedding_lstm_and_time_distributed():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 10, size=(6, 5))
    y = rng.normal(size=(6, 2)).astype("float32")

    def build(lib):
        L = lib.layers
        return lib.Sequential([L.Input((5,), dtype="int32"), L.Embedding(10, 4), L.TimeDistributed(L.Dense(3)),
                               L.GRU(3), L.Dense(2)])
    check_parity(build, x, y)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_mask_zero(cls):
    """Padded (zero) steps are skipped, as in Keras."""
    rng = np.random.default_rng(3)
    x = rng.integers(1, 10, size=(6, 5))
    x[0, 3:] = 0
    x[1, 1:] = 0
    x[2, 4:] = 0
    y = rng.normal(size=(6, 2)).astype("float32")

    def build(lib):
        L = lib.layers
        return lib.Sequential([L.Input((5,), dtype="int32"), L.Embedding(10, 4, mask_zero=True),
                               getattr(L, cls)(3), L.Dense(2)])
    check_parity(build, x, y)
