"""Recurrent layers: SimpleRNN, LSTM, GRU, and the Bidirectional and TimeDistributed wrappers.

Weight layouts and gate orders are Keras's, so ``set_weights`` with weights taken from Keras
gives the same outputs:

- SimpleRNN: kernel ``(in, u)``, recurrent_kernel ``(u, u)``, bias ``(u,)``.
- LSTM: kernel ``(in, 4u)``, recurrent_kernel ``(u, 4u)``, bias ``(4u,)``; gates i, f, c, o.
- GRU: kernel ``(in, 3u)``, recurrent_kernel ``(u, 3u)``; gates z, r, h; with
  ``reset_after=True`` (the default) bias ``(2, 3u)`` (input bias, recurrent bias) and the reset
  gate applied after the recurrent matmul; with ``reset_after=False`` bias ``(3u,)``.

The recurrence is one loop node (:func:`graphc.scan`, see :func:`recur`): the input
projection ``x @ kernel + bias`` is one matmul over all steps, then the loop body adds
``h @ recurrent_kernel`` and the gate arithmetic. The body is traced once, so the graph and
the compile time do not grow with the sequence length, which may be symbolic (``None``);
the gradient is backpropagation through time, another loop derived by the autodiff.

Masking: a mask recorded by ``Embedding(mask_zero=True)`` (see
:mod:`graphc.keras.layers.embedding`) makes masked steps keep the previous state; with
``return_sequences`` their outputs are zeros.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.scan import scan
from graphc.ir.node import Node
from graphc.keras import activations, constraints, initializers, regularizers
from graphc.keras import serialization as ser
from graphc.keras.layers.base import InputSpec, Layer, where
from graphc.keras.layers.embedding import get_mask, set_mask

Step = Callable[[Node, list[Node]], tuple[Node, list[Node]]]


def recur(step: Step, xproj: Node, states: list[Node], mask: Node | None, go_backwards: bool,
          return_sequences: bool, what: str) -> tuple[Node | None, list[Node]]:
    """Run ``step(x_t, states) -> (output_t, new_states)`` over axis 1 of ``xproj`` as one loop.

    Returns the outputs stacked along axis 1 in processing order (None unless
    ``return_sequences``) and the final states. With ``go_backwards`` the steps run from the
    last to the first (Keras's convention: outputs in processing order)."""
    steps = xproj.shape[1]
    if isinstance(steps, int) and steps == 0:
        raise ShapeError(f"{what}: got an empty sequence (input shape {tuple(xproj.shape)}){where()}")
    xs = [ops.transpose(xproj, (1, 0, 2))]  # time-major: the loop slices the leading axis
    if mask is not None:
        xs.append(ops.transpose(ops.cast(mask, "bool"), (1, 0)))
    if go_backwards:
        xs = [x[::-1] for x in xs]

    def body(carry: list[Node], x: list[Node]) -> tuple[list[Node], Node | None]:
        out, new = step(x[0], carry)
        if mask is not None:
            m = ops.expand_dims(x[1], -1)
            new = [ops.where(m, n, s) for n, s in zip(new, carry)]
            out = ops.where(m, out, ops.zeros((), out.dtype))
        return new, (out if return_sequences else None)

    final, ys = scan(body, states, xs)
    outputs = ops.transpose(ys, (1, 0, 2)) if return_sequences else None
    return outputs, final


class _RNN(Layer):
    """Base of SimpleRNN/LSTM/GRU: weights, dropout, masking, and the output conventions."""

    gates = 1
    n_states = 1

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, unroll: bool = False, seed: int | None = None, **kwargs: Any):
        kwargs.pop("time_major", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        cls = type(self).__name__
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise InputError(f"{cls}: units must be a positive int, got {units!r}{where()}")
        if stateful:
            raise InputError(f"{cls}: stateful=True is not supported{where()}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), False, bool(unroll)
        self.seed = seed
        self.input_spec = InputSpec(ndim=3)
        self.supports_masking = True

    # ---------------------------------------------------------------- weights
    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def _bias_init(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: Any) -> None:
        if isinstance(input_shape, list):  # called with initial states
            input_shape = input_shape[0]
        if len(input_shape) != 3:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of rank 3 "
                             f"(batch, timesteps, features), got shape {tuple(input_shape)}{where()}")
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}): the feature axis of its input must be "
                             f"known, got shape {tuple(input_shape)}{where()}")
        g = self.gates * self.units
        self.kernel = self.add_weight("kernel", (in_dim, g), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, g),
                                                initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", self._bias_shape(), initializer=self._bias_init(),
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=3, axes={-1: int(in_dim)})

    # ---------------------------------------------------------------- the recurrence
    def _project(self, x: Node) -> Node:
        """``x @ kernel (+ input bias)`` for every step at once: (batch, steps, gates * units)."""
        y = ops.matmul(x, self.kernel)
        if self.bias is not None:
            y = ops.add(y, self.bias if self.bias.ndim == 1 else self.bias[0])
        return y

    def _step(self, xt: Node, states: list[Node], rmask: Node | None) -> tuple[Node, list[Node]]:
        raise NotImplementedError

    def _dropout_mask(self, shape: tuple, rate: float, dtype: str) -> Node:
        keep = ops.greater_equal(ops.random_uniform(shape, dtype=dtype, seed=self.seed), rate)
        return ops.divide(ops.cast(keep, dtype), 1.0 - rate)

    def call(self, inputs: Any, training: bool | None = None, initial_state: Any = None) -> Any:
        if isinstance(inputs, (list, tuple)):
            inputs, initial_state = inputs[0], list(inputs[1:]) or initial_state
        what = f"layer {self.name!r} ({type(self).__name__})"
        if inputs.ndim != 3:
            raise ShapeError(f"{what} expects inputs of rank 3 (batch, timesteps, features), got shape "
                             f"{tuple(inputs.shape)}{where()}")
        mask = get_mask(inputs)
        x = ops.cast(inputs, self.dtype) if inputs.dtype != self.dtype else inputs
        batch = x.shape[0]
        if training and self.dropout > 0:
            x = ops.multiply(x, ops.expand_dims(self._dropout_mask((batch, x.shape[-1]), self.dropout, x.dtype), 1))
        rmask = None
        if training and self.recurrent_dropout > 0:
            rmask = self._dropout_mask((batch, self.units), self.recurrent_dropout, x.dtype)
        if initial_state is None:
            states = [ops.zeros((batch, self.units), x.dtype) for _ in range(self.n_states)]
        else:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != self.n_states:
                raise InputError(f"{what} has {self.n_states} state(s) but got {len(states)} initial state(s)"
                                 f"{where()}")
            states = [ops.cast(ops.as_tensor(s), x.dtype) for s in states]
        outputs, final = recur(lambda xt, st: self._step(xt, st, rmask), self._project(x), states, mask,
                               self.go_backwards, self.return_sequences, what)
        if outputs is not None:
            out = outputs
            set_mask(out, mask if mask is None or not self.go_backwards else mask[:, ::-1])
        else:
            out = final[0]
        if self.return_state:
            return [out] + list(final)
        return out

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": False, "unroll": self.unroll, "seed": self.seed,
        })
        if self.gates > 1:
            cfg["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        return cfg


@ser.register("layer")
class SimpleRNN(_RNN):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    gates, n_states = 1, 1

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)

    def _step(self, xt: Node, states: list[Node], rmask: Node | None) -> tuple[Node, list[Node]]:
        h = states[0]
        hr = h if rmask is None else ops.multiply(h, rmask)
        out = self.activation(ops.add(xt, ops.matmul(hr, self.recurrent_kernel)))
        return out, [out]


@ser.register("layer")
class LSTM(_RNN):
    """Long short-term memory; gates i, f, c, o (Keras's order); states [h, c]."""

    gates, n_states = 4, 2

    def __init__(self, units: int, unit_forget_bias: bool = True, implementation: int = 2, **kwargs: Any):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)

    def _bias_init(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        def init(shape: tuple, dtype: str = "float32") -> np.ndarray:
            b = np.asarray(base((u * 4,), dtype=dtype), dtype=dtype)
            b[u:2 * u] = 1.0
            return b
        return init

    def _step(self, xt: Node, states: list[Node], rmask: Node | None) -> tuple[Node, list[Node]]:
        h, c = states
        u = self.units
        hr = h if rmask is None else ops.multiply(h, rmask)
        z = ops.add(xt, ops.matmul(hr, self.recurrent_kernel))
        i = self.recurrent_activation(z[:, :u])
        f = self.recurrent_activation(z[:, u:2 * u])
        g = self.activation(z[:, 2 * u:3 * u])
        o = self.recurrent_activation(z[:, 3 * u:])
        c_new = ops.add(ops.multiply(f, c), ops.multiply(i, g))
        h_new = ops.multiply(o, self.activation(c_new))
        return h_new, [h_new, c_new]

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


@ser.register("layer")
class GRU(_RNN):
    """Gated recurrent unit; gates z (update), r (reset), h (candidate), Keras's order.
    ``reset_after=True`` (default, cuDNN-compatible) has bias ``(2, 3 * units)``."""

    gates, n_states = 3, 1

    def __init__(self, units: int, reset_after: bool = True, implementation: int = 2, **kwargs: Any):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _step(self, xt: Node, states: list[Node], rmask: Node | None) -> tuple[Node, list[Node]]:
        h = states[0]
        u = self.units
        hr = h if rmask is None else ops.multiply(h, rmask)
        if self.reset_after:
            rec = ops.matmul(hr, self.recurrent_kernel)
            if self.bias is not None:
                rec = ops.add(rec, self.bias[1])
            z = self.recurrent_activation(ops.add(xt[:, :u], rec[:, :u]))
            r = self.recurrent_activation(ops.add(xt[:, u:2 * u], rec[:, u:2 * u]))
            hh = self.activation(ops.add(xt[:, 2 * u:], ops.multiply(r, rec[:, 2 * u:])))
        else:
            rk = self.recurrent_kernel
            rec = ops.matmul(hr, rk[:, :2 * u])
            z = self.recurrent_activation(ops.add(xt[:, :u], rec[:, :u]))
            r = self.recurrent_activation(ops.add(xt[:, u:2 * u], rec[:, u:]))
            hh = self.activation(ops.add(xt[:, 2 * u:], ops.matmul(ops.multiply(r, hr), rk[:, 2 * u:])))
        h_new = ops.add(ops.multiply(z, h), ops.multiply(ops.subtract(1.0, z), hh))
        return h_new, [h_new]

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg


def _layer_from(config_: Any) -> Layer:
    from graphc.keras.layers import deserialize
    return config_ if isinstance(config_, Layer) else deserialize(config_)


def _layer_config(layer: Layer) -> dict[str, Any]:
    from graphc.keras.layers import serialize
    return serialize(layer)


@ser.register("layer")
class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over the sequence and merges the two
    (``merge_mode`` "concat", "sum", "mul", "ave" or None for a list). Weights: the forward
    layer's, then the backward layer's (as Keras)."""

    def __init__(self, layer: Any, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Any = None, **kwargs: Any):
        layer = _layer_from(layer)
        if not isinstance(layer, _RNN):
            raise InputError(f"Bidirectional: expects a recurrent layer (SimpleRNN, LSTM, GRU), got "
                             f"{type(layer).__name__}{where()}")
        if merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise InputError(f"Bidirectional: merge_mode must be 'concat', 'sum', 'mul', 'ave' or None, got "
                             f"{merge_mode!r}{where()}")
        super().__init__(name=kwargs.pop("name", None) or f"bidirectional_{layer.name}", **kwargs)
        self.forward_layer = layer
        if backward_layer is None:
            cfg = layer.get_config()
            cfg["go_backwards"] = not cfg["go_backwards"]
            cfg["name"] = "backward_" + layer.name
            backward_layer = type(layer).from_config(cfg)
        else:
            backward_layer = _layer_from(backward_layer)
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.input_spec = InputSpec(ndim=3)

    def build(self, input_shape: Any) -> None:
        pass  # the wrapped layers build on their first call

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        fw = self.forward_layer(inputs, training=training)
        bw = self.backward_layer(inputs, training=training)
        fw_states: list = []
        bw_states: list = []
        if self.return_state:
            fw, fw_states = fw[0], fw[1:]
            bw, bw_states = bw[0], bw[1:]
        if self.return_sequences:
            bw = bw[:, ::-1]
        if self.merge_mode == "concat":
            out: Any = ops.concatenate([fw, bw], axis=-1)
        elif self.merge_mode == "sum":
            out = ops.add(fw, bw)
        elif self.merge_mode == "mul":
            out = ops.multiply(fw, bw)
        elif self.merge_mode == "ave":
            out = ops.multiply(ops.add(fw, bw), 0.5)
        else:
            out = [fw, bw]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + list(fw_states) + list(bw_states)
        return out

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"layer": _layer_config(self.forward_layer), "merge_mode": self.merge_mode,
                    "backward_layer": _layer_config(self.backward_layer)})
        return cfg

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Bidirectional":
        cfg = dict(config_)
        cfg["layer"] = _layer_from(cfg["layer"])
        if cfg.get("backward_layer") is not None:
            cfg["backward_layer"] = _layer_from(cfg["backward_layer"])
        return cls(**cfg)


@ser.register("layer")
class TimeDistributed(Layer):
    """Applies ``layer`` to every step: ``(batch, steps, ...)`` -> ``(batch, steps, ...out)``, by
    folding the steps into the batch."""

    def __init__(self, layer: Any, **kwargs: Any):
        layer = _layer_from(layer)
        if not isinstance(layer, Layer):
            raise InputError(f"TimeDistributed: expects a layer, got {layer!r}{where()}")
        super().__init__(name=kwargs.pop("name", None) or f"time_distributed_{layer.name}", **kwargs)
        self.layer = layer
        self.input_spec = InputSpec(min_ndim=3)

    def build(self, input_shape: Any) -> None:
        pass

    def call(self, inputs: Node, training: bool | None = None) -> Node:
        if inputs.ndim < 3:
            raise ShapeError(f"layer {self.name!r} (TimeDistributed) expects inputs of rank >= 3 (batch, steps, "
                             f"...), got shape {tuple(inputs.shape)}{where()}")
        b, t = inputs.shape[0], inputs.shape[1]  # either may be symbolic
        folded = ops.reshape(inputs, (-1,) + tuple(inputs.shape[2:]))
        y = self.layer(folded, training=training)
        return ops.reshape(y, (b, t) + tuple(y.shape[1:]))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["layer"] = _layer_config(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "TimeDistributed":
        cfg = dict(config_)
        cfg["layer"] = _layer_from(cfg["layer"])
        return cls(**cfg)


__all__ = ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed"]
