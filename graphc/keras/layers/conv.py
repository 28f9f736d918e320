"""Convolution layers: Conv1D, Conv2D (and the Convolution1D/2D aliases).

Built on :func:`graphc.frontend.nn.conv` (im2col by strided slices + one matmul), so the
gradient, the reference and the native code come from the primitive ops. Kernels have
Keras's layout ``(*kernel_size, in_channels // groups, filters)``; ``channels_first`` inputs
are transposed to channels-last and back.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import nn, ops
from graphc.ir.node import Node
from graphc.keras import activations, constraints, initializers, regularizers
from graphc.keras import serialization as ser
from graphc.keras.layers.base import InputSpec, Layer, where


def normalize_tuple(v: Any, n: int, name: str, layer: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        v = (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) != n or any(a <= 0 for a in v):
        raise InputError(f"{layer}: {name} must be a positive int or a tuple of {n} positive ints, got {v}{where()}")
    return v


def normalize_padding(p: str, layer: str, allowed: Sequence[str] = ("valid", "same")) -> str:
    p = str(p).lower()
    if p not in allowed:
        raise InputError(f"{layer}: padding must be one of {list(allowed)}, got {p!r}{where()}")
    return p


def normalize_data_format(f: str | None, layer: str) -> str:
    f = f or "channels_last"
    if f not in ("channels_last", "channels_first"):
        raise InputError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got {f!r}{where()}")
    return f


class _Conv(Layer):
    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        cls = type(self).__name__
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise InputError(f"{cls}: filters must be a positive int, got {filters!r}{where()}")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", cls)
        self.strides = normalize_tuple(strides, self.rank, "strides", cls)
        self.padding = normalize_padding(padding, cls, ("valid", "same"))
        self.data_format = normalize_data_format(data_format, cls)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", cls)
        if any(s > 1 for s in self.strides) and any(d > 1 for d in self.dilation_rate):
            raise InputError(f"{cls}: strides > 1 together with dilation_rate > 1 is not supported "
                             f"(strides={self.strides}, dilation_rate={self.dilation_rate}){where()}")
        self.groups = int(groups)
        if self.groups <= 0 or self.filters % self.groups:
            raise InputError(f"{cls}: filters ({self.filters}) must be divisible by groups ({self.groups}){where()}")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != self.rank + 2:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of rank {self.rank + 2} "
                             f"(batch, {self.rank} spatial axes, channels), got shape {tuple(input_shape)}{where()}")
        cin = input_shape[self._channel_axis()]
        if cin is None:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}): the channel axis of its input must be "
                             f"known, got shape {tuple(input_shape)}{where()}")
        if cin % self.groups:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}): {cin} input channels are not divisible "
                             f"by groups={self.groups} (input shape {tuple(input_shape)}){where()}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (cin // self.groups, self.filters),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis(): int(cin)})

    def call(self, inputs: Node) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        if self.data_format == "channels_first":
            x = nn.to_channels_last(x)
        what = f"layer {self.name!r} ({type(self).__name__})"
        y = nn.conv(x, self.kernel, self.strides, self.padding, self.dilation_rate, self.groups, what=what)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        y = self.activation(y)
        if self.data_format == "channels_first":
            y = nn.to_channels_first(y)
        return y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": self.padding, "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "groups": self.groups, "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return cfg


@ser.register("layer")
class Conv2D(_Conv):
    """2-D convolution: ``(batch, rows, cols, channels)`` (or channels-first) to
    ``(batch, new_rows, new_cols, filters)``; kernel ``(kh, kw, in // groups, filters)``."""
    rank = 2


@ser.register("layer")
class Conv1D(_Conv):
    """1-D convolution over ``(batch, steps, channels)``; kernel ``(k, in // groups, filters)``."""
    rank = 1

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid", **kwargs: Any):
        if str(padding).lower() == "causal":
            raise InputError(f"Conv1D: padding='causal' is not supported yet; use 'valid' or 'same'{where()}")
        super().__init__(filters, kernel_size, strides, padding, **kwargs)


@ser.register("layer")
class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of Conv2D with respect to its input), Keras's
    kernel layout ``(kh, kw, filters, in_channels)`` and output sizes."""
    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, **kwargs: Any):
        super().__init__(filters, kernel_size, strides, padding, **kwargs)
        if self.groups != 1:
            raise InputError(f"Conv2DTranspose: groups must be 1{where()}")
        if output_padding is None:
            self.output_padding = None
        elif isinstance(output_padding, (int, np.integer)):
            self.output_padding = (int(output_padding),) * self.rank
        else:
            self.output_padding = tuple(int(p) for p in output_padding)

    def build(self, input_shape: Any) -> None:
        cin = input_shape[self._channel_axis()]
        if len(input_shape) != 4 or cin is None:
            raise ShapeError(f"layer {self.name!r} (Conv2DTranspose) expects inputs of rank 4 with a known channel "
                             f"axis, got shape {tuple(input_shape)}{where()}")
        # Keras's transposed layout: (*k, filters, in)
        self.kernel = self.add_weight("kernel", self.kernel_size + (self.filters, cin),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", (self.filters,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint) \
            if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis(): int(cin)})

    def call(self, inputs: Node) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        if self.data_format == "channels_first":
            x = nn.to_channels_last(x)
        y = nn.conv_transpose(x, self.kernel, self.strides, self.padding, self.output_padding, self.dilation_rate,
                              what=f"layer {self.name!r} (Conv2DTranspose)")
        if self.bias is not None:
            y = ops.add(y, self.bias)
        y = self.activation(y)
        return nn.to_channels_first(y) if self.data_format == "channels_first" else y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("groups", None)
        cfg["output_padding"] = None if self.output_padding is None else list(self.output_padding)
        return cfg


@ser.register("layer")
class DepthwiseConv2D(_Conv):
    """Each input channel convolved with its own ``depth_multiplier`` filters: depthwise_kernel
    ``(kh, kw, in, depth_multiplier)``, output channel ``c * depth_multiplier + m``."""
    rank = 2

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid", depth_multiplier: int = 1,
                 depthwise_initializer: Any = "glorot_uniform", depthwise_regularizer: Any = None,
                 depthwise_constraint: Any = None, **kwargs: Any):
        kwargs.pop("filters", None)
        for k in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            kwargs.pop(k, None)
        super().__init__(1, kernel_size, strides, padding, kernel_initializer=depthwise_initializer,
                         kernel_regularizer=depthwise_regularizer, kernel_constraint=depthwise_constraint, **kwargs)
        self.depth_multiplier = int(depth_multiplier)

    def build(self, input_shape: Any) -> None:
        cin = input_shape[self._channel_axis()]
        if len(input_shape) != 4 or cin is None:
            raise ShapeError(f"layer {self.name!r} (DepthwiseConv2D) expects inputs of rank 4 with a known channel "
                             f"axis, got shape {tuple(input_shape)}{where()}")
        self.depthwise_kernel = self.add_weight("depthwise_kernel", self.kernel_size + (cin, self.depth_multiplier),
                                                initializer=self.kernel_initializer,
                                                regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", (cin * self.depth_multiplier,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint) \
            if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis(): int(cin)})

    def _depthwise(self, x: Node) -> Node:
        return nn.depthwise_conv(x, self.depthwise_kernel, self.strides, self.padding, self.dilation_rate,
                                 what=f"layer {self.name!r} ({type(self).__name__})")

    def call(self, inputs: Node) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        if self.data_format == "channels_first":
            x = nn.to_channels_last(x)
        y = self._depthwise(x)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        y = self.activation(y)
        return nn.to_channels_first(y) if self.data_format == "channels_first" else y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        for k in ("filters", "groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            cfg.pop(k, None)
        cfg.update({"depth_multiplier": self.depth_multiplier,
                    "depthwise_initializer": initializers.serialize(self.kernel_initializer),
                    "depthwise_regularizer": regularizers.serialize(self.kernel_regularizer),
                    "depthwise_constraint": constraints.serialize(self.kernel_constraint)})
        return cfg


@ser.register("layer")
class SeparableConv2D(DepthwiseConv2D):
    """A depthwise convolution followed by a 1x1 (pointwise) convolution to ``filters``:
    depthwise_kernel ``(kh, kw, in, depth_multiplier)``, pointwise_kernel
    ``(1, 1, in * depth_multiplier, filters)``, bias ``(filters,)``."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, pointwise_initializer: Any = "glorot_uniform",
                 pointwise_regularizer: Any = None, pointwise_constraint: Any = None, **kwargs: Any):
        super().__init__(kernel_size, strides, padding, depth_multiplier, **kwargs)
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise InputError(f"SeparableConv2D: filters must be a positive int, got {filters!r}{where()}")
        self.filters = int(filters)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def build(self, input_shape: Any) -> None:
        use_bias, self.use_bias = self.use_bias, False
        super().build(input_shape)
        self.use_bias = use_bias
        cin = input_shape[self._channel_axis()]
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, cin * self.depth_multiplier, self.filters),
                                                initializer=self.pointwise_initializer,
                                                regularizer=self.pointwise_regularizer,
                                                constraint=self.pointwise_constraint)
        self.bias = self.add_weight("bias", (self.filters,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint) \
            if self.use_bias else None

    def _depthwise(self, x: Node) -> Node:
        y = super()._depthwise(x)
        return nn.conv(y, self.pointwise_kernel, what=f"layer {self.name!r} (SeparableConv2D)")

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"filters": self.filters,
                    "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                    "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                    "pointwise_constraint": constraints.serialize(self.pointwise_constraint)})
        return cfg


Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Convolution1D",
           "Convolution2D"]
