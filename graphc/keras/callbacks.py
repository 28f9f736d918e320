"""Callbacks: objects ``fit``/``evaluate``/``predict`` call at fixed points, as in Keras.

The protocol is Keras's: a :class:`Callback` gets ``set_model``/``set_params`` and then the
hooks ``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}(epoch, logs)`` and
``on_{train,test,predict}_batch_{begin,end}(batch, logs)`` (``on_batch_*`` are the legacy names
of the train-batch hooks). ``logs`` is a dict of metric name to float; batch logs carry the
running averages of the epoch so far, epoch logs the epoch's results (``val_*`` included).
A callback stops training by setting ``self.model.stop_training = True``.

The callbacks here use only the model's public methods: ``get_weights``/``set_weights``,
``save``/``save_weights``, ``optimizer.learning_rate`` and ``stop_training``; so they can be
tested, and used, with any object that has them.
"""
from __future__ import annotations

import collections.abc
import csv
import math
import os
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from graphc.errors import InputError
from graphc.keras.utils.generic_utils import Progbar

Logs = dict[str, Any]


# ----------------------------------------------------------------------------- learning rate
def _lr_attr(optimizer: Any) -> str:
    if optimizer is None:
        raise InputError("this callback needs a compiled model: model.optimizer is None")
    for name in ("learning_rate", "lr"):
        if hasattr(optimizer, name):
            return name
    raise InputError(f'the optimizer {type(optimizer).__name__} has no "learning_rate" attribute')


def _get_lr(optimizer: Any) -> float:
    """The optimizer's learning rate as a float: a plain number, a shared variable (anything
    with ``get_value``) or an object with ``numpy()``."""
    lr = getattr(optimizer, _lr_attr(optimizer))
    if hasattr(lr, "get_value"):
        lr = lr.get_value()
    elif hasattr(lr, "numpy"):
        lr = lr.numpy()
    return float(np.asarray(lr))


def _set_lr(optimizer: Any, value: float) -> None:
    """Set the optimizer's learning rate, in place when it is a variable (``set_value``),
    else by assigning the attribute."""
    name = _lr_attr(optimizer)
    lr = getattr(optimizer, name)
    if hasattr(lr, "set_value"):
        old = np.asarray(lr.get_value()) if hasattr(lr, "get_value") else np.asarray(value)
        lr.set_value(np.asarray(value, dtype=old.dtype).reshape(old.shape))
    elif hasattr(lr, "assign"):
        lr.assign(value)
    else:
        setattr(optimizer, name, float(value))


def _print(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- base classes
class Callback:
    """Base class of callbacks: every hook does nothing; override the ones you need."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._model: Any = None

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self._model = model

    @property
    def model(self) -> Any:
        return self._model

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Legacy name of :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Legacy name of :meth:`on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_test_begin(self, logs: Logs | None = None) -> None: ...
    def on_test_end(self, logs: Logs | None = None) -> None: ...
    def on_predict_begin(self, logs: Logs | None = None) -> None: ...
    def on_predict_end(self, logs: Logs | None = None) -> None: ...


_HOOKS = ("on_batch_begin", "on_batch_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
          "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
          "on_predict_batch_end", "on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
          "on_predict_begin", "on_predict_end")


class CallbackList(Callback):
    """The callbacks of one ``fit``/``evaluate``/``predict`` call, dispatched in order.

    ``add_history`` appends a :class:`History` and ``add_progbar`` a :class:`ProgbarLogger`
    unless the list has one already (Keras's rule); ``model`` and the remaining keyword
    arguments (``verbose``, ``epochs``, ``steps``, ...) are passed to every callback with
    ``set_model`` and ``set_params``.
    """

    def __init__(self, callbacks: Iterable[Callback] | Callback | None = None, add_history: bool = False,
                 add_progbar: bool = False, model: Any = None, **params: Any):
        super().__init__()
        if isinstance(callbacks, Callback) and not isinstance(callbacks, CallbackList):
            callbacks = [callbacks]
        self.callbacks: list[Callback] = list(callbacks) if callbacks else []
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise InputError(f"callbacks must be instances of graphc.keras.callbacks.Callback, "
                                 f"got {type(cb).__name__}")
        self._history: History | None = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar: ProgbarLogger | None = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model: Any) -> None:
        self._model = model
        if self._history is not None and model is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def reads_logs(self, hook: str) -> bool:
        """Whether some callback defines ``hook`` (or its legacy name) itself: a training loop
        computes a batch's logs (every metric's result) only then."""
        legacy = {"on_train_batch_end": "on_batch_end", "on_train_batch_begin": "on_batch_begin"}.get(hook)
        return any(getattr(type(cb), hook) is not getattr(Callback, hook)
                   or (legacy is not None and getattr(type(cb), legacy) is not getattr(Callback, legacy))
                   for cb in self.callbacks)

    def _call(self, hook: str, *args: Any, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def on_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs=logs)
    def on_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs=logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs=logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs=logs)
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs=logs)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs=logs)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs=logs)
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs=logs)
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs=logs)
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs=logs)
    def on_train_begin(self, logs=None): self._call("on_train_begin", logs=logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs=logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs=logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs=logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs=logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs=logs)


# ----------------------------------------------------------------------------- History, progress
class History(Callback):
    """Records epoch logs: ``history`` maps each metric name to its list of values per epoch,
    ``epoch`` lists the epoch numbers; ``fit`` returns it and sets ``model.history`` to it."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints a :class:`~graphc.keras.utils.Progbar` per epoch (``params["verbose"]``: 1 a bar
    redrawn in place, 2 one line per epoch) and ``Epoch i/n`` before each when ``epochs > 1``.
    The values in batch logs are shown as given (``fit`` reports running averages)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.progbar: Progbar | None = None
        self.target: int | None = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = int(params.get("epochs") or 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None): self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset()

    def on_predict_begin(self, logs=None): self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None): self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None): self._update(batch, None)
    def on_epoch_end(self, epoch, logs=None): self._finalize(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs=None): self._finalize(logs)

    def _reset(self) -> None:
        self.seen = 0
        self.progbar = None

    def _bar(self) -> Progbar:
        if self.progbar is None:
            self.progbar = Progbar(self.target, verbose=self.verbose, stateful_metrics="all", unit_name="step")
        return self.progbar

    def _update(self, batch: int, logs: Logs | None) -> None:
        bar = self._bar()
        self.seen = batch + 1
        if self.verbose == 1:
            bar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs: Logs | None) -> None:
        bar = self._bar()
        if self.target is None:
            bar.target = self.seen
        bar.update(bar.target or self.seen, list((logs or {}).items()), finalize=True)


# ----------------------------------------------------------------------------- monitoring helpers
_MAX_WORDS = ("acc", "auc", "precision", "recall", "fmeasure", "f1", "top_k", "iou")


def _monitor_op(monitor: str, mode: str, who: str) -> Callable[[float, float], bool]:
    """``less`` or ``greater``: the mode if given, else guessed from the metric's name
    (accuracy, AUC, precision, recall... improve upwards; losses and errors downwards)."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode {mode!r} is unknown, falling back to 'auto'", stacklevel=3)
        mode = "auto"
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if name != "loss" and any(w in name for w in _MAX_WORDS) else "min"
    return np.less if mode == "min" else np.greater


def _missing(who: str, monitor: str, logs: Logs) -> None:
    warnings.warn(f"{who} conditioned on metric `{monitor}` which is not available. Available metrics "
                  f"are: {','.join(logs)}", stacklevel=3)


# ----------------------------------------------------------------------------- checkpoints
class ModelCheckpoint(Callback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) during training.

    ``filepath`` may name the epoch (1-based) and any log value: ``"w-{epoch:02d}-{val_loss:.2f}.gcz"``.
    With ``save_best_only`` the file is written only when ``monitor`` improves (per ``mode``;
    ``initial_value_threshold`` sets the value to beat first). ``save_freq`` is ``"epoch"``
    or a number of batches.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise InputError(f'ModelCheckpoint: save_freq must be "epoch" or a positive integer, got {save_freq!r}')
        self.save_freq = save_freq
        self.monitor_op = _monitor_op(monitor, mode, "ModelCheckpoint")
        default = np.inf if self.monitor_op is np.less else -np.inf
        self.best = default if initial_value_threshold is None else float(initial_value_threshold)
        self._batches_since_save = 0
        self._last_batch = -1
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += batch + 1 if batch <= self._last_batch else batch - self._last_batch
        self._last_batch = batch
        if self._batches_since_save >= self.save_freq:  # type: ignore[operator]
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch: int, batch: int | None, logs: Logs) -> str:
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'ModelCheckpoint: failed to format the file path "{self.filepath}": no value '
                           f"named {e} in the logs (available: {', '.join(['epoch', *logs])})") from None

    def _write(self, path: str) -> None:
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _save(self, epoch: int, batch: int | None, logs: Logs) -> None:
        path = self._file_path(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint: {path!r} is a directory; the file path must name a file")
        dirname = os.path.dirname(path)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {path}")
            self._write(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available, skipping.", stacklevel=2)
            return
        if self.monitor_op(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                       f"saving model to {path}")
            self.best = float(current)
            self._write(path)
        elif self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs (counting from ``start_from_epoch``). With ``baseline``, training also
    stops if the metric does not beat it within ``patience`` epochs. ``restore_best_weights``
    puts back the weights of the best epoch when training ends (``model.set_weights``)."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(monitor, mode, "EarlyStopping")
        self.min_delta = abs(min_delta) * (-1 if self.monitor_op is np.less else 1)
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        return reference is None or bool(self.monitor_op(value - self.min_delta, reference))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            _missing("Early stopping", self.monitor, logs)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = float(current)
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


# ----------------------------------------------------------------------------- learning rate
class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by
    ``min_delta`` for ``patience`` epochs, never below ``min_lr``; then wait ``cooldown``
    epochs before counting again. Adds ``learning_rate`` to the epoch logs."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 **kwargs: Any):
        super().__init__()
        if "epsilon" in kwargs:  # Keras 2 spelling
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise InputError(f"ReduceLROnPlateau does not support a factor >= 1.0, got factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _reset(self) -> None:
        if self.mode not in ("auto", "min", "max"):
            warnings.warn(f"ReduceLROnPlateau mode {self.mode!r} is unknown, falling back to 'auto'", stacklevel=2)
            self.mode = "auto"
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: bool(np.less(a, b - self.min_delta))
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: bool(np.greater(a, b + self.min_delta))
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _get_lr(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            _missing("Learning rate reduction", self.monitor, logs)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = _get_lr(self.model.optimizer)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    _set_lr(self.model.optimizer, new)
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``, the old form); adds ``learning_rate`` to the epoch logs."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = _get_lr(self.model.optimizer)
        try:
            new = self.schedule(epoch, lr)
        except TypeError:  # the one-argument form schedule(epoch)
            new = self.schedule(epoch)
        if not isinstance(new, (float, int, np.floating, np.integer)) or isinstance(new, bool):
            raise InputError(f"The output of the `schedule` function should be a float. Got: {new!r}")
        _set_lr(self.model.optimizer, float(new))
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model.optimizer)


# ----------------------------------------------------------------------------- logging, misc
class CSVLogger(Callback):
    """Write one CSV row of epoch logs per epoch to ``filename`` (``epoch`` first, then the log
    keys in sorted order; ``append`` continues an existing file without repeating its header)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.writer: csv.DictWriter | None = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        self.csv_file = open(self.filename, mode, newline="")  # noqa: SIM115 - closed in on_train_end

    @staticmethod
    def _value(v: Any) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, collections.abc.Iterable) and not (isinstance(v, np.ndarray) and v.ndim == 0):
            return f"\"[{', '.join(map(str, v))}]\""
        return v

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, self._value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch reports a NaN or infinite loss."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss))):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of plain functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs))``.

    Any hook may be given (``on_train_begin=lambda logs: ...``, ``on_batch_end=...``).
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs: Callable[..., None]):
        super().__init__()
        unknown = sorted(k for k in kwargs if k not in _HOOKS)
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hooks {unknown}; the hooks are {list(_HOOKS)}")
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in given.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be callable, got {fn!r}")
                setattr(self, name, fn)


__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "ModelCheckpoint", "EarlyStopping",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback"]
