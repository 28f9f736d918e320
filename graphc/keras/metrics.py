"""Stateful metrics with Keras 3's definitions, accumulated over an epoch in NumPy.

``update_state(y_true, y_pred, sample_weight=None)`` adds a batch, ``result()`` gives the value
over everything seen since ``reset_state()``. Metrics take NumPy arrays (a model feeds them its
predictions, which its compiled step returns alongside the loss). Loss-named metrics (``"mse"``,
``"binary_crossentropy"``, ...) run the loss's graph through a small compiled function, cached
per input signature.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from graphc.errors import InputError
from graphc.keras import config, serialization as ser


def _squeeze_or_expand(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    return y_true, y_pred


def accuracy(y_true, y_pred) -> np.ndarray:
    """``mean(y_true == y_pred, axis=-1)`` (exact matches)."""
    y_true, y_pred = _squeeze_or_expand(np.asarray(y_true), np.asarray(y_pred))
    return np.mean(np.equal(y_true, y_pred).astype("float32"), axis=-1)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Fraction of ``(y_pred > threshold) == y_true`` over the last axis."""
    y_true, y_pred = _squeeze_or_expand(np.asarray(y_true), np.asarray(y_pred))
    pred = (y_pred > threshold).astype(y_true.dtype if y_true.dtype.kind == "f" else "float32")
    return np.mean(np.equal(y_true, pred).astype("float32"), axis=-1)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """``argmax(y_true) == argmax(y_pred)`` per sample."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.equal(np.argmax(y_true, axis=-1), np.argmax(y_pred, axis=-1)).astype("float32")


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """``y_true == argmax(y_pred)`` per sample (labels may have a trailing axis of 1)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    shape = y_true.shape
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    m = np.equal(y_true.astype(np.int64, copy=False), y_pred.argmax(axis=-1)).astype(np.float32)
    return m.reshape(shape) if len(shape) == y_pred.ndim else m


def _in_top_k(targets: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    kth = np.sort(preds, axis=-1)[..., -min(k, preds.shape[-1])]
    target_vals = np.take_along_axis(preds, targets[..., None].astype("int64"), axis=-1)[..., 0]
    return (target_vals >= kth).astype("float32")


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """Whether the true class (argmax of y_true) is among the ``k`` highest predictions."""
    return _in_top_k(np.argmax(np.asarray(y_true), axis=-1), np.asarray(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """Whether the integer label is among the ``k`` highest predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return _in_top_k(y_true, y_pred, k)


class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state``; ``name`` is the log key."""

    def __init__(self, name: str | None = None, dtype: str | None = None):
        from graphc.keras.layers.base import snake_case
        self.name = name or snake_case(type(self).__name__)
        self.dtype = dtype or config.floatx()
        self.reset_state()

    def reset_state(self) -> None:
        """Forget all batches seen."""

    reset_states = property(lambda self: self.reset_state)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Metric":
        return cls(**config_)


def _samplewise(values: np.ndarray, sample_weight: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Keras's reduce_to_samplewise_values with ``mean``."""
    values = np.asarray(values, dtype="float64")
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype="float64")
        if sw.ndim == values.ndim + 1 and sw.shape[-1] == 1:
            sw = sw[..., 0]
        elif values.ndim == sw.ndim + 1 and values.shape[-1] == 1:
            values = values[..., 0]
        if values.ndim > sw.ndim:
            values = values.mean(axis=tuple(range(sw.ndim, values.ndim)))
        sw = np.broadcast_to(sw, values.shape)
        values = values * sw
        if values.ndim > 1:
            sw = sw.mean(axis=tuple(range(1, sw.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sw


@ser.register("metric")
class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight)``."""

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def update_state(self, values: Any, sample_weight: Any = None, *_: Any) -> None:  # type: ignore[override]
        if sample_weight is None and type(values) is np.ndarray and values.ndim == 1:
            # one value per sample, unweighted: what every batch of fit gives a metric (5 us
            # less a batch than the general path below, which gives the same sums)
            self.total += float(values.sum(dtype=np.float64))
            self.count += float(values.shape[0])
            return
        v, sw = _samplewise(np.asarray(values), sample_weight)
        self.total += float(np.sum(v))
        self.count += float(np.sum(sw)) if sw is not None else (float(v.shape[0]) if v.ndim else 1.0)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


@ser.register("metric")
class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred)``."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: str | None = None, **kwargs: Any):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        Mean.update_state(self, self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._fn_kwargs}


def _wrapper(cname: str, fn: Callable[..., Any], default_name: str, **defaults: Any) -> type:
    def __init__(self, name: str = default_name, dtype: str | None = None, **kwargs: Any):
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **{**defaults, **kwargs})

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}

    return ser.register("metric")(type(cname, (MeanMetricWrapper,), {"__init__": __init__, "get_config": get_config,
                                                                     "__doc__": fn.__doc__}))


Accuracy = _wrapper("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _wrapper("BinaryAccuracy", binary_accuracy, "binary_accuracy", threshold=0.5)
CategoricalAccuracy = _wrapper("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                     "sparse_categorical_accuracy")
TopKCategoricalAccuracy = _wrapper("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                   "top_k_categorical_accuracy", k=5)
SparseTopKCategoricalAccuracy = _wrapper("SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
                                         "sparse_top_k_categorical_accuracy", k=5)


class _GraphFn:
    """A loss-style graph function ``f(y_true, y_pred)`` compiled once per signature, run on arrays."""

    def __init__(self, fn: Callable[..., Any], kwargs: Mapping[str, Any]):
        self.fn, self.kwargs, self.cache = fn, dict(kwargs), {}

    def __call__(self, y_true: Any, y_pred: Any) -> np.ndarray:
        import graphc as gc
        t = np.asarray(y_true, dtype="float32")
        p = np.asarray(y_pred, dtype="float32")
        key = (t.shape[1:], p.shape[1:], t.ndim, p.ndim)
        f = self.cache.get(key)
        if f is None:
            pt = gc.placeholder((None,) + t.shape[1:] if t.ndim else (), "float32")
            pp = gc.placeholder((None,) + p.shape[1:] if p.ndim else (), "float32")
            f = self.cache[key] = gc.function([pt, pp], self.fn(pt, pp, **self.kwargs), mode="reference")
        return np.asarray(f(t, p))


def _loss_metric(cname: str, loss_name: str, default_name: str, **defaults: Any) -> type:
    def __init__(self, name: str = default_name, dtype: str | None = None, **kwargs: Any):
        from graphc.keras import losses
        MeanMetricWrapper.__init__(self, _GraphFn(losses.get(loss_name), {**defaults, **kwargs}), name=name,
                                   dtype=dtype)
        self._fn_kwargs = {}
        self._cfg = {**defaults, **kwargs}

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **self._cfg}

    return ser.register("metric")(type(cname, (MeanMetricWrapper,), {
        "__init__": __init__, "get_config": get_config, "__doc__": f"The mean of the {loss_name} loss."}))


MeanSquaredError = _loss_metric("MeanSquaredError", "mean_squared_error", "mean_squared_error")
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", "mean_absolute_error", "mean_absolute_error")
MeanAbsolutePercentageError = _loss_metric("MeanAbsolutePercentageError", "mape", "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _loss_metric("MeanSquaredLogarithmicError", "msle", "mean_squared_logarithmic_error")
BinaryCrossentropy = _loss_metric("BinaryCrossentropy", "binary_crossentropy", "binary_crossentropy",
                                  from_logits=False, label_smoothing=0.0)
CategoricalCrossentropy = _loss_metric("CategoricalCrossentropy", "categorical_crossentropy",
                                       "categorical_crossentropy", from_logits=False, label_smoothing=0.0)
SparseCategoricalCrossentropy = _loss_metric("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                             "sparse_categorical_crossentropy", from_logits=False)
KLDivergence = _loss_metric("KLDivergence", "kl_divergence", "kl_divergence")
Poisson = _loss_metric("Poisson", "poisson", "poisson")
Hinge = _loss_metric("Hinge", "hinge", "hinge")
SquaredHinge = _loss_metric("SquaredHinge", "squared_hinge", "squared_hinge")
CosineSimilarity = _loss_metric("CosineSimilarity", "cosine_similarity", "cosine_similarity")


class _Confusion(Metric):
    """Counts of true/false positives/negatives at thresholds (binary, elementwise)."""

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: str | None = None,
                 top_k: int | None = None, class_id: int | None = None):
        t = 0.5 if thresholds is None else thresholds
        self.thresholds = np.atleast_1d(np.asarray(t, dtype="float64"))
        self.top_k, self.class_id = top_k, class_id
        self._thresholds_arg = thresholds
        super().__init__(name=name, dtype=dtype)

    def reset_state(self) -> None:
        n = len(self.thresholds)
        self.tp, self.fp, self.tn, self.fn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true, y_pred = _squeeze_or_expand(np.asarray(y_true), np.asarray(y_pred, dtype="float64"))
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        if self.top_k is not None:
            kth = np.sort(y_pred, axis=-1)[..., -self.top_k][..., None]
            y_pred = np.where(y_pred >= kth, y_pred, -np.inf)
        w = np.ones(y_pred.shape) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
        while w.ndim < y_pred.ndim:
            w = w[..., None]
        w = np.broadcast_to(w, y_pred.shape).reshape(-1)
        truth = (y_true.reshape(-1) != 0)
        pred = y_pred.reshape(-1)[None, :] > self.thresholds[:, None]
        self.tp += (pred & truth) @ w
        self.fp += (pred & ~truth) @ w
        self.fn += (~pred & truth) @ w
        self.tn += (~pred & ~truth) @ w

    def get_config(self) -> dict[str, Any]:
        t = self._thresholds_arg
        return {**super().get_config(), "thresholds": t if t is None or np.isscalar(t) else list(t),
                "top_k": self.top_k, "class_id": self.class_id}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


@ser.register("metric")
class Precision(_Confusion):
    """``tp / (tp + fp)`` with predictions above ``thresholds`` (0.5) counted positive."""

    def result(self) -> Any:
        r = _div(self.tp, self.tp + self.fp)
        return float(r[0]) if len(r) == 1 else r


@ser.register("metric")
class Recall(_Confusion):
    """``tp / (tp + fn)`` with predictions above ``thresholds`` (0.5) counted positive."""

    def result(self) -> Any:
        r = _div(self.tp, self.tp + self.fn)
        return float(r[0]) if len(r) == 1 else r


@ser.register("metric")
class AUC(_Confusion):
    """Area under the ROC (or PR) curve from ``num_thresholds`` confusion matrices (Keras's
    thresholds and interpolation)."""

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, dtype: str | None = None, thresholds: Any = None, **_: Any):
        eps = config.epsilon()
        if thresholds is None:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            thresholds = [0.0 - eps] + inner + [1.0 + eps]
        else:
            thresholds = [0.0 - eps] + list(thresholds) + [1.0 + eps]
        self.num_thresholds = len(thresholds)
        self.curve, self.summation_method = curve.upper(), summation_method
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)

    def result(self) -> float:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:n - 1] - tp[1:]
            p = tp + fp
            dp = p[:n - 1] - p[1:]
            slope = _div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:n - 1] > 0) & (p[1:] > 0), _div(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
            inc = _div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
            return float(np.sum(inc))
        recall = _div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div(fp, fp + tn), recall
        else:
            x, y = recall, _div(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        return float(np.sum((x[:n - 1] - x[1:]) * heights))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method}


_FUNCS: dict[str, tuple[type, dict]] = {
    "accuracy": (Accuracy, {}), "acc": (Accuracy, {}),
    "binary_accuracy": (BinaryAccuracy, {}), "categorical_accuracy": (CategoricalAccuracy, {}),
    "sparse_categorical_accuracy": (SparseCategoricalAccuracy, {}),
    "top_k_categorical_accuracy": (TopKCategoricalAccuracy, {}),
    "sparse_top_k_categorical_accuracy": (SparseTopKCategoricalAccuracy, {}),
    "mse": (MeanSquaredError, {}), "mean_squared_error": (MeanSquaredError, {}),
    "mae": (MeanAbsoluteError, {}), "mean_absolute_error": (MeanAbsoluteError, {}),
    "mape": (MeanAbsolutePercentageError, {}), "mean_absolute_percentage_error": (MeanAbsolutePercentageError, {}),
    "msle": (MeanSquaredLogarithmicError, {}), "mean_squared_logarithmic_error": (MeanSquaredLogarithmicError, {}),
    "binary_crossentropy": (BinaryCrossentropy, {}), "categorical_crossentropy": (CategoricalCrossentropy, {}),
    "sparse_categorical_crossentropy": (SparseCategoricalCrossentropy, {}),
    "kl_divergence": (KLDivergence, {}), "kld": (KLDivergence, {}), "poisson": (Poisson, {}),
    "hinge": (Hinge, {}), "squared_hinge": (SquaredHinge, {}), "cosine_similarity": (CosineSimilarity, {}),
    "precision": (Precision, {}), "recall": (Recall, {}), "auc": (AUC, {}), "AUC": (AUC, {}),
}


def get(identifier: Any, y_true_shape: tuple | None = None, y_pred_shape: tuple | None = None) -> Metric:
    """A fresh metric object for a name (``"accuracy"`` resolved from the label and prediction
    shapes as Keras 3 does), a class, an instance, a config dict or a function."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc") and y_pred_shape is not None and y_true_shape is not None:
            is_binary = y_pred_shape[-1] == 1 if y_pred_shape else True
            sparse = len(y_true_shape) < len(y_pred_shape) or (
                bool(y_true_shape) and y_true_shape[-1] == 1 and y_pred_shape[-1] not in (1, None))
            cls = BinaryAccuracy if is_binary else SparseCategoricalAccuracy if sparse else CategoricalAccuracy
            return cls(name=identifier)
        if identifier in ("crossentropy", "ce") and y_pred_shape is not None and y_true_shape is not None:
            is_binary = y_pred_shape[-1] == 1 if y_pred_shape else True
            sparse = len(y_true_shape) < len(y_pred_shape) or (bool(y_true_shape) and y_true_shape[-1] == 1)
            cls = BinaryCrossentropy if is_binary else SparseCategoricalCrossentropy if sparse else CategoricalCrossentropy
            return cls(name=identifier)
        if identifier in _FUNCS:
            cls, kw = _FUNCS[identifier]
            return cls(name=identifier, **kw)
        if identifier in ser.registry("metric"):
            return ser.registry("metric")[identifier]()
        raise InputError(f"unknown metric {identifier!r}; valid names: "
                         f"{', '.join(sorted(set(_FUNCS) | {'crossentropy'}))} (or a Metric instance/class)")
    if isinstance(identifier, dict):
        return ser.deserialize("metric", identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        from graphc.keras import eager
        def fn(t, p):  # a user function of graph tensors or of arrays
            try:
                return np.asarray(identifier(t, p))
            except Exception:  # noqa: BLE001 - fall back to building it as a graph
                return np.asarray(eager.run(identifier, t, p))
        return MeanMetricWrapper(fn, name=getattr(identifier, "__name__", "metric"))
    raise InputError(f"could not interpret metric {identifier!r}")


def serialize(metric: Metric) -> Any:
    """A config dict for a metric."""
    return ser.serialize(metric)


def deserialize(config_: Any, custom_objects: Mapping[str, Any] | None = None) -> Metric:
    """The inverse of :func:`serialize`."""
    return ser.deserialize("metric", config_, custom_objects)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """``mean(square(y_pred - y_true), axis=-1)`` on arrays."""
    return np.mean(np.square(np.asarray(y_pred, "float64") - np.asarray(y_true, "float64")), axis=-1)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """``mean(abs(y_pred - y_true), axis=-1)`` on arrays."""
    return np.mean(np.abs(np.asarray(y_pred, "float64") - np.asarray(y_true, "float64")), axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
