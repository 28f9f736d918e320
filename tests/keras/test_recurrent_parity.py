"""Parity with Keras 3 (torch backend) for Embedding, SimpleRNN, LSTM and GRU with and without
return_sequences, go_backwards, Bidirectional and TimeDistributed: the same weights give the
same predictions (1e-5) and the same weights after SGD steps (1e-4).

Keras is not a dependency of graphc: this test skips where it is absent
(``pip install torch keras`` to run it). Models run through the reference interpreter here to
keep the test fast; the native path is checked against the interpreter elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

from keras3_parity import check_parity, reference_mode  # noqa: F401  (skips the module without Keras)

pytestmark = pytest.mark.usefixtures("reference_mode")


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
