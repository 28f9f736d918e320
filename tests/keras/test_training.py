"""Seed-style programs and the training loop: fit/evaluate/predict, callbacks, data kinds,
weights, frozen layers, regularizers and constraints, and compile-once behaviour."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc.keras as keras
from graphc.errors import InputError
from graphc.keras import backend as K  # noqa: F401  (the seed programs import it)
from graphc.keras.callbacks import Callback, EarlyStopping, ModelCheckpoint, TerminateOnNaN
from graphc.keras.layers import Activation, Dense, Dropout, Input, concatenate
from graphc.keras.models import Model, Sequential, load_model


def _blobs(n=300, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    labels = rng.integers(0, k, n)
    x = (centers[labels] + rng.normal(size=(n, d))).astype("float32")
    return x, labels, np.eye(k, dtype="float32")[labels]


def test_seed_mlp_program(tmp_path):
    np.random.seed(0)  # weights and shuffling draw from NumPy's global state, as in Keras
    x, _, y = _blobs()
    model = Sequential()
    model.add(Dense(32, input_dim=8))
    model.add(Activation("relu"))
    model.add(Dropout(0.1))
    model.add(Dense(3))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    ckpt = os.path.join(tmp_path, "best.keras")
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0, validation_split=0.2,
                        callbacks=[ModelCheckpoint(ckpt, monitor="val_loss", save_best_only=True)])
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 8 and model.history is history
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9
    probs = model.predict(x[:7], verbose=0)
    assert probs.shape == (7, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    best = load_model(ckpt)
    assert best.evaluate(x, y, verbose=0)[1] > 0.8
    # the training step of this model and input signature was compiled once, plus test and predict
    assert model.compiled_functions == 3


def test_seed_two_input_functional():
    rng = np.random.default_rng(1)
    a_data = rng.normal(size=(200, 5)).astype("float32")
    b_data = rng.normal(size=(200, 3)).astype("float32")
    target = ((a_data[:, 0] + b_data[:, 0]) > 0).astype("float32")
    a = Input(shape=(5,), name="a")
    b = Input(shape=(3,), name="b")
    x = concatenate([Dense(16, activation="relu")(a), Dense(16, activation="relu")(b)])
    out = Dense(1, activation="sigmoid", name="out")(x)
    model = Model(inputs=[a, b], outputs=out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit([a_data, b_data], target, epochs=10, batch_size=20, verbose=0)
    _, acc = model.evaluate({"a": a_data, "b": b_data}, target, verbose=0)
    assert acc > 0.9
    assert model.predict([a_data[:3], b_data[:3]], verbose=0).shape == (3, 1)


def test_multi_output_losses_and_metrics():
    x, labels, y = _blobs(120)
    inp = Input(shape=(8,))
    h = Dense(16, activation="relu")(inp)
    cls = Dense(3, activation="softmax", name="cls")(h)
    reg = Dense(1, name="reg")(h)
    m = Model(inp, [cls, reg])
    m.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
              loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    h = m.fit(x, {"cls": labels, "reg": x[:, :1]}, epochs=2, verbose=0)
    assert {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"} <= set(h.history)
    np.testing.assert_allclose(h.history["loss"][-1],
                               h.history["cls_loss"][-1] + 0.5 * h.history["reg_loss"][-1], rtol=1e-4)
    preds = m.predict(x, verbose=0)
    assert isinstance(preds, list) and preds[0].shape == (120, 3) and preds[1].shape == (120, 1)


def test_generator_and_partial_batches():
    x, _, y = _blobs(100)

    def gen():
        while True:
            for i in range(0, 100, 30):  # batches of 30, 30, 30, 10
                yield x[i:i + 30], y[i:i + 30]

    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    ev = m.evaluate(((x[i:i + 30], y[i:i + 30]) for i in range(0, 100, 30)), verbose=0, return_dict=True)
    direct = m.evaluate(x, y, batch_size=30, verbose=0, return_dict=True)
    np.testing.assert_allclose(ev["loss"], direct["loss"], rtol=1e-5)
    assert m.predict(x, batch_size=7, verbose=0).shape == (100, 3)
    assert m.compiled_functions == 3  # partial batches reuse the same functions


def test_sample_and_class_weights_match_keras_definition():
    x, labels, y = _blobs(40)
    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy")
    p = m.predict(x, verbose=0)
    per = -np.sum(y * np.log(np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)), axis=-1)
    sw = np.linspace(0.1, 2.0, 40).astype("float32")
    got = m.evaluate(x, y, sample_weight=sw, batch_size=40, verbose=0)
    np.testing.assert_allclose(got, np.sum(per * sw) / 40, rtol=1e-5)
    cw = {0: 1.0, 1: 2.0, 2: 0.5}
    before = m.get_weights()
    m.fit(x, y, class_weight=cw, batch_size=40, epochs=1, verbose=0, shuffle=False)
    after_cw = m.get_weights()
    m.set_weights(before)
    m.optimizer.iterations.set_value(np.int64(0))
    m.fit(x, y, sample_weight=np.array([cw[c] for c in labels], "float32"), batch_size=40, epochs=1, verbose=0,
          shuffle=False)
    for a, b in zip(after_cw, m.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_frozen_layers_and_trainable_weights():
    base = Dense(4, name="base")
    head = Dense(2, name="head")
    m = Sequential([Input(shape=(3,)), base, head])
    base.trainable = False
    assert len(m.trainable_weights) == 2 and len(m.non_trainable_weights) == 2
    m.compile("sgd", "mse")
    frozen = base.get_weights()
    head_before = head.get_weights()
    m.fit(np.random.rand(16, 3), np.random.rand(16, 2), verbose=0)
    for a, b in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(head_before[0], head.get_weights()[0])
    base.trainable = True  # unfreezing takes effect (a new train function for the new weight set)
    m.fit(np.random.rand(16, 3), np.random.rand(16, 2), verbose=0)
    assert not np.allclose(frozen[0], base.get_weights()[0])


def test_weights_order_and_shapes():
    m = Sequential([Input(shape=(5,)), Dense(4), Dense(2, use_bias=False)])
    assert [w.shape for w in m.get_weights()] == [(5, 4), (4,), (4, 2)]
    new = [np.full(w.shape, i, "float32") for i, w in enumerate(m.get_weights())]
    m.set_weights(new)
    np.testing.assert_array_equal(m.layers[0].get_weights()[1], new[1])


def test_regularizer_and_constraints():
    m = Sequential([Input(shape=(4,)), Dense(3, kernel_regularizer=keras.regularizers.l2(0.5),
                                              kernel_constraint=keras.constraints.MaxNorm(0.1),
                                              bias_constraint=keras.constraints.NonNeg())])
    m.compile(keras.optimizers.SGD(0.0), "mse")
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 3), "float32")
    k = m.get_weights()[0]
    p = m.predict(x, verbose=0)
    loss = m.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, np.mean(p ** 2) + 0.5 * np.sum(k ** 2), rtol=1e-5)
    m.compile(keras.optimizers.SGD(0.5), "mse")
    m.fit(x, y + 5.0, epochs=3, verbose=0)
    k, b = m.get_weights()
    assert np.all(np.sqrt((k ** 2).sum(axis=0)) <= 0.1 + 1e-5)
    assert np.all(b >= 0)


def test_learning_rate_is_a_variable_not_a_recompile():
    x, _, y = _blobs(64)
    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile(keras.optimizers.SGD(learning_rate=0.1), "categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    n = m.compiled_functions
    m.optimizer.learning_rate = 0.0
    w = m.get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert m.compiled_functions == n
    for a, b in zip(w, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert keras.optimizers.Adam(lr=0.5).learning_rate == 0.5


def test_schedules_in_the_step():
    sched = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1.0, 0.0])
    m = Sequential([Input(shape=(1,)), Dense(1, kernel_initializer="zeros")])
    m.compile(keras.optimizers.SGD(sched), "mse")
    x, y = np.ones((1, 1), "float32"), np.ones((1, 1), "float32")
    ws = []
    for _ in range(4):
        m.train_on_batch(x, y)
        ws.append(float(m.get_weights()[0][0, 0]))
    assert ws[0] != 0 and ws[1] != ws[0] and ws[2] == ws[1] == ws[3]
    s = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert abs(s(10) - 0.05) < 1e-9
    c = keras.optimizers.schedules.CosineDecay(1.0, 10)
    assert abs(c(5) - 0.5) < 1e-9 and abs(c(20)) < 1e-9
    it = keras.optimizers.schedules.InverseTimeDecay(1.0, 1, 1.0)
    assert abs(it(3) - 0.25) < 1e-9


def test_callbacks_protocol_and_early_stopping():
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin{epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append("batch")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end{epoch}:{sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    x, _, y = _blobs(40)
    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[Recorder()], initial_epoch=0)
    assert events[0] == "train_begin" and events[-1] == "train_end"
    assert events.count("batch") == 4
    assert "epoch_end1:['accuracy', 'loss']" in events
    m.compile(keras.optimizers.SGD(0.0), "categorical_crossentropy")
    h = m.fit(x, y, epochs=20, verbose=0, validation_data=(x, y),
              callbacks=[EarlyStopping(monitor="val_loss", patience=2)])
    assert len(h.history["loss"]) == 3


def test_terminate_on_nan():
    m = Sequential([Input(shape=(2,)), Dense(1)])
    m.compile(keras.optimizers.SGD(1e30), "mse")
    x = np.full((64, 2), 1e10, "float32")
    h = m.fit(x, np.ones((64, 1), "float32"), batch_size=8, epochs=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(h.history["loss"]) == 1


def test_train_test_predict_on_batch():
    x, _, y = _blobs(16)
    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    loss, acc = m.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    d = m.test_on_batch(x, y, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    assert m.predict_on_batch(x).shape == (16, 3)
    assert m.metrics_names == ["loss", "accuracy"]


def test_summary_lists_layers_and_params():
    m = Sequential([Input(shape=(4,)), Dense(3, name="d1"), Dense(2, name="d2")])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "d1 (Dense)" in text and "(None, 3)" in text and "Total params: 23" in text


def test_sympy_activation_compiles_and_trains():
    import sympy
    t = sympy.Symbol("t")
    act = keras.activations.from_sympy(t * sympy.tanh(sympy.log(1 + sympy.exp(t))), name="mish_sym")
    m = Sequential([Input(shape=(3,)), Dense(4, activation=act), Dense(1)])
    m.compile("adam", "mse")
    m.fit(np.random.rand(8, 3), np.random.rand(8, 1), verbose=0)
    assert np.all(np.isfinite(m.predict(np.random.rand(2, 3), verbose=0)))


def test_lr_callbacks_and_settable_learning_rate(tmp_path):
    from graphc.keras.callbacks import CSVLogger, LearningRateScheduler, ReduceLROnPlateau
    x, _, y = _blobs(40)
    m = Sequential([Input(shape=(8,)), Dense(3, activation="softmax")])
    m.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    lr = m.optimizer.learning_rate
    assert float(lr) == pytest.approx(0.1) and lr * 2 == pytest.approx(0.2)
    lr.assign(0.05)
    assert m.optimizer.learning_rate == pytest.approx(0.05)
    log = os.path.join(tmp_path, "log.csv")
    m.fit(x, y, epochs=3, verbose=0,
          callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)), CSVLogger(log)])
    assert m.optimizer.learning_rate == pytest.approx(0.1 / 3, rel=1e-6)
    assert open(log).read().count("\n") == 4
    m.compile(keras.optimizers.SGD(0.0), "categorical_crossentropy")
    m.fit(x, y, epochs=4, verbose=0, validation_data=(x, y),
          callbacks=[ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-9)])
    assert m.optimizer.learning_rate == 0.0
    m.compile(keras.optimizers.SGD(0.2), "categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    n = m.compiled_functions
    m.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
          callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)])
    assert m.optimizer.learning_rate == pytest.approx(0.2 * 0.5 ** 2, rel=1e-5)  # epoch 0 sets the best, 1 and 2 reduce
    assert m.compiled_functions == n + 1  # only the test function was added, for validation


def test_batch_logs_reach_callbacks_that_read_them():
    """fit and evaluate compute a batch's logs only for callbacks that define the batch hook
    (or its legacy name); those get the running loss and metrics, as before."""
    from graphc.keras import callbacks as cbm
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, 40)]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    seen = {"train": [], "legacy": [], "test": []}

    class Train(cbm.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["train"].append(dict(logs))

    class Legacy(cbm.Callback):
        def on_batch_end(self, batch, logs=None):
            seen["legacy"].append(dict(logs))

    class Test(cbm.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen["test"].append(dict(logs))

    assert not cbm.CallbackList([cbm.History()]).reads_logs("on_train_batch_end")
    assert cbm.CallbackList([Legacy()]).reads_logs("on_train_batch_end")
    history = model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[Train(), Legacy()])
    model.evaluate(x, y, batch_size=20, verbose=0, callbacks=[Test()])
    assert len(seen["train"]) == len(seen["legacy"]) == 8 and len(seen["test"]) == 2
    assert all(set(logs) == {"loss", "accuracy"} for logs in seen["train"] + seen["legacy"] + seen["test"])
    assert seen["train"][-1]["loss"] == pytest.approx(history.history["loss"][-1])


def _spe_model(spe, mode="native"):
    np.random.seed(3)
    m = Sequential([Input(shape=(8,)), Dense(16, activation="relu"), Dropout(0.3, seed=2),
                    Dense(3, activation="softmax")])
    m.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"],
              steps_per_execution=spe, run_mode=mode)
    return m


@pytest.mark.parametrize("mode", ["native", "reference"])
def test_steps_per_execution_trains_as_batch_by_batch(mode):
    """steps_per_execution=4 runs groups of 4 batches per native call; shuffling, dropout, the
    short last batch, class weights, validation, evaluate and predict come out as with 1."""
    x, _, y = _blobs(230)  # 7 full batches of 32 and one of 6
    runs = []
    for spe in (1, 4):
        m = _spe_model(spe, mode)
        np.random.seed(5)
        h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5},
                  validation_split=0.1)
        ev = m.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        runs.append((h.history, ev, m.predict(x, batch_size=8, verbose=0), m.get_weights()))
    (h1, ev1, p1, w1), (h4, ev4, p4, w4) = runs
    assert h1.keys() == h4.keys()
    for k in h1:
        np.testing.assert_allclose(h4[k], h1[k], rtol=1e-12, err_msg=k)
    for k in ev1:
        np.testing.assert_allclose(ev4[k], ev1[k], rtol=1e-12, err_msg=k)
    np.testing.assert_array_equal(p4, p1)
    for a, b in zip(w1, w4):
        np.testing.assert_array_equal(a, b)


def test_steps_per_execution_callbacks_and_steps_per_epoch():
    """Batch callbacks run once per group, with the index of its last batch (as Keras);
    steps_per_epoch cuts a group short; a bad value is refused at compile."""
    x, _, y = _blobs(100)
    seen = []

    class Seen(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    m = _spe_model(3)
    m.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[Seen()])  # 10 batches: 3 + 3 + 3 + 1
    assert seen == [("begin", 0), ("end", 2), ("begin", 3), ("end", 5), ("begin", 6), ("end", 8),
                    ("begin", 9), ("end", 9)]
    seen.clear()
    m.fit(x, y, batch_size=10, epochs=1, steps_per_epoch=5, verbose=0, callbacks=[Seen()])
    assert seen == [("begin", 0), ("end", 2), ("begin", 3), ("end", 4)]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="steps_per_execution must be a positive integer"):
            m.compile("sgd", "categorical_crossentropy", steps_per_execution=bad)
