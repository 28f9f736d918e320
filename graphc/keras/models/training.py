"""``compile``/``fit``/``evaluate``/``predict``: the training loop around compiled steps.

The whole training step (forward in training mode, losses, regularization, gradients, the
optimizer update of every trainable weight and optimizer slot, constraints) is ONE
``graphc.function`` with ``updates``. Each model keeps its compiled functions in a cache keyed
by (kind, label signature, trainable weights), so a function is compiled once per model and
input signature, never per batch (the batch size is a symbolic dimension).
"""
from __future__ import annotations

import time
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

import graphc as gc
from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.keras import config, losses as losses_mod, metrics as metrics_mod, optimizers as opt_mod
from graphc.keras.layers.base import call_context, where
from graphc.keras.models.data import (ArrayData, IterableData, class_weights_to_sample, is_array_like, to_list)

_SPARSE_LOSSES = (losses_mod.SparseCategoricalCrossentropy,)
_SAME_SHAPE_LOSSES = (losses_mod.CategoricalCrossentropy, losses_mod.KLDivergence, losses_mod.CosineSimilarity,
                      losses_mod.CategoricalHinge, losses_mod.BinaryCrossentropy, losses_mod.MeanSquaredError,
                      losses_mod.MeanAbsoluteError, losses_mod.Poisson, losses_mod.Hinge, losses_mod.SquaredHinge,
                      losses_mod.Huber, losses_mod.MeanAbsolutePercentageError, losses_mod.MeanSquaredLogarithmicError,
                      losses_mod.LogCosh)


class TrainingMixin:
    """The Keras training API of ``Model`` (see the module docstring)."""

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None, metrics: Any = None,
                weighted_metrics: Any = None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: Any = "auto", auto_scale_loss: bool = True, run_mode: str | None = None,
                target: str = "cpu", profile: bool = False) -> None:
        """Choose the optimizer, loss(es) and metrics. ``steps_per_execution=N`` runs up to N
        batches of array data per call into native code in ``fit``/``evaluate``/``predict``
        (no Python between them; batch callbacks see every N-th batch, as in Keras).
        ``run_mode`` ("native" or "reference")
        overrides :func:`graphc.keras.config.run_mode` for this model's compiled functions;
        ``target="cuda"`` compiles them for an NVIDIA GPU (weights stay on the device between
        steps; see docs/cuda.md), "cpu" (the default) for this machine. ``profile=True`` (a
        graphc extension) times every kernel of the native code: see :meth:`profile`."""
        if target not in ("cpu", "cuda"):
            raise InputError(f"compile: target must be 'cpu' or 'cuda', got {target!r}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, (int, np.integer)) \
                or steps_per_execution < 1:
            raise InputError(f"compile: steps_per_execution must be a positive integer, got {steps_per_execution!r}")
        self._target = target
        self._profile = bool(profile)
        self._steps_per_execution = int(steps_per_execution)
        self.optimizer = opt_mod.get(optimizer)
        self._loss_spec, self._loss_weights_spec = loss, loss_weights
        self._metrics_spec, self._weighted_metrics_spec = metrics, weighted_metrics
        self._run_mode = run_mode
        self._fn_cache: dict = {}
        self._metric_objs: list | None = None
        self._loss_objs: list | None = None
        self.compiled = True
        self._compile_config = {"optimizer": opt_mod.serialize(self.optimizer), "loss": _ser_loss(loss),
                                "loss_weights": loss_weights, "metrics": _ser_metrics(metrics)}
        for o in flatten_loss_spec(loss):
            if isinstance(o, str):
                losses_mod.get(o)  # unknown names fail now, with the list of valid ones
        self.compiled_functions = 0

    def _assert_compiled(self, what: str) -> None:
        if not getattr(self, "compiled", False) or getattr(self, "optimizer", None) is None:
            raise InputError(f"model {self.name!r}: you must call compile() before {what}(){where()}")

    @property
    def metrics_names(self) -> list[str]:
        names = ["loss"]
        if self._metric_objs:
            names += [m.name for _, m in self._metric_objs]
        return names

    def _options(self) -> gc.CompileOptions:
        return gc.CompileOptions(target=getattr(self, "_target", "cpu"), profile=getattr(self, "_profile", False))

    def profile(self, file: Any = None, reset: bool = False) -> dict[str, list]:
        """graphc extension: where the time of the model's compiled functions went, kernel by
        kernel (``compile(..., profile=True)`` or ``GRAPHC_PROFILE=1``). Returns
        ``{"train": rows, "test": rows, "predict": rows}`` for the functions compiled so far
        (rows as ``graphc.Function.profile``), printed to ``file`` when given."""
        out: dict[str, list] = {}
        for key, fn in getattr(self, "_fn_cache", {}).items():
            kind = key[0]
            if file is not None:
                print(f"== {self.name}: {kind}", file=file)
            rows = fn.profile(reset=reset, file=file)
            out[kind] = out.get(kind, []) + rows
        return out

    def _mode(self) -> str:
        return self._run_mode or config.run_mode()

    # ------------------------------------------------------------------ resolving per-output losses/metrics
    def _resolve_losses(self) -> list[tuple[Any, float]]:
        if self._loss_objs is not None:
            return self._loss_objs
        names = self.output_names
        spec = self._loss_spec
        if spec is None:
            raise InputError(f"model {self.name!r}: compile() was given no loss, so it cannot be trained or evaluated "
                             "on labels")
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(names)
            if unknown:
                raise InputError(f"model {self.name!r}: loss given for unknown outputs {sorted(unknown)}; the outputs "
                                 f"are {names}")
            per = [spec.get(n) for n in names]
        elif isinstance(spec, (list, tuple)):
            if len(spec) != len(names):
                raise InputError(f"model {self.name!r} has {len(names)} outputs ({', '.join(names)}) but compile() "
                                 f"got {len(spec)} losses")
            per = list(spec)
        else:
            per = [spec] * len(names)
        lw = self._loss_weights_spec
        if isinstance(lw, Mapping):
            weights = [float(lw.get(n, 1.0)) for n in names]
        elif isinstance(lw, (list, tuple)):
            weights = [float(w) for w in lw]
        else:
            weights = [1.0 if lw is None else float(lw)] * len(names)
        self._loss_objs = [(None if p is None else losses_mod.to_loss_object(p), w) for p, w in zip(per, weights)]
        return self._loss_objs

    def _resolve_metrics(self, ys: Sequence[np.ndarray], preds_shapes: Sequence[tuple]) -> list:
        if self._metric_objs is not None:
            return self._metric_objs
        names = self.output_names
        out = []
        for spec, weighted in ((self._metrics_spec, False), (self._weighted_metrics_spec, True)):
            if spec is None:
                continue
            if isinstance(spec, Mapping):
                per = [spec.get(n, []) for n in names]
            elif isinstance(spec, (list, tuple)) and spec and all(isinstance(s, (list, tuple)) or s is None for s in spec):
                per = list(spec)
            else:
                per = [spec] * len(names)
            for i, ms in enumerate(per):
                ms = [] if ms is None else ms if isinstance(ms, (list, tuple)) else [ms]
                for m in ms:
                    obj = metrics_mod.get(m, tuple(ys[i].shape), tuple(preds_shapes[i]))
                    if isinstance(m, metrics_mod.Metric) and len(names) > 1 and len(per) > 1 and per.count(ms) > 1:
                        obj = type(m).from_config(m.get_config())
                    if len(names) > 1:
                        obj.name = f"{names[i]}_{obj.name}"
                    out.append((i, obj))
        self._metric_objs = out
        return out

    def reset_metrics(self) -> None:
        """Reset the loss tracker and every metric."""
        self._tracker = [0.0, 0.0, [0.0] * len(self.output_names)]
        for _, m in self._metric_objs or []:
            m.reset_state()

    # ------------------------------------------------------------------ label checks
    def _check_labels(self, ys: Sequence[np.ndarray]) -> None:
        for (lobj, _), y, name, out in zip(self._resolve_losses(), ys, self.output_names, self._output_shapes()):
            if lobj is None or y is None:
                continue
            yshape = (None,) + tuple(y.shape[1:])
            if isinstance(lobj, _SPARSE_LOSSES):
                ok = yshape[1:] in (tuple(out[1:-1]), tuple(out[1:-1]) + (1,))
                hint = "integer class labels"
                want = out[:-1]
            elif isinstance(lobj, _SAME_SHAPE_LOSSES):
                t, p = yshape[1:], tuple(out[1:])
                ok = t == p or t + (1,) == p or (t == p + (1,))
                ok = ok and all(a == b or b is None for a, b in zip(t, p))
                hint = "labels like the output"
                want = out
            else:
                continue
            if not ok:
                extra = ""
                if isinstance(lobj, losses_mod.CategoricalCrossentropy) and len(yshape) == len(out) - 1 or \
                        (isinstance(lobj, losses_mod.CategoricalCrossentropy) and yshape[-1] == 1):
                    extra = "; for integer class labels use loss='sparse_categorical_crossentropy' or one-hot " \
                            "encode them (keras.utils.to_categorical)"
                if isinstance(lobj, _SPARSE_LOSSES) and len(yshape) == len(out):
                    extra = "; for one-hot labels use loss='categorical_crossentropy'"
                raise ShapeError(f"model {self.name!r}: loss {lobj.name!r} of output {name!r} expects {hint} of shape "
                                 f"{tuple(want)}, but the labels have shape {tuple(y.shape)} (the output has shape "
                                 f"{tuple(out)}){extra}{where()}")

    def _output_shapes(self) -> list[tuple]:
        return [tuple(t.shape) for t in self.outputs]

    # ------------------------------------------------------------------ compiled functions
    def _signature(self, ys: Sequence[np.ndarray] | None, sws: Sequence[np.ndarray] | None) -> tuple:
        ysig = None if ys is None else tuple((y.shape[1:], y.ndim) for y in ys)
        swsig = None if sws is None else tuple(s.ndim for s in sws)
        trainable = tuple(id(n) for n in self.trainable_weights)
        return ysig, swsig, trainable

    def _input_placeholders(self) -> list:
        return [gc.placeholder(tuple(t.shape), t.dtype, name=f"x_{i}") for i, t in enumerate(self.inputs)]

    def _get_fn(self, kind: str, ys: Sequence[np.ndarray] | None = None, sws: Sequence[np.ndarray] | None = None) -> Any:
        key = (kind,) + self._signature(ys, sws)
        fn = self._fn_cache.get(key)
        if fn is None:
            fn = self._fn_cache[key] = self._build_fn(kind, ys, sws)
            self.compiled_functions = getattr(self, "compiled_functions", 0) + 1
        return fn

    def _build_fn(self, kind: str, ys: Sequence[np.ndarray] | None, sws: Sequence[np.ndarray] | None) -> Any:
        xs = self._input_placeholders()
        training = kind == "train"
        with call_context(training) as ctx:
            outs = self._run_outputs(xs)
            extra_losses = list(ctx["losses"])
            layer_updates = list(ctx.get("updates", []))
        outs = [ops.cast(o, "float32") if o.dtype not in ("float32", "float64") else o for o in outs]
        if kind == "predict":
            return gc.function(xs, outs, mode=self._mode(), name=f"{self.name}_predict", options=self._options())
        y_ph = [gc.placeholder((None,) + tuple(y.shape[1:]), "float32", name=f"y_{i}") for i, y in enumerate(ys)]
        sw_ph = [gc.placeholder((None,) * s.ndim, "float32", name=f"sw_{i}") for i, s in enumerate(sws)]
        total = None
        per_output = []
        for i, (lobj, w) in enumerate(self._resolve_losses()):
            if lobj is None:
                per_output.append(ops.zeros((), "float32"))
                continue
            yt, yp = _squeeze_or_expand(y_ph[i], outs[i])
            li = lobj(yt, yp, sw_ph[i])
            per_output.append(li)
            total = ops.multiply(w, li) if total is None else ops.add(total, ops.multiply(w, li))
        if total is None:
            raise InputError(f"model {self.name!r}: no output has a loss")
        reg = self.losses + extra_losses
        for r in reg:
            total = ops.add(total, ops.cast(r, total.dtype))
        inputs = xs + y_ph + sw_ph
        outputs = [total] + per_output + outs
        if kind == "test":
            return gc.function(inputs, outputs, mode=self._mode(), name=f"{self.name}_test", options=self._options())
        records = self._trainable_records()
        seen, nodes, cons = set(), [], []
        for r in records:
            if id(r.node) not in seen:
                seen.add(id(r.node))
                nodes.append(r.node)
                cons.append(r.constraint)
        updates = list(layer_updates)
        if nodes:
            grads = gc.grad(total, nodes, disconnected="zero")
            updates += self.optimizer.update_graph(grads, nodes, cons)
        return gc.function(inputs, outputs, updates=updates, mode=self._mode(), name=f"{self.name}_train",
                           options=self._options())

    # ------------------------------------------------------------------ data standardisation
    def _std_x(self, x: Any) -> list[np.ndarray]:
        self._ensure_built_from(x)
        xs = to_list(x, self._input_keys or [t.name for t in self.inputs], "input", self.name)
        out = []
        for arr, t in zip(xs, self.inputs):
            arr = np.asarray(arr)
            if arr.dtype != np.dtype(t.dtype) and np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
                arr = arr.astype(t.dtype)
            self._check_input_shape(arr, t)
            out.append(arr)
        return out

    def _std_y(self, y: Any) -> list[np.ndarray]:
        ys = to_list(y, self.output_names, "output", self.name)
        return [np.asarray(a, dtype="float32") for a in ys]

    def _std_sw(self, sw: Any, ys: list[np.ndarray], class_weight: Mapping | None) -> list[np.ndarray]:
        n = ys[0].shape[0] if ys else 0
        if sw is None:
            sws = [np.ones((y.shape[0],), "float32") for y in ys]
        elif isinstance(sw, Mapping) or (isinstance(sw, (list, tuple)) and len(ys) > 1):
            sws = [np.asarray(a, "float32") if a is not None else np.ones((n,), "float32")
                   for a in to_list(sw, self.output_names, "sample_weight", self.name)]
        else:
            sws = [np.asarray(sw, "float32")] * len(ys)
        if class_weight:
            if len(ys) > 1 and not isinstance(class_weight, Mapping):
                raise InputError("class_weight must be a dict {class: weight}")
            sws = [s * class_weights_to_sample(y, class_weight).reshape((-1,) + (1,) * (s.ndim - 1))
                   for s, y in zip(sws, ys)]
        return sws

    def _check_input_shape(self, arr: np.ndarray, t: Any) -> None:
        want = tuple(t.shape)
        got = tuple(arr.shape)
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            consumer = self._consumer_of(t)
            extra = f" (it feeds layer {consumer!r})" if consumer else ""
            raise ShapeError(f"model {self.name!r}: input {t.name!r} expects data of shape {want}{extra}, "
                             f"but got an array of shape {got}{where()}")

    # ------------------------------------------------------------------ one batch
    def _train_or_test_batch(self, kind: str, xs: list, ys: list, sws: list,
                             fns: dict | None = None, count: int = 1) -> dict[str, float] | None:
        """Run one batch and update the loss tracker and metrics; returns the logs, except in a
        loop that passes ``fns`` (a cache of the compiled functions for its batches: the
        trainable weights, part of a function's key, are walked once per loop, not per
        batch), which computes logs only when a callback reads them. With ``count`` > 1 the
        arrays hold ``count`` equal batches, run as ``count`` steps in one call
        (``Function.run_steps``)."""
        if fns is None:
            fn = self._get_fn(kind, ys, sws)
        else:
            key = (tuple((y.shape[1:], y.ndim) for y in ys), tuple(s.ndim for s in sws))
            fn = fns.get(key)
            if fn is None:
                fn = fns[key] = self._get_fn(kind, ys, sws)
        nout = len(self.output_names)
        if count > 1:
            res = fn.run_steps(count, *xs, *ys, *sws)
            res = res[:1 + nout] + [p.reshape((-1,) + p.shape[2:]) for p in res[1 + nout:]]
        else:
            res = fn(*xs, *ys, *sws)
        total, per, preds = res[0], res[1:1 + nout], res[1 + nout:]
        bs = (xs[0].shape[0] if xs and xs[0].ndim else 1) // count
        tr = self._tracker
        # a batch's mean loss weighs its size; float() of a 0-d array is the cheap common case
        add = float if count == 1 else (lambda v: float(np.sum(v, dtype=np.float64)))
        tr[0] += add(total) * bs
        tr[1] += bs * count
        for i, p in enumerate(per):
            tr[2][i] += add(p) * bs
        for i, m in self._resolve_metrics(ys, [p.shape for p in preds]):
            weighted = sws[i] if self._metric_is_weighted(m) else None
            m.update_state(ys[i], preds[i], weighted)
        return self._logs() if fns is None else None

    def _metric_is_weighted(self, m: Any) -> bool:
        spec = self._weighted_metrics_spec
        return bool(spec) and any(m.name.endswith(getattr(s, "name", s) if not isinstance(s, str) else s)
                                  for s in (spec if isinstance(spec, (list, tuple)) else [spec]))

    def _logs(self) -> dict[str, float]:
        tr = self._tracker
        logs = {"loss": tr[0] / tr[1] if tr[1] else 0.0}
        if len(self.output_names) > 1:
            for name, v in zip(self.output_names, tr[2]):
                logs[f"{name}_loss"] = v / tr[1] if tr[1] else 0.0
        for _, m in self._metric_objs or []:
            r = m.result()
            logs[m.name] = float(r) if np.ndim(r) == 0 else r
        return logs

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Mapping | None = None,
                       return_dict: bool = False) -> Any:
        """One training step on one batch; returns its loss (and metrics), as Keras 3 (metrics are reset first)."""
        self._assert_compiled("train_on_batch")
        xs, ys = self._std_x(x), self._std_y(y)
        self._check_labels(ys)
        sws = self._std_sw(sample_weight, ys, class_weight)
        self.reset_metrics()
        logs = self._train_or_test_batch("train", xs, ys, sws)
        return logs if return_dict else _flat(logs)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        """Loss and metrics of one batch in inference mode (no update)."""
        self._assert_compiled("test_on_batch")
        xs, ys = self._std_x(x), self._std_y(y)
        self._check_labels(ys)
        sws = self._std_sw(sample_weight, ys, None)
        self.reset_metrics()
        logs = self._train_or_test_batch("test", xs, ys, sws)
        return logs if return_dict else _flat(logs)

    def predict_on_batch(self, x: Any) -> Any:
        """The model's outputs for one batch, in inference mode."""
        xs = self._std_x(x)
        outs = self._get_fn("predict")(*xs)
        return self._structure_outputs(outs)

    # ------------------------------------------------------------------ loops
    def _adapter(self, x: Any, y: Any, sample_weight: Any, batch_size: int | None, shuffle: bool, steps: int | None,
                 class_weight: Mapping | None, need_y: bool) -> tuple[Any, bool]:
        if is_array_like(x) and not _is_iterator(x):
            xs = self._std_x(x)
            ys = self._std_y(y) if y is not None else None
            if need_y and ys is None:
                raise InputError(f"model {self.name!r}: labels (y) are required{where()}")
            if ys is not None:
                self._check_labels(ys)
            sws = self._std_sw(sample_weight, ys, class_weight) if ys is not None else None
            return ArrayData(xs, ys, sws, batch_size or 32, shuffle, steps, self.name), True
        if y is not None:
            raise InputError(f"model {self.name!r}: y must not be given when x is a generator or dataset{where()}")
        return IterableData(x, steps), False

    def _batches(self, data: Any, arrays: bool) -> Iterator[tuple[Any, int]]:
        """``(batch, count)`` for one epoch: array data in groups of up to
        ``steps_per_execution`` batches, generators one batch at a time."""
        if arrays:
            return data.groups(getattr(self, "_steps_per_execution", 1))
        return ((batch, 1) for batch in data.epoch())

    def _prepare_batch(self, batch: Any, arrays: bool, class_weight: Mapping | None, need_y: bool) -> tuple:
        if arrays:
            return batch
        bx, by, bsw = batch
        xs = self._std_x(bx)
        if by is None:
            if need_y:
                raise InputError(f"model {self.name!r}: the data generator yields no labels (y)")
            return xs, None, None
        ys = self._std_y(by)
        self._check_labels(ys)
        return xs, ys, self._std_sw(bsw, ys, class_weight)

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1, verbose: Any = "auto",
            callbacks: Any = None, validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Mapping | None = None, sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1) -> Any:
        """Train for ``epochs`` epochs; returns the History (also ``model.history``)."""
        from graphc.keras import callbacks as cb_mod
        self._assert_compiled("fit")
        verbose = 1 if verbose == "auto" else verbose
        if validation_split and validation_data is None:
            if not is_array_like(x) or _is_iterator(x):
                raise InputError("validation_split is only supported for array inputs; use validation_data")
            x, y, sample_weight, validation_data = _split(x, y, sample_weight, validation_split)
        data, arrays = self._adapter(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight, True)
        cbs = cb_mod.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self, verbose=verbose,
                                  epochs=epochs, steps=data.steps)
        self.stop_training = False
        cbs.on_train_begin()
        logs: dict[str, float] = {}
        fns: dict = {}
        batch_logs = cbs.reads_logs("on_train_batch_end")
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            t0 = time.perf_counter()
            step = 0
            for batch, count in self._batches(data, arrays):
                cbs.on_train_batch_begin(step)
                xs, ys, sws = self._prepare_batch(batch, arrays, class_weight, True)
                self._train_or_test_batch("train", xs, ys, sws, fns, count)
                step += count
                cbs.on_train_batch_end(step - 1, dict(self._logs()) if batch_logs else {})
                if self.stop_training:
                    break
            epoch_logs = dict(self._logs())
            self._last_epoch_time = time.perf_counter() - t0
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                vx, vy, vsw = _unpack_validation(validation_data)
                val = self.evaluate(vx, vy, sample_weight=vsw, batch_size=validation_batch_size or batch_size,
                                    steps=validation_steps, verbose=0, callbacks=cbs, return_dict=True, _in_fit=True)
                epoch_logs.update({f"val_{k}": v for k, v in val.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Any = None,
                 return_dict: bool = False, _in_fit: bool = False, **kwargs: Any) -> Any:
        """Loss and metrics over the data, in inference mode: a scalar, a list or a dict."""
        from graphc.keras import callbacks as cb_mod
        self._assert_compiled("evaluate")
        verbose = 1 if verbose == "auto" else verbose
        data, arrays = self._adapter(x, y, sample_weight, batch_size, False, steps, None, True)
        if isinstance(callbacks, cb_mod.CallbackList):
            cbs = callbacks
        else:
            cbs = cb_mod.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                                      steps=data.steps)
        saved = (getattr(self, "_tracker", None), [(m, dict(vars(m))) for _, m in self._metric_objs or []])
        self.reset_metrics()
        cbs.on_test_begin()
        fns: dict = {}
        batch_logs = cbs.reads_logs("on_test_batch_end")
        step = 0
        for batch, count in self._batches(data, arrays):
            cbs.on_test_batch_begin(step)
            xs, ys, sws = self._prepare_batch(batch, arrays, None, True)
            self._train_or_test_batch("test", xs, ys, sws, fns, count)
            step += count
            cbs.on_test_batch_end(step - 1, dict(self._logs()) if batch_logs else {})
        logs = self._logs()
        cbs.on_test_end(dict(logs))
        if _in_fit:
            self._tracker = saved[0]
            for m, state in saved[1]:
                vars(m).update(state)
        if return_dict:
            return logs
        return _flat(logs)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Any = None) -> Any:
        """The model's outputs for all samples, in inference mode, batch by batch."""
        from graphc.keras import callbacks as cb_mod
        verbose = 1 if verbose == "auto" else verbose
        data, arrays = self._adapter(x, None, None, batch_size, False, steps, None, False)
        cbs = cb_mod.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                                  steps=data.steps)
        cbs.on_predict_begin()
        chunks: list[list[np.ndarray]] = []
        step = 0
        fn = self._get_fn("predict")
        for batch, count in self._batches(data, arrays):
            cbs.on_predict_batch_begin(step)
            xs = batch[0] if arrays else self._std_x(batch[0])
            if count > 1:
                outs = [o.reshape((-1,) + o.shape[2:]) for o in fn.run_steps(count, *xs)]
            else:
                outs = fn(*xs)
            chunks.append(outs)
            step += count
            cbs.on_predict_batch_end(step - 1, {"outputs": outs})
        cbs.on_predict_end()
        if not chunks:
            raise InputError(f"model {self.name!r}: predict got no data")
        outs = [np.concatenate([c[i] for c in chunks], axis=0) for i in range(len(chunks[0]))]
        return self._structure_outputs(outs)

    def __call_numpy__(self, x: Any) -> Any:
        return self.predict_on_batch(x)


def _squeeze_or_expand(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_true = ops.expand_dims(y_true, -1)
    return y_true, y_pred


def _is_iterator(x: Any) -> bool:
    return hasattr(x, "__next__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__")
                                      and not isinstance(x, (np.ndarray, list, tuple, dict)))


def _flat(logs: Mapping[str, Any]) -> Any:
    vals = list(logs.values())
    return vals[0] if len(vals) == 1 else vals


def _split(x: Any, y: Any, sw: Any, fraction: float) -> tuple:
    def n_of(v: Any) -> int:
        if isinstance(v, Mapping):
            return n_of(next(iter(v.values())))
        if isinstance(v, (list, tuple)):
            return n_of(v[0])
        return len(v)

    def cut(v: Any, lo: int | None, hi: int | None) -> Any:
        if v is None:
            return None
        if isinstance(v, Mapping):
            return {k: cut(a, lo, hi) for k, a in v.items()}
        if isinstance(v, (list, tuple)) and not isinstance(v, np.ndarray) and len(v) and hasattr(v[0], "shape"):
            return [cut(a, lo, hi) for a in v]
        return np.asarray(v)[lo:hi]

    n = n_of(x)
    at = int(n * (1.0 - fraction))
    if at <= 0 or at >= n:
        raise InputError(f"validation_split={fraction} leaves no training or no validation samples ({n} samples)")
    return cut(x, None, at), cut(y, None, at), cut(sw, None, at), (cut(x, at, None), cut(y, at, None),
                                                                   cut(sw, at, None))


def _unpack_validation(v: Any) -> tuple:
    if isinstance(v, tuple):
        if len(v) == 2:
            return v[0], v[1], None
        if len(v) == 3:
            return v
    return v, None, None


def flatten_loss_spec(loss: Any) -> list:
    if isinstance(loss, Mapping):
        return list(loss.values())
    if isinstance(loss, (list, tuple)):
        return list(loss)
    return [loss]


def _ser_loss(loss: Any) -> Any:
    if isinstance(loss, Mapping):
        return {k: losses_mod.serialize(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [losses_mod.serialize(v) for v in loss]
    return losses_mod.serialize(loss)


def _ser_metrics(metrics: Any) -> Any:
    if metrics is None:
        return None
    if isinstance(metrics, Mapping):
        return {k: _ser_metrics(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [_ser_metrics(m) for m in metrics]
    if isinstance(metrics, str):
        return metrics
    if isinstance(metrics, metrics_mod.Metric):
        return metrics_mod.serialize(metrics)
    return getattr(metrics, "__name__", None)
