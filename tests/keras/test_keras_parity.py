"""Parity with Keras 3 itself (torch backend): same weights give the same predictions, and the
same weights after several SGD and Adam steps, for an MLP and a two-input functional model.

Keras is not a dependency of graphc: this test skips where it is absent. Install it in the
test environment (``pip install torch keras``) to run it.
"""
from __future__ import annotations

import numpy as np
import pytest

from keras3_parity import gk, keras  # skips the module without Keras


def _mlp(lib, names=True):
    L = lib.layers
    return lib.Sequential([L.Input(shape=(6,)), L.Dense(16, activation="relu", name="h1"),
                           L.Dense(8, activation="tanh", name="h2"), L.Dense(3, activation="softmax", name="out")])


def _two_input(lib):
    L = lib.layers
    a = L.Input(shape=(5,), name="a")
    b = L.Input(shape=(3,), name="b")
    ha = L.Dense(8, activation="tanh", name="da")(a)
    hb = L.Dense(4, activation="relu", name="db")(b)
    x = L.concatenate([ha, hb], name="cat")
    x = L.Dense(6, activation="sigmoid", name="mix")(x)
    out = L.Dense(1, name="out")(x)
    return lib.Model([a, b], out)


def _data(rng, two: bool):
    if two:
        x = [rng.normal(size=(24, 5)).astype("float32"), rng.normal(size=(24, 3)).astype("float32")]
        y = rng.normal(size=(24, 1)).astype("float32")
    else:
        x = rng.normal(size=(24, 6)).astype("float32")
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, 24)]
    return x, y


def _batches(x, y, n):
    for i in range(0, 24, 8)[:n]:
        yield ([a[i:i + 8] for a in x] if isinstance(x, list) else x[i:i + 8]), y[i:i + 8]


@pytest.mark.parametrize("two", [False, True], ids=["mlp", "two_input"])
def test_same_predictions(two):
    rng = np.random.default_rng(0)
    g = _two_input(gk) if two else _mlp(gk)
    k = _two_input(keras) if two else _mlp(keras)
    assert [l.name for l in g.layers] == [l.name for l in k.layers]
    k.set_weights(g.get_weights())
    assert [w.shape for w in k.get_weights()] == [w.shape for w in g.get_weights()]
    x, _ = _data(rng, two)
    np.testing.assert_allclose(g.predict(x, verbose=0), k.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("two", [False, True], ids=["mlp", "two_input"])
@pytest.mark.parametrize("opt", ["sgd", "sgd_nesterov", "adam", "adam_amsgrad", "rmsprop", "nadam", "adamw"])
def test_same_weights_after_training(two, opt):
    rng = np.random.default_rng(1)
    g = _two_input(gk) if two else _mlp(gk)
    k = _two_input(keras) if two else _mlp(keras)
    k.set_weights(g.get_weights())

    def make(lib):
        o = lib.optimizers
        return {"sgd": lambda: o.SGD(learning_rate=0.1, momentum=0.9),
                "sgd_nesterov": lambda: o.SGD(learning_rate=0.05, momentum=0.8, nesterov=True),
                "adam": lambda: o.Adam(learning_rate=0.01),
                "adam_amsgrad": lambda: o.Adam(learning_rate=0.01, amsgrad=True),
                "rmsprop": lambda: o.RMSprop(learning_rate=0.01),
                "nadam": lambda: o.Nadam(learning_rate=0.01),
                "adamw": lambda: o.AdamW(learning_rate=0.01, weight_decay=0.1)}[opt]()

    loss = "mse" if two else "categorical_crossentropy"
    g.compile(optimizer=make(gk), loss=loss)
    k.compile(optimizer=make(keras), loss=loss)
    x, y = _data(rng, two)
    for _ in range(2):
        for bx, by in _batches(x, y, 3):
            lg = g.train_on_batch(bx, by)
            lk = k.train_on_batch(bx, by)
    np.testing.assert_allclose(lg, float(np.asarray(lk)), rtol=1e-4, atol=1e-5)
    for wg, wk in zip(g.get_weights(), k.get_weights()):
        np.testing.assert_allclose(wg, wk, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(g.predict(x, verbose=0), k.predict(x, verbose=0), atol=1e-4, rtol=1e-4)


def test_fit_matches_keras_without_shuffle():
    rng = np.random.default_rng(2)
    g, k = _mlp(gk), _mlp(keras)
    k.set_weights(g.get_weights())
    x, y = _data(rng, False)
    g.compile(gk.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    k.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    hg = g.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0).history
    hk = k.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(hg["loss"], hk["loss"], rtol=1e-4)
    np.testing.assert_allclose(hg["accuracy"], hk["accuracy"], rtol=1e-6)
    for wg, wk in zip(g.get_weights(), k.get_weights()):
        np.testing.assert_allclose(wg, wk, atol=1e-4, rtol=1e-4)
    eg = g.evaluate(x, y, verbose=0)
    ek = k.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(eg, ek, rtol=1e-4)
