"""Core layers: Input/InputLayer, Dense, Activation, Dropout, Flatten, Reshape, Permute,
RepeatVector, Lambda (and TensorOp, which records arithmetic on functional-API tensors)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.ir.shapes import size_of
from graphc.keras import activations, constraints, initializers, regularizers
from graphc.keras import serialization as ser
from graphc.keras.layers.base import CallNode, InputSpec, Layer, unique_name, where
from graphc.keras.tensor import KerasTensor, placeholder_for


@ser.register("layer")
class InputLayer(Layer):
    """The entry point of a functional model: holds the input placeholder's shape and dtype."""

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: str | None = None, name: str | None = None, batch_shape: Sequence[int | None] | None = None,
                 input_shape: Sequence[int | None] | None = None, batch_input_shape: Sequence[int | None] | None = None,
                 sparse: bool = False, **kwargs: Any):
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        shape = shape if shape is not None else input_shape
        batch_shape = batch_shape if batch_shape is not None else batch_input_shape
        if batch_shape is None:
            if shape is None:
                raise InputError(f"Input needs a shape (e.g. Input(shape=(784,))){where()}")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self._batch_input_shape = self.batch_shape
        node = placeholder_for(self.batch_shape, self.dtype, name=self.name)
        self.built = True
        tensor = KerasTensor(node, (self, 0, 0), name=self.name)
        self._inbound_nodes.append(CallNode(self, (), {}, tensor))

    def get_config(self) -> dict[str, Any]:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}


def Input(shape: Sequence[int | None] | None = None, batch_size: int | None = None, name: str | None = None,
          dtype: str | None = None, batch_shape: Sequence[int | None] | None = None, sparse: bool = False,
          tensor: Any = None, **kwargs: Any) -> KerasTensor:
    """A symbolic input of a functional model: ``Input(shape=(784,))`` has shape ``(None, 784)``."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape, **kwargs)
    return layer.output


@ser.register("layer")
class Dense(Layer):
    """``activation(inputs @ kernel + bias)``; the kernel has shape (input width, units)."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise InputError(f"Dense: units must be a positive int, got {units!r}{where()}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: Any) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"layer {self.name!r} (Dense): the last axis of its input must be known, got "
                             f"shape {tuple(input_shape)}{where()}")
        self.kernel = self.add_weight("kernel", (in_dim, self.units), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: int(in_dim)})

    def call(self, inputs: Node) -> Node:
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        y = ops.matmul(x, self.kernel)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return self.activation(y)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "units": self.units, "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return cfg


@ser.register("layer")
class Activation(Layer):
    """Applies an activation function."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs: Node) -> Node:
        return self.activation(inputs)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["activation"] = activations.serialize(self.activation)
        return cfg


@ser.register("layer")
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training (scaling the rest by
    ``1/(1-rate)``); the identity at inference."""

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) <= 1.0:
            raise InputError(f"Dropout: rate must be in [0, 1], got {rate}{where()}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        if not training or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:
            return ops.zeros_like(inputs)
        shape = inputs.shape if self.noise_shape is None else tuple(
            inputs.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        keep = ops.greater_equal(ops.random_uniform(shape, dtype=inputs.dtype, seed=self.seed), self.rate)
        return ops.where(keep, ops.divide(inputs, 1.0 - self.rate), ops.zeros((), inputs.dtype))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                    "seed": self.seed})
        return cfg


@ser.register("layer")
class Flatten(Layer):
    """``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``."""

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"

    def call(self, inputs: Node) -> Node:
        x = inputs
        if self.data_format == "channels_first" and x.ndim > 2:
            x = ops.transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,))
        if x.ndim == 1:
            return ops.expand_dims(x, 1)
        return ops.reshape(x, (x.shape[0], size_of(x.shape[1:])))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


@ser.register("layer")
class Reshape(Layer):
    """Reshape every sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs: Node) -> Node:
        per_sample = size_of(inputs.shape[1:])
        target = self.target_shape
        known = int(np.prod([d for d in target if d != -1]))
        if isinstance(per_sample, int):
            ok = (per_sample % known == 0) if -1 in target else (per_sample == known)
            if not ok:
                raise ShapeError(f"layer {self.name!r} (Reshape): cannot reshape input of shape "
                                 f"{(None,) + tuple(inputs.shape[1:])} ({per_sample} values per sample) to "
                                 f"{(None,) + target}{where()}")
            target = tuple(per_sample // known if d == -1 else d for d in target)
        return ops.reshape(inputs, (inputs.shape[0],) + target)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


@ser.register("layer")
class Permute(Layer):
    """Permute the non-batch axes: ``dims`` counts from 1, e.g. ``Permute((2, 1))``."""

    def __init__(self, dims: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise InputError(f"Permute: dims must be a permutation of 1..{len(self.dims)}, got {self.dims}{where()}")

    def call(self, inputs: Node) -> Node:
        if inputs.ndim != len(self.dims) + 1:
            raise ShapeError(f"layer {self.name!r} (Permute): dims {self.dims} need inputs of rank "
                             f"{len(self.dims) + 1}, got rank {inputs.ndim}{where()}")
        return ops.transpose(inputs, (0,) + self.dims)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["dims"] = list(self.dims)
        return cfg


@ser.register("layer")
class RepeatVector(Layer):
    """``(batch, features) -> (batch, n, features)``."""

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs: Node) -> Node:
        x = ops.expand_dims(inputs, 1)
        return ops.broadcast_to(x, (inputs.shape[0], self.n, inputs.shape[1]))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


@ser.register("layer")
class Lambda(Layer):
    """Wraps a function of graph tensors as a layer.

    The function is saved by name only: loading a model with a Lambda layer needs
    ``custom_objects={"<function name>": fn}`` (or keyed by the layer's name), since code is
    never stored in (or run from) a model file.
    """

    def __init__(self, function: Callable[..., Any], output_shape: Any = None, mask: Any = None,
                 arguments: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(function):
            raise InputError(f"Lambda: function must be callable, got {function!r}{where()}")
        self.function = function
        self.output_shape_arg = output_shape
        self.arguments = dict(arguments or {})

    def call(self, inputs: Any) -> Any:
        return self.function(inputs, **self.arguments)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"function": getattr(self.function, "__name__", "<lambda>"),
                    "module": getattr(self.function, "__module__", None), "arguments": self.arguments})
        return cfg

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Lambda":
        cfg = dict(config_)
        fname = cfg.pop("function")
        cfg.pop("module", None)
        known = ser.scoped_custom_objects()
        fn = known.get(fname) if fname != "<lambda>" else None
        if fn is None:
            fn = known.get(cfg.get("name", ""))
        if fn is None:
            from graphc.errors import ModelFileError
            raise ModelFileError(
                f"Lambda layer {cfg.get('name')!r} wraps the function {fname!r}, whose code is not stored in model "
                f"files; pass it when loading: load_model(path, custom_objects={{{fname if fname != '<lambda>' else cfg.get('name')!r}: "
                f"your_function}})")
        return cls(fn, **cfg)


class TensorOp(Layer):
    """Arithmetic on functional-API tensors (``x * 2``, ``a + b``) recorded as a layer.
    Like a Lambda, a model using it can be saved but needs ``custom_objects`` to load."""

    def __init__(self, fn: Callable[..., Node], name_hint: str = "op", **kwargs: Any):
        super().__init__(name=kwargs.pop("name", None) or unique_name(name_hint), **kwargs)
        self.fn = fn

    def call(self, inputs: Sequence[Any]) -> Node:
        return self.fn(*inputs)

    def get_config(self) -> dict[str, Any]:
        raise InputError(f"layer {self.name!r} is arithmetic on symbolic tensors and cannot be serialized; "
                         "use a Lambda layer or a merge layer (Add, Multiply, ...) instead")
