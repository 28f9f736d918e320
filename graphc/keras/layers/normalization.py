"""Normalisation and noise layers: BatchNormalization, LayerNormalization, SpatialDropout1D/2D,
GaussianNoise, GaussianDropout.

State updates (BatchNormalization's moving mean and variance) are ``(shared, new value)``
pairs added with :func:`add_update` while the layer is called in training mode. They go to
the outermost call context, which is the one ``Model._build_fn`` opens around its training
graph; it reads ``ctx["updates"]`` and compiles them into the same ``graphc.function`` as the
optimizer step, so one training step stays one native call. Outside a model's training
function (e.g. a layer called eagerly) the updates are dropped.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import nn, ops
from graphc.ir.node import Node
from graphc.keras import constraints, initializers, regularizers
from graphc.keras import serialization as ser
from graphc.keras.layers import base
from graphc.keras.layers.base import InputSpec, Layer, where
from graphc.keras.layers.core import Dropout


def add_update(variable: Node, value: Node) -> None:
    """Record ``variable <- value`` for the training function being built (see module doc)."""
    if base._context:
        base._context[0].setdefault("updates", []).append((variable, ops.cast(value, variable.dtype)))


def _axes_list(axis: Any, ndim: int, cls: str) -> list[int]:
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    out = []
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ShapeError(f"{cls}: axis {a} is out of range for inputs of rank {ndim}{where()}")
        out.append(int(a) % ndim)
    return sorted(set(out))


def _param_shape(input_shape: Sequence[Any], axes: list[int], name: str, cls: str) -> tuple[int, ...]:
    shape = []
    for a in axes:
        d = input_shape[a]
        if d is None:
            raise ShapeError(f"layer {name!r} ({cls}): axis {a} of its input must be known, got shape "
                             f"{tuple(input_shape)}{where()}")
        shape.append(int(d))
    return tuple(shape)


def _broadcast_param(p: Node, x: Node, axes: list[int]) -> Node:
    """Reshape a parameter of shape ``[x.shape[a] for a in axes]`` to broadcast against x."""
    shape = [1] * x.ndim
    for a, d in zip(axes, p.shape):
        shape[a] = d
    return ops.reshape(p, tuple(shape))



def _build_gamma_beta(layer: Any, input_shape: Any) -> tuple:
    """Resolve ``layer.axis`` and add its optional ``gamma``/``beta`` weights (BatchNormalization,
    LayerNormalization); returns the parameters' shape."""
    cls = type(layer).__name__
    layer._axes = _axes_list(layer.axis, len(input_shape), cls)
    shape = _param_shape(input_shape, layer._axes, layer.name, cls)
    layer.gamma = layer.add_weight("gamma", shape, initializer=layer.gamma_initializer,
                                   regularizer=layer.gamma_regularizer, constraint=layer.gamma_constraint) \
        if layer.scale else None
    layer.beta = layer.add_weight("beta", shape, initializer=layer.beta_initializer,
                                  regularizer=layer.beta_regularizer, constraint=layer.beta_constraint) \
        if layer.center else None
    return shape

@ser.register("layer")
class BatchNormalization(Layer):
    """Normalise with the batch's statistics in training (updating the moving mean and variance
    as ``moving = moving * momentum + batch * (1 - momentum)``) and with the moving statistics at
    inference. Weights, in Keras's order: gamma, beta, moving_mean, moving_variance."""

    def __init__(self, axis: Any = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros", moving_variance_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, synchronized: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis if isinstance(axis, (int, np.integer)) else list(axis)
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        shape = _build_gamma_beta(self, input_shape)
        self.moving_mean = self.add_weight("moving_mean", shape, initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               initializer=self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={a: d for a, d in zip(self._axes, shape)})

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        axes = self._axes
        reduce_axes = [i for i in range(x.ndim) if i not in axes]
        if training and self.trainable:
            mean, var = nn.moments(x, reduce_axes, keepdims=True)
            m = self.momentum
            add_update(self.moving_mean, ops.add(ops.multiply(self.moving_mean, m),
                                                 ops.multiply(ops.reshape(mean, self.moving_mean.shape), 1.0 - m)))
            add_update(self.moving_variance, ops.add(ops.multiply(self.moving_variance, m),
                                                     ops.multiply(ops.reshape(var, self.moving_variance.shape), 1.0 - m)))
        else:
            mean = _broadcast_param(self.moving_mean, x, axes)
            var = _broadcast_param(self.moving_variance, x, axes)
        inv = ops.rsqrt(ops.add(var, self.epsilon))
        if self.gamma is not None:
            inv = ops.multiply(inv, _broadcast_param(self.gamma, x, axes))
        y = ops.multiply(ops.subtract(x, mean), inv)
        if self.beta is not None:
            y = ops.add(y, _broadcast_param(self.beta, x, axes))
        return y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        })
        return cfg


@ser.register("layer")
class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (the last by default), then scale by gamma and shift
    by beta (Keras: epsilon 1e-3)."""

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if rms_scaling:
            raise InputError(f"LayerNormalization: rms_scaling=True is not supported{where()}")
        self.axis = axis if isinstance(axis, (int, np.integer)) else list(axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        _build_gamma_beta(self, input_shape)

    def call(self, inputs: Node) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        mean, var = nn.moments(x, self._axes, keepdims=True)
        inv = ops.rsqrt(ops.add(var, self.epsilon))
        if self.gamma is not None:
            inv = ops.multiply(inv, _broadcast_param(self.gamma, x, self._axes))
        y = ops.multiply(ops.subtract(x, mean), inv)
        if self.beta is not None:
            y = ops.add(y, _broadcast_param(self.beta, x, self._axes))
        return y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        })
        return cfg


class _SpatialDropout(Dropout):
    rank = 2

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None, **kwargs: Any):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        if not training or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:
            return ops.zeros_like(inputs)
        b = inputs.shape[0]
        if self.data_format == "channels_last":
            shape = (b,) + (1,) * self.rank + (inputs.shape[-1],)
        else:
            shape = (b, inputs.shape[1]) + (1,) * self.rank
        keep = ops.greater_equal(ops.random_uniform(shape, dtype=inputs.dtype, seed=self.seed), self.rate)
        scale = ops.divide(ops.cast(keep, inputs.dtype), 1.0 - self.rate)
        return ops.multiply(inputs, scale)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("noise_shape", None)
        if self.rank > 1:
            cfg["data_format"] = self.data_format
        return cfg


@ser.register("layer")
class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps (channels) of ``(batch, rows, cols, channels)`` in training."""
    rank = 2


@ser.register("layer")
class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of ``(batch, steps, channels)`` in training."""
    rank = 1

    def __init__(self, rate: float, **kwargs: Any):
        kwargs.pop("data_format", None)
        super().__init__(rate, **kwargs)


@ser.register("layer")
class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training only."""

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.stddev, self.seed = float(stddev), seed
        self.supports_masking = True

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        if not training or self.stddev == 0.0:
            return inputs
        return ops.add(inputs, ops.random_normal(inputs.shape, 0.0, self.stddev, dtype=inputs.dtype, seed=self.seed))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"stddev": self.stddev, "seed": self.seed})
        return cfg


@ser.register("layer")
class GaussianDropout(Layer):
    """Multiplies by ``1 + N(0, rate / (1 - rate))`` noise in training only."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise InputError(f"GaussianDropout: rate must be in [0, 1), got {rate}{where()}")
        self.rate, self.seed = float(rate), seed

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        if not training or self.rate == 0.0:
            return inputs
        std = float(np.sqrt(self.rate / (1.0 - self.rate)))
        return ops.multiply(inputs, ops.random_normal(inputs.shape, 1.0, std, dtype=inputs.dtype, seed=self.seed))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed})
        return cfg


__all__ = ["BatchNormalization", "LayerNormalization", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
           "GaussianDropout"]
