"""Callbacks driven by a fake model and simulated epochs (no training code involved)."""
import csv
import io
import math
import re

import numpy as np
import pytest

from graphc.errors import InputError
from graphc.keras import callbacks as cbks
from graphc.keras.callbacks import _get_lr, _set_lr
from graphc.keras.utils import Progbar


class Optimizer:
    def __init__(self, lr=0.1):
        self.learning_rate = lr


class VarLR:
    """A learning rate held in a variable (get_value/set_value), like a shared variable."""

    def __init__(self, v):
        self.v = np.array(v, dtype="float32")

    def get_value(self):
        return self.v.copy()

    def set_value(self, v):
        self.v[...] = v


class FakeModel:
    def __init__(self, lr=0.1):
        self.weights = [np.zeros((2, 2)), np.zeros(2)]
        self.optimizer = Optimizer(lr)
        self.stop_training = False
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [np.array(w) for w in ws]

    def save(self, path):
        self.saved.append(("model", path))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", path))
        with open(path, "w") as f:
            f.write("weights")


def simulate(model, callbacks, epoch_logs, steps=3, verbose=0, batch_logs=None):
    """Drive callbacks like fit: returns the History. ``epoch_logs[e]`` are epoch e's logs;
    weights are set to the epoch number at each epoch end to track restores."""
    cl = cbks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                           verbose=verbose, epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    cl.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cl.on_epoch_begin(epoch)
        for b in range(steps):
            cl.on_train_batch_begin(b)
            blogs = (batch_logs(epoch, b) if batch_logs else {"loss": logs.get("loss", 0.0)})
            cl.on_train_batch_end(b, blogs)
            if model.stop_training:
                break
        model.weights = [np.full_like(w, epoch) for w in model.weights]
        logs = dict(logs)
        cl.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cl.on_train_end()
    return model.history


def test_callback_protocol_and_order():
    seen = []

    class Recorder(cbks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_") and name != "on_batch_begin" and name != "on_batch_end":
                def hook(*args, **kw):
                    seen.append(name)
                    return object.__getattribute__(self, name)(*args, **kw)
                return hook
            return object.__getattribute__(self, name)

    model = FakeModel()
    rec = Recorder()
    hist = simulate(model, [rec], [{"loss": 1.0}], steps=2)
    assert seen == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
                    "on_train_batch_begin", "on_train_batch_end", "on_epoch_end", "on_train_end"]
    assert rec.model is model and rec.params == {"verbose": 0, "epochs": 1, "steps": 2}
    assert hist is model.history and hist.history == {"loss": [1.0]} and hist.epoch == [0]


def test_legacy_batch_hooks_and_other_hooks():
    calls = []

    class Legacy(cbks.Callback):
        def on_batch_begin(self, batch, logs=None): calls.append(("begin", batch))
        def on_batch_end(self, batch, logs=None): calls.append(("end", batch, logs["loss"]))

    cl = cbks.CallbackList([Legacy()])
    cl.on_train_batch_begin(0)
    cl.on_train_batch_end(0, {"loss": 2.0})
    cl.on_batch_end(1, {"loss": 3.0})
    assert calls == [("begin", 0), ("end", 0, 2.0), ("end", 1, 3.0)]
    # every hook exists and accepts logs=None
    cb = cbks.Callback()
    cl = cbks.CallbackList([cbks.Callback()])
    for hook in cbks._HOOKS:
        fn = getattr(cl, hook)
        fn(0) if "batch" in hook or "epoch" in hook else fn()
        getattr(cb, hook)(*([0] if "batch" in hook or "epoch" in hook else []))


def test_callback_list_defaults():
    h = cbks.History()
    p = cbks.ProgbarLogger()
    cl = cbks.CallbackList([h, p], add_history=True, add_progbar=True)
    assert cl.callbacks == [h, p]
    cl = cbks.CallbackList(None, add_history=True, add_progbar=True, verbose=1, epochs=2, steps=5)
    assert [type(c).__name__ for c in cl.callbacks] == ["History", "ProgbarLogger"]
    assert cl.callbacks[1].epochs == 2 and cl.callbacks[1].target == 5
    assert len(cbks.CallbackList([])) == 0
    with pytest.raises(InputError, match="Callback"):
        cbks.CallbackList([object()])


def test_history_accumulates_over_fits():
    model = FakeModel()
    h = cbks.History()
    simulate(model, [h], [{"loss": 3.0, "val_loss": 4.0}, {"loss": 2.0, "val_loss": 3.0}])
    assert h.history == {"loss": [3.0, 2.0], "val_loss": [4.0, 3.0]} and h.epoch == [0, 1]


def test_progbar_verbose1(capsys):
    model = FakeModel()
    simulate(model, [], [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25, "accuracy": 0.875}], steps=4, verbose=1,
             batch_logs=lambda e, b: {"loss": 1.0 / (b + 1), "accuracy": 0.5})
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    lines = out.split("\n")
    finals = [l.rsplit("\r", 1)[-1] for l in lines if "ms/step" in l or "s/step" in l]
    assert len(finals) == 2
    assert re.match(r"4/4 \[=+\] - \d+s \d+(us|ms|s)/step - loss: 0\.5000 - accuracy: 0\.7500", finals[0]), finals[0]
    assert "loss: 0.2500 - accuracy: 0.8750" in finals[1]
    assert "\r" in out  # the bar is redrawn in place


def test_progbar_verbose2(capsys):
    simulate(FakeModel(), [], [{"loss": 0.5}], steps=3, verbose=2)
    out = capsys.readouterr().out
    assert "\r" not in out
    assert re.fullmatch(r"3/3 - \d+s - \d+(us|ms|s)/step - loss: 0\.5000\n", out), out


def test_progbar_utility():
    buf = io.StringIO()
    bar = Progbar(10, verbose=1, interval=0, file=buf)
    bar.update(5, [("loss", 2.0)])
    assert "5/10 [" in buf.getvalue() and "ETA" in buf.getvalue() and ">" in buf.getvalue()
    bar.update(10, [("loss", 4.0)])
    assert buf.getvalue().endswith("\n")
    assert "loss: 3.0000" in buf.getvalue().rsplit("\r", 1)[-1]  # averaged over steps (5 x 2, 5 x 4)
    buf = io.StringIO()
    bar = Progbar(None, verbose=1, interval=0, file=buf, stateful_metrics=["acc"])
    bar.update(3, [("acc", 0.5), ("loss", 1e-5)])
    assert "3/Unknown" in buf.getvalue() and "acc: 0.5000" in buf.getvalue() and "loss: 1.0000e-05" in buf.getvalue()
    buf = io.StringIO()
    Progbar(2, verbose=0, file=buf).update(2)
    assert buf.getvalue() == ""


def test_model_checkpoint_formats_and_saves_every_epoch(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "ckpt" / "w-{epoch:02d}-{val_loss:.2f}.gcz")
    simulate(model, [cbks.ModelCheckpoint(path, save_weights_only=True)], [{"loss": 1, "val_loss": 0.5},
                                                                        {"loss": 1, "val_loss": 0.25}])
    assert model.saved == [("weights", str(tmp_path / "ckpt" / "w-01-0.50.gcz")),
                           ("weights", str(tmp_path / "ckpt" / "w-02-0.25.gcz"))]
    assert (tmp_path / "ckpt" / "w-02-0.25.gcz").read_text() == "weights"


def test_model_checkpoint_best_only(tmp_path, capsys):
    model = FakeModel()
    cb = cbks.ModelCheckpoint(str(tmp_path / "best.gcz"), monitor="val_loss", save_best_only=True, verbose=1)
    simulate(model, [cb], [{"val_loss": v} for v in (0.5, 0.7, 0.3, 0.3)])
    assert model.saved == [("model", str(tmp_path / "best.gcz"))] * 2
    assert cb.best == 0.3
    out = capsys.readouterr().out
    assert "val_loss improved from inf to 0.50000" in out and "did not improve from 0.50000" in out
    # accuracy is maximised in auto mode; mode="min" overrides
    model = FakeModel()
    simulate(model, [cbks.ModelCheckpoint(str(tmp_path / "a.gcz"), monitor="val_accuracy", save_best_only=True)],
             [{"val_accuracy": v} for v in (0.5, 0.4, 0.6)])
    assert len(model.saved) == 2
    model = FakeModel()
    simulate(model, [cbks.ModelCheckpoint(str(tmp_path / "a.gcz"), monitor="val_accuracy", save_best_only=True,
                                          mode="min")], [{"val_accuracy": v} for v in (0.5, 0.4, 0.6)])
    assert len(model.saved) == 2
    model = FakeModel()
    with pytest.warns(UserWarning, match="only with val_loss available"):
        simulate(model, [cbks.ModelCheckpoint(str(tmp_path / "x.gcz"), save_best_only=True)], [{"loss": 1.0}])
    assert model.saved == []
    model = FakeModel()
    simulate(model, [cbks.ModelCheckpoint(str(tmp_path / "t.gcz"), save_best_only=True,
                                          initial_value_threshold=0.4)], [{"val_loss": v} for v in (0.5, 0.3)])
    assert len(model.saved) == 1


def test_model_checkpoint_errors_and_batch_freq(tmp_path):
    with pytest.raises(KeyError, match="failed to format the file path.*val_acc"):
        simulate(FakeModel(), [cbks.ModelCheckpoint(str(tmp_path / "{val_acc}.gcz"))], [{"loss": 1.0}])
    with pytest.raises(InputError, match="save_freq"):
        cbks.ModelCheckpoint("x", save_freq="batch")
    model = FakeModel()
    simulate(model, [cbks.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.gcz"), save_freq=2)],
             [{"loss": 1.0}] * 2, steps=3)
    # 6 batches in all, saved every 2 batches (counting across epochs)
    assert [p.rsplit("/", 1)[-1] for _, p in model.saved] == ["e1b2.gcz", "e2b1.gcz", "e2b3.gcz"]


def test_early_stopping_patience_and_restore():
    model = FakeModel()
    es = cbks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    hist = simulate(model, [es], [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.7, 0.4, 0.3)])
    assert hist.epoch == [0, 1, 2, 3]  # stopped after 2 epochs without improvement
    assert es.stopped_epoch == 3 and es.best == 0.5 and es.best_epoch == 1
    assert all((w == 1).all() for w in model.weights)  # weights of epoch 1 restored


def test_early_stopping_min_delta_mode_baseline_start():
    model = FakeModel()
    es = cbks.EarlyStopping(monitor="accuracy", min_delta=0.1, patience=1)
    hist = simulate(model, [es], [{"accuracy": v} for v in (0.5, 0.55, 0.9, 0.95)])
    assert hist.epoch == [0, 1]  # +0.05 is not an improvement of more than 0.1
    # Keras's rule: epochs that do not beat the baseline keep counting towards patience
    losses = [{"loss": v} for v in (0.9, 0.85, 0.95, 0.99, 0.99)]
    hist = simulate(FakeModel(), [cbks.EarlyStopping(monitor="loss", patience=2, baseline=0.2)], losses)
    assert hist.epoch == [0, 1, 2]
    hist = simulate(FakeModel(), [cbks.EarlyStopping(monitor="loss", patience=2)], losses)
    assert hist.epoch == [0, 1, 2, 3]
    es = cbks.EarlyStopping(monitor="loss", patience=0, start_from_epoch=2)
    hist = simulate(FakeModel(), [es], [{"loss": v} for v in (0.5, 0.9, 0.9, 0.95, 0.1)])
    assert hist.epoch == [0, 1, 2, 3]
    es = cbks.EarlyStopping(monitor="val_loss", mode="max", patience=0)
    hist = simulate(FakeModel(), [es], [{"val_loss": v} for v in (0.5, 0.4)])
    assert hist.epoch == [0, 1] and es.stopped_epoch == 1
    with pytest.warns(UserWarning, match="not available"):
        simulate(FakeModel(), [cbks.EarlyStopping()], [{"loss": 1.0}])


def test_reduce_lr_on_plateau(capsys):
    model = FakeModel(lr=0.1)
    cb = cbks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.02, cooldown=1, verbose=1)
    lrs = []
    simulate(model, [cb, cbks.LambdaCallback(on_epoch_end=lambda e, logs: lrs.append(logs["learning_rate"]))],
             [{"val_loss": v} for v in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)])
    # epoch 2: wait 2 -> 0.05; cooldown epoch 3; epochs 4, 5 -> 0.025; cooldown 6; 7, 8 -> 0.02 (min_lr)
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    assert lrs[2] == pytest.approx(0.1) and lrs[3] == pytest.approx(0.05)  # logged before the cut, as in Keras
    assert "reducing learning rate to 0.05" in capsys.readouterr().out
    with pytest.raises(InputError, match="factor >= 1.0"):
        cbks.ReduceLROnPlateau(factor=1.5)
    cb = cbks.ReduceLROnPlateau(monitor="val_accuracy", patience=1, epsilon=0.0)  # Keras 2 name of min_delta
    model = FakeModel(lr=1.0)
    simulate(model, [cb], [{"val_accuracy": v} for v in (0.5, 0.6, 0.6)])
    assert model.optimizer.learning_rate == pytest.approx(0.1)


def test_learning_rate_scheduler_and_lr_helpers():
    model = FakeModel(lr=1.0)
    seen = []
    sched = cbks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr, verbose=0)
    hist = simulate(model, [sched, cbks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))],
                    [{"loss": 1.0}] * 3)
    assert seen == [1.0, 0.5, 0.25] and hist.history["learning_rate"] == [1.0, 0.5, 0.25]
    model = FakeModel(lr=1.0)
    simulate(model, [cbks.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))], [{"loss": 1.0}] * 2)
    assert model.optimizer.learning_rate == pytest.approx(0.2)
    with pytest.raises(InputError, match="should be a float"):
        simulate(FakeModel(), [cbks.LearningRateScheduler(lambda e, lr: "fast")], [{"loss": 1.0}])
    # a learning rate in a variable is updated in place
    opt = Optimizer(VarLR(0.5))
    var = opt.learning_rate
    assert _get_lr(opt) == 0.5
    _set_lr(opt, 0.125)
    assert opt.learning_rate is var and var.v == np.float32(0.125)

    class OldOpt:
        lr = 0.3
    _set_lr(OldOpt, 0.2)
    assert _get_lr(OldOpt) == pytest.approx(0.2)
    with pytest.raises(InputError, match="learning_rate"):
        _get_lr(object())


def test_lr_helpers_with_graphc_shared_and_optimizer():
    import graphc as gc
    opt = Optimizer(gc.shared(np.float32(0.5)))
    _set_lr(opt, 0.25)
    assert _get_lr(opt) == 0.25 and opt.learning_rate.get_value() == np.float32(0.25)
    try:
        from graphc.keras.optimizers import SGD
    except ImportError:
        pytest.skip("graphc.keras.optimizers is not available")
    sgd = SGD(learning_rate=0.1)
    _set_lr(sgd, 0.05)
    assert _get_lr(sgd) == pytest.approx(0.05)


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    simulate(FakeModel(), [cbks.CSVLogger(str(path))], [{"loss": 0.5, "acc": 0.25, "val_loss": 0.75}] * 2)
    rows = list(csv.reader(path.open()))
    assert rows == [["epoch", "acc", "loss", "val_loss"], ["0", "0.25", "0.5", "0.75"], ["1", "0.25", "0.5", "0.75"]]
    # append continues without a second header; a custom separator
    simulate(FakeModel(), [cbks.CSVLogger(str(path), append=True)], [{"loss": 0.5, "acc": 0.25, "val_loss": 0.75}])
    assert len(list(csv.reader(path.open()))) == 4
    p2 = tmp_path / "semi.csv"
    simulate(FakeModel(), [cbks.CSVLogger(str(p2), separator=";")], [{"loss": 0.5, "extra": [1, 2]}])
    text = p2.read_text().splitlines()
    assert text[0] == "epoch;extra;loss;val_extra;val_loss"  # Keras adds val_ columns when none are logged
    assert text[1].startswith("0;") and text[1].endswith(";0.5;NA;NA") and "[1, 2]" in text[1]


def test_terminate_on_nan(capsys):
    model = FakeModel()
    losses = {(0, 0): 1.0, (0, 1): 0.5, (0, 2): 0.4, (1, 0): float("nan")}
    hist = simulate(model, [cbks.TerminateOnNaN()], [{"loss": 1.0}] * 5, steps=3,
                    batch_logs=lambda e, b: {"loss": losses.get((e, b), 0.1)})
    assert model.stop_training and hist.epoch == [0, 1]
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    model = FakeModel()
    simulate(model, [cbks.TerminateOnNaN()], [{"loss": 1.0}], batch_logs=lambda e, b: {"loss": math.inf})
    assert model.stop_training


def test_lambda_callback():
    events = []
    cb = cbks.LambdaCallback(on_train_begin=lambda logs: events.append("begin"),
                             on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, logs["loss"])),
                             on_batch_end=lambda batch, logs: events.append(("batch", batch)),
                             on_train_end=lambda logs: events.append("end"))
    simulate(FakeModel(), [cb], [{"loss": 0.5}], steps=2)
    assert events == ["begin", ("batch", 0), ("batch", 1), ("epoch", 0, 0.5), "end"]
    with pytest.raises(TypeError, match="unknown hooks"):
        cbks.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="callable"):
        cbks.LambdaCallback(on_epoch_end=3)

