"""Errors users see (naming the layer and the shapes) and the model file format."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import graphc.keras as keras
from graphc.errors import InputError, ModelFileError, ShapeError
from graphc.keras.layers import Dense, Input, Lambda
from graphc.keras.models import Model, Sequential, load_model


def _mlp():
    m = Sequential([Input(shape=(4,)), Dense(5, activation="relu", name="hidden"), Dense(3, activation="softmax")])
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_wrong_input_width_names_layer_and_shapes():
    m = _mlp()
    with pytest.raises(ShapeError) as e:
        m.fit(np.zeros((8, 7), "float32"), np.zeros((8, 3), "float32"), verbose=0)
    msg = str(e.value)
    assert "(None, 4)" in msg and "(8, 7)" in msg and "hidden" in msg and "test_errors_and_saving.py" in msg
    d = Dense(2, name="second")
    x = Input(shape=(6,))
    d(Dense(3)(x))
    with pytest.raises(ShapeError, match=r"'second'.*\(None, 3\).*\(None, 6\)"):
        d(x)


def test_labels_that_do_not_fit_the_loss():
    m = _mlp()
    with pytest.raises(ShapeError, match=r"categorical_crossentropy.*\(8,\).*sparse_categorical_crossentropy"):
        m.fit(np.zeros((8, 4), "float32"), np.zeros((8,), "int64"), verbose=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match="one-hot labels use loss='categorical_crossentropy'"):
        m.fit(np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32"), verbose=0)
    m.compile("adam", "mse")
    with pytest.raises(ShapeError, match=r"\(8, 5\)"):
        m.fit(np.zeros((8, 4), "float32"), np.zeros((8, 5), "float32"), verbose=0)


def test_unknown_names_list_the_valid_ones():
    m = Sequential([Input(shape=(2,)), Dense(1)])
    with pytest.raises(InputError, match="unknown optimizer 'adamx'.*adam, adamw"):
        m.compile("adamx", "mse")
    with pytest.raises(InputError, match="unknown loss 'msee'.*mean_squared_error"):
        m.compile("adam", "msee")
    m.compile("adam", "mse", metrics=["acuracy"])
    with pytest.raises(InputError, match="unknown metric 'acuracy'.*accuracy"):
        m.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)
    with pytest.raises(InputError, match="unknown activation 'rellu'"):
        Dense(2, activation="rellu")


def test_fit_before_compile():
    m = Sequential([Input(shape=(2,)), Dense(1)])
    with pytest.raises(InputError, match="compile"):
        m.fit(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(InputError, match="compile"):
        m.evaluate(np.zeros((4, 2)), np.zeros((4, 1)))
    assert m.predict(np.zeros((4, 2)), verbose=0).shape == (4, 1)  # predict needs no compile


def test_multi_input_errors():
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    m = Model([a, b], keras.layers.concatenate([a, b]))
    with pytest.raises(InputError, match="2 inputs"):
        m.predict(np.zeros((2, 2)), verbose=0)
    with pytest.raises(InputError, match=r"missing \['b'\]"):
        m.predict({"a": np.zeros((2, 2))}, verbose=0)
    with pytest.raises(ShapeError, match="Concatenate"):
        keras.layers.concatenate([Input(shape=(2, 3)), Input(shape=(4, 3))])
    with pytest.raises(InputError, match="graph disconnected"):
        Model(a, keras.layers.concatenate([a, b]))


def test_save_load_roundtrip_resumes_training(tmp_path):
    x = np.random.rand(32, 4).astype("float32")
    y = np.eye(3, dtype="float32")[np.random.randint(0, 3, 32)]
    m = _mlp()
    m.fit(x, y, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    m.save(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        meta = json.loads(z.read("metadata.json"))
        cfg = json.loads(z.read("config.json"))
    assert {"metadata.json", "config.json", "weights/index.json", "weights/00000.npy", "optimizer/index.json"} <= names
    assert meta["format"] == "graphc.keras" and meta["format_version"] == 1 and "graphc_version" in meta
    assert cfg["class_name"] == "Sequential" and cfg["compile_config"]["loss"] == "categorical_crossentropy"
    m2 = load_model(path)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    assert int(m2.optimizer.iterations.get_value()) == int(m.optimizer.iterations.get_value())
    m.fit(x, y, epochs=1, verbose=0, shuffle=False)
    m2.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    uncompiled = load_model(path, compile=False)
    assert not uncompiled.compiled


def test_weights_files_and_json(tmp_path):
    m = _mlp()
    wpath = os.path.join(tmp_path, "m.weights.npz")
    m.save_weights(wpath)
    other = keras.models.model_from_json(m.to_json())
    other.load_weights(wpath)
    for a, b in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with np.load(wpath, allow_pickle=False) as data:
        assert sorted(data.files) == [f"w{i:05d}" for i in range(4)]
    wrong = Sequential([Input(shape=(4,)), Dense(2)])
    with pytest.raises(ModelFileError, match="2 weights|has 4 weight arrays"):
        wrong.load_weights(wpath)


def test_corrupt_and_truncated_files(tmp_path):
    m = _mlp()
    path = os.path.join(tmp_path, "m.keras")
    m.save(path)
    data = open(path, "rb").read()
    for name, content in [("trunc.keras", data[: len(data) // 2]), ("junk.keras", b"not a zip at all"),
                          ("empty.keras", b"")]:
        p = os.path.join(tmp_path, name)
        open(p, "wb").write(content)
        with pytest.raises(ModelFileError, match="truncated or corrupt|corrupt"):
            load_model(p)
    # a zip that is not a graphc model
    p = os.path.join(tmp_path, "other.zip")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="metadata.json"):
        load_model(p)
    # flipped bytes inside a weight entry are caught by the zip checksum
    bad = bytearray(data)
    i = bad.find(b"NUMPY")
    bad[i + 200: i + 210] = b"\xff" * 10
    p = os.path.join(tmp_path, "flipped.keras")
    open(p, "wb").write(bytes(bad))
    with pytest.raises(ModelFileError):
        load_model(p)


def test_atomic_save_keeps_the_old_file(tmp_path, monkeypatch):
    m = _mlp()
    path = os.path.join(tmp_path, "m.keras")
    m.save(path)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.keras"]  # no temporary file left behind
    load_model(path)


def test_lambda_needs_custom_objects(tmp_path):
    def triple(t):
        return t * 3.0
    x = Input(shape=(2,))
    m = Model(x, Lambda(triple, name="tripler")(x))
    path = os.path.join(tmp_path, "lam.keras")
    m.save(path)
    with pytest.raises(ModelFileError, match=r"custom_objects=\{'triple'"):
        load_model(path)
    loaded = load_model(path, custom_objects={"triple": triple})
    np.testing.assert_allclose(loaded.predict(np.ones((1, 2)), verbose=0), [[3.0, 3.0]])
    lam = Model(x, Lambda(lambda t: t + 1.0, name="plus_one")(x))
    lam.save(path)
    with pytest.raises(ModelFileError, match="plus_one"):
        load_model(path)
    loaded = load_model(path, custom_objects={"plus_one": lambda t: t + 1.0})
    np.testing.assert_allclose(loaded.predict(np.ones((1, 2)), verbose=0), [[2.0, 2.0]])


def test_custom_class_needs_registration(tmp_path):
    class Twice(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    x = Input(shape=(2,))
    m = Model(x, Twice()(x))
    path = os.path.join(tmp_path, "c.keras")
    m.save(path)
    with pytest.raises(InputError, match="custom_objects"):
        load_model(path)
    np.testing.assert_allclose(load_model(path, custom_objects={"Twice": Twice}).predict(np.ones((1, 2)), verbose=0),
                               [[2.0, 2.0]])
