"""Losses with Keras 3's definitions: functions ``f(y_true, y_pred) -> per-sample loss`` and
classes (``keras.losses.CategoricalCrossentropy(from_logits=True)``) that reduce with
``sum_over_batch_size`` (``sum(loss * sample_weight) / number of samples``)."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import config, eager, serialization as ser


def _eps() -> float:
    return config.epsilon()


def _prep(y_true: Any, y_pred: Any) -> tuple[Node, Node]:
    y_pred = ops.as_tensor(y_pred)
    return ops.cast(ops.as_tensor(y_true), y_pred.dtype), y_pred


def mean_squared_error(y_true, y_pred):
    """``mean(square(y_pred - y_true), axis=-1)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    return ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_pred - y_true), axis=-1)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    return ops.mean(ops.abs(ops.subtract(y_pred, y_true)), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(abs((y_true - y_pred) / max(abs(y_true), eps)), axis=-1)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    diff = ops.abs(ops.divide(ops.subtract(y_true, y_pred), ops.maximum(ops.abs(y_true), _eps())))
    return ops.multiply(100.0, ops.mean(diff, axis=-1))


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean(square(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)), axis=-1)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    a = ops.log(ops.add(ops.maximum(y_pred, _eps()), 1.0))
    b = ops.log(ops.add(ops.maximum(y_true, _eps()), 1.0))
    return ops.mean(ops.square(ops.subtract(a, b)), axis=-1)


def huber(y_true, y_pred, delta: float = 1.0):
    """Quadratic for ``|error| <= delta``, linear beyond; mean over the last axis."""
    y_true, y_pred = _prep(y_true, y_pred)
    err = ops.subtract(y_pred, y_true)
    abs_err = ops.abs(err)
    quad = ops.multiply(0.5, ops.square(err))
    lin = ops.subtract(ops.multiply(delta, abs_err), 0.5 * delta * delta)
    return ops.mean(ops.where(ops.less_equal(abs_err, delta), quad, lin), axis=-1)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``, computed stably."""
    y_true, y_pred = _prep(y_true, y_pred)
    x = ops.subtract(y_pred, y_true)
    return ops.mean(ops.subtract(ops.add(x, ops.softplus(ops.multiply(-2.0, x))), math.log(2.0)), axis=-1)


def _hinge_labels(y_true: Node) -> Node:
    is01 = ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0))
    all01 = ops.equal(ops.min(ops.cast(is01, y_true.dtype)), 1.0)
    return ops.where(all01, ops.subtract(ops.multiply(2.0, y_true), 1.0), y_true)


def hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0), axis=-1)``; 0/1 labels are mapped to -1/1."""
    y_true, y_pred = _prep(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.relu(ops.subtract(1.0, ops.multiply(y_true, y_pred))), axis=-1)


def squared_hinge(y_true, y_pred):
    """``mean(square(max(1 - y_true * y_pred, 0)), axis=-1)``; 0/1 labels become -1/1."""
    y_true, y_pred = _prep(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.square(ops.relu(ops.subtract(1.0, ops.multiply(y_true, y_pred)))), axis=-1)


def categorical_hinge(y_true, y_pred):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    pos = ops.sum(ops.multiply(y_true, y_pred), axis=-1)
    neg = ops.max(ops.multiply(ops.subtract(1.0, y_true), y_pred), axis=-1)
    return ops.relu(ops.add(ops.subtract(neg, pos), 1.0))


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1):
    """Mean over ``axis`` of ``-(t log p + (1 - t) log(1 - p))`` (``p`` clipped to [eps, 1-eps])."""
    y_true, y_pred = _prep(y_true, y_pred)
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    if from_logits:
        x = y_pred
        bce = ops.add(ops.subtract(ops.relu(x), ops.multiply(x, y_true)), ops.log1p(ops.exp(ops.negative(ops.abs(x)))))
    else:
        p = ops.clip(y_pred, _eps(), 1.0 - _eps())
        bce = ops.negative(ops.add(ops.multiply(y_true, ops.log(p)),
                                   ops.multiply(ops.subtract(1.0, y_true), ops.log(ops.subtract(1.0, p)))))
    return ops.mean(bce, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1):
    """``-sum(y_true * log(p), axis)`` with ``p`` renormalised and clipped (or log_softmax of logits)."""
    y_true, y_pred = _prep(y_true, y_pred)
    if label_smoothing:
        n = y_pred.shape[axis]
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / float(n))
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=axis)
    else:
        p = ops.divide(y_pred, ops.sum(y_pred, axis=axis, keepdims=True))
        log_p = ops.log(ops.clip(p, _eps(), 1.0 - _eps()))
    return ops.negative(ops.sum(ops.multiply(y_true, log_p), axis=axis))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class: int | None = None,
                                    axis: int = -1):
    """Categorical cross-entropy with integer class labels (a trailing axis of 1 is squeezed)."""
    y_pred = ops.as_tensor(y_pred)
    y_true = ops.as_tensor(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    labels = ops.cast(y_true, "int64")
    onehot = ops.one_hot(labels, int(y_pred.shape[axis]), dtype=y_pred.dtype)
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=axis)
    else:
        p = ops.divide(y_pred, ops.sum(y_pred, axis=axis, keepdims=True))
        log_p = ops.log(ops.clip(p, _eps(), 1.0 - _eps()))
    out = ops.negative(ops.sum(ops.multiply(onehot, log_p), axis=axis))
    if ignore_class is not None:
        out = ops.where(ops.equal(labels, ignore_class), ops.zeros((), out.dtype), out)
    return out


def kl_divergence(y_true, y_pred):
    """``sum(t * log(t / p), axis=-1)`` with both clipped to [eps, 1]."""
    y_true, y_pred = _prep(y_true, y_pred)
    t = ops.clip(y_true, _eps(), 1.0)
    p = ops.clip(y_pred, _eps(), 1.0)
    return ops.sum(ops.multiply(t, ops.log(ops.divide(t, p))), axis=-1)


def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + eps), axis=-1)``."""
    y_true, y_pred = _prep(y_true, y_pred)
    return ops.mean(ops.subtract(y_pred, ops.multiply(y_true, ops.log(ops.add(y_pred, _eps())))), axis=-1)


def _l2_normalize(x: Node, axis: int) -> Node:
    return ops.multiply(x, ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12)))


def cosine_similarity(y_true, y_pred, axis: int = -1):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)`` (a loss: -1 is best)."""
    y_true, y_pred = _prep(y_true, y_pred)
    return ops.negative(ops.sum(ops.multiply(_l2_normalize(y_true, axis), _l2_normalize(y_pred, axis)), axis=axis))


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh

_FUNCTIONS: dict[str, Callable[..., Node]] = {
    "mean_squared_error": mean_squared_error, "mse": mse, "MSE": mse,
    "mean_absolute_error": mean_absolute_error, "mae": mae, "MAE": mae,
    "mean_absolute_percentage_error": mape, "mape": mape, "MAPE": mape,
    "mean_squared_logarithmic_error": msle, "msle": msle, "MSLE": msle,
    "huber": huber, "huber_loss": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "hinge": hinge, "squared_hinge": squared_hinge, "categorical_hinge": categorical_hinge,
    "binary_crossentropy": binary_crossentropy, "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "kl_divergence": kl_divergence, "kld": kld, "KLD": kld, "kullback_leibler_divergence": kld,
    "poisson": poisson, "cosine_similarity": cosine_similarity,
}


def reduce_weighted(values: Node, sample_weight: Node | None, reduction: str) -> Node:
    """Keras 3's reduction: ``"sum_over_batch_size"`` (sum / element count), ``"sum"``,
    ``"mean_with_sample_weight"`` or ``"none"``."""
    if sample_weight is not None:
        sw = ops.cast(ops.as_tensor(sample_weight), values.dtype)
        while sw.ndim > values.ndim and sw.shape[-1] == 1:
            sw = ops.squeeze(sw, -1)
        while sw.ndim < values.ndim:
            sw = ops.expand_dims(sw, -1)
        values = ops.multiply(values, sw)
    if reduction in (None, "none"):
        return values
    total = ops.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return ops.divide(total, ops.sum(ops.broadcast_to(sw, values.shape)))
    return ops.divide(total, ops.cast(ops.count(values), values.dtype))


class Loss:
    """A loss object: ``loss(y_true, y_pred, sample_weight=None)`` returns the reduced loss
    (a graph node for graph inputs, a NumPy value for arrays)."""

    fn: Callable[..., Node] = staticmethod(mean_squared_error)

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, dtype: str | None = None,
                 **fn_kwargs: Any):
        if reduction not in ("sum_over_batch_size", "sum", "none", None, "mean", "mean_with_sample_weight", "auto"):
            raise InputError(f"unknown loss reduction {reduction!r}")
        self.reduction = "sum_over_batch_size" if reduction in ("auto", "mean") else reduction
        self.name = name or _snake(type(self).__name__)
        self.fn_kwargs = fn_kwargs

    def call(self, y_true: Any, y_pred: Any) -> Node:
        """Per-sample losses."""
        return type(self).fn(y_true, y_pred, **self.fn_kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if not eager.is_symbolic(y_true, y_pred, sample_weight):
            args = [y_true, y_pred] + ([sample_weight] if sample_weight is not None else [])
            return eager.run(lambda t, p, *sw: self(t, p, sw[0] if sw else None), *args)
        return reduce_weighted(self.call(y_true, y_pred), sample_weight, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, **self.fn_kwargs}

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Loss":
        return cls(**config_)


def _snake(name: str) -> str:
    from graphc.keras.layers.base import snake_case
    return snake_case(name)


def _loss_class(name: str, fn: Callable[..., Node], doc: str, **defaults: Any) -> type:
    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, dtype: str | None = None,
                 **kwargs: Any):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise InputError(f"{type(self).__name__}: unknown argument(s) {sorted(unknown)}")
        Loss.__init__(self, reduction=reduction, name=name, **{**defaults, **kwargs})

    cls = type(name, (Loss,), {"fn": staticmethod(fn), "__init__": __init__, "__doc__": doc})
    return ser.register("loss")(cls)


MeanSquaredError = _loss_class("MeanSquaredError", mean_squared_error, "Mean of squared errors.")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", mean_absolute_error, "Mean of absolute errors.")
MeanAbsolutePercentageError = _loss_class("MeanAbsolutePercentageError", mape, "Mean absolute percentage error.")
MeanSquaredLogarithmicError = _loss_class("MeanSquaredLogarithmicError", msle, "Mean squared log error.")
Huber = _loss_class("Huber", huber, "Huber loss.", delta=1.0)
LogCosh = _loss_class("LogCosh", log_cosh, "Log-cosh loss.")
Hinge = _loss_class("Hinge", hinge, "Hinge loss.")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "Squared hinge loss.")
CategoricalHinge = _loss_class("CategoricalHinge", categorical_hinge, "Categorical hinge loss.")
BinaryCrossentropy = _loss_class("BinaryCrossentropy", binary_crossentropy, "Binary cross-entropy.",
                                 from_logits=False, label_smoothing=0.0, axis=-1)
CategoricalCrossentropy = _loss_class("CategoricalCrossentropy", categorical_crossentropy,
                                      "Categorical cross-entropy.", from_logits=False, label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _loss_class("SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
                                            "Sparse categorical cross-entropy.", from_logits=False,
                                            ignore_class=None, axis=-1)
KLDivergence = _loss_class("KLDivergence", kl_divergence, "Kullback-Leibler divergence.")
Poisson = _loss_class("Poisson", poisson, "Poisson loss.")
CosineSimilarity = _loss_class("CosineSimilarity", cosine_similarity, "Negative cosine similarity.", axis=-1)


class LossFunctionWrapper(Loss):
    """A plain function ``f(y_true, y_pred)`` as a loss object."""

    def __init__(self, fn: Callable[..., Node], reduction: str = "sum_over_batch_size", name: str | None = None,
                 **kwargs: Any):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"), **kwargs)
        self._fn = fn

    def call(self, y_true: Any, y_pred: Any) -> Node:
        return self._fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"fn": getattr(self._fn, "__name__", "loss"), **super().get_config()}


_CLASS_FOR = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
              mape: MeanAbsolutePercentageError, msle: MeanSquaredLogarithmicError, huber: Huber,
              log_cosh: LogCosh, hinge: Hinge, squared_hinge: SquaredHinge, categorical_hinge: CategoricalHinge,
              binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy, kl_divergence: KLDivergence,
              poisson: Poisson, cosine_similarity: CosineSimilarity}


def get(identifier: Any) -> Any:
    """A loss function or object from a name, a config dict, a class, an instance or a function."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        if identifier in ser.registry("loss"):
            return ser.registry("loss")[identifier]()
        known = sorted(set(_FUNCTIONS) | {k for k in ser.registry("loss")})
        raise InputError(f"unknown loss {identifier!r}; valid names: {', '.join(known)}")
    if isinstance(identifier, dict):
        return ser.deserialize("loss", identifier)
    if isinstance(identifier, type):
        return identifier()
    if callable(identifier):
        return identifier
    raise InputError(f"could not interpret loss {identifier!r}")


def to_loss_object(identifier: Any) -> Loss:
    """Any loss identifier as a :class:`Loss` object (functions are wrapped)."""
    obj = get(identifier)
    if isinstance(obj, Loss):
        return obj
    if obj in _CLASS_FOR:
        return _CLASS_FOR[obj](name=identifier if isinstance(identifier, str) else None)
    return LossFunctionWrapper(obj)


def serialize(loss: Any) -> Any:
    """A name or config dict for a loss."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, Loss) and not isinstance(loss, LossFunctionWrapper):
        return ser.serialize(loss)
    return getattr(loss, "__name__", None) or getattr(loss, "name", None)


def deserialize(config_: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The inverse of :func:`serialize`."""
    if isinstance(config_, str) and config_ not in _FUNCTIONS and config_ not in ser.registry("loss"):
        return ser.lookup("loss", config_, custom_objects)
    with ser.custom_object_scope(custom_objects):
        return get(config_)
