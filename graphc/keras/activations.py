"""Activation functions by name and as functions of graph tensors (Keras 3 definitions).

``get("relu")`` or ``get(callable)`` returns a function ``f(x) -> tensor``. A user activation
can be written as a sympy formula of one variable with :func:`from_sympy`: it compiles to
graph ops (so to native code), and its symbolic derivative is available as ``.derivative``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import sympy

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.sympy_graph import from_tree, to_graph, to_tree

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def linear(x: Node) -> Node:
    """The identity."""
    return x


def relu(x: Node, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> Node:
    """``max(x, 0)``, with Keras's optional negative slope, cap and threshold."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if threshold != 0.0:
        pos = ops.where(ops.greater(x, threshold), x, 0.0 * x)
    else:
        pos = ops.relu(x)
    if max_value is not None:
        pos = ops.minimum(pos, max_value)
    if negative_slope != 0.0:
        pos = ops.add(pos, ops.multiply(negative_slope, ops.minimum(ops.subtract(x, threshold), 0.0)))
    return pos


def relu6(x: Node) -> Node:
    """``min(max(x, 0), 6)``."""
    return ops.minimum(ops.relu(x), 6.0)


def sigmoid(x: Node) -> Node:
    """``1 / (1 + exp(-x))``."""
    return ops.sigmoid(x)


def tanh(x: Node) -> Node:
    """Hyperbolic tangent."""
    return ops.tanh(x)


def softmax(x: Node, axis: int = -1) -> Node:
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return ops.softmax(x, axis)


def log_softmax(x: Node, axis: int = -1) -> Node:
    """``log(softmax(x))``, computed stably."""
    return ops.log_softmax(x, axis)


def softplus(x: Node) -> Node:
    """``log(1 + exp(x))``."""
    return ops.softplus(x)


def softsign(x: Node) -> Node:
    """``x / (1 + |x|)``."""
    return ops.divide(x, ops.add(ops.abs(x), 1.0))


def elu(x: Node, alpha: float = 1.0) -> Node:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    return ops.where(ops.greater(x, 0.0), x, ops.multiply(alpha, ops.expm1(ops.minimum(x, 0.0))))


def selu(x: Node) -> Node:
    """Scaled ELU with the self-normalising constants."""
    return ops.multiply(_SELU_SCALE, elu(x, _SELU_ALPHA))


def gelu(x: Node, approximate: bool = False) -> Node:
    """Gaussian error linear unit (exact erf form by default, as Keras 3)."""
    if approximate:
        c = math.sqrt(2.0 / math.pi)
        inner = ops.multiply(c, ops.add(x, ops.multiply(0.044715, ops.multiply(x, ops.multiply(x, x)))))
        return ops.multiply(ops.multiply(0.5, x), ops.add(1.0, ops.tanh(inner)))
    return ops.multiply(ops.multiply(0.5, x), ops.add(1.0, ops.erf(ops.multiply(x, 1.0 / math.sqrt(2.0)))))


def silu(x: Node) -> Node:
    """``x * sigmoid(x)`` (also called swish)."""
    return ops.multiply(x, ops.sigmoid(x))


swish = silu


def leaky_relu(x: Node, negative_slope: float = 0.2) -> Node:
    """``x`` for ``x >= 0``, ``negative_slope * x`` otherwise."""
    return ops.where(ops.greater_equal(x, 0.0), x, ops.multiply(negative_slope, x))


def hard_sigmoid(x: Node) -> Node:
    """``relu6(x + 3) / 6`` (Keras 3's definition)."""
    return ops.divide(relu6(ops.add(x, 3.0)), 6.0)


def hard_silu(x: Node) -> Node:
    """``x * hard_sigmoid(x)``."""
    return ops.multiply(x, hard_sigmoid(x))


hard_swish = hard_silu


def exponential(x: Node) -> Node:
    """``exp(x)``."""
    return ops.exp(x)


def mish(x: Node) -> Node:
    """``x * tanh(softplus(x))``."""
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


_BY_NAME: dict[str, Callable[..., Node]] = {
    "linear": linear, "relu": relu, "relu6": relu6, "sigmoid": sigmoid, "tanh": tanh,
    "softmax": softmax, "log_softmax": log_softmax, "softplus": softplus, "softsign": softsign,
    "elu": elu, "selu": selu, "gelu": gelu, "silu": silu, "swish": swish,
    "leaky_relu": leaky_relu, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
    "hard_swish": hard_swish, "exponential": exponential, "mish": mish,
}


@ser.register("activation")
class SympyActivation:
    """An elementwise activation given by a sympy formula in one symbol.

    Calling it on a tensor builds the formula as graph ops (so its gradient is graphc's
    autodiff of those ops); ``derivative`` is sympy's symbolic derivative of the formula and
    ``derivative_fn(x)`` builds that as graph ops too (the two agree; a test checks it).
    """

    def __init__(self, formula: sympy.Expr | str, symbol: sympy.Symbol | str | None = None, name: str = "sympy_activation"):
        if isinstance(formula, str):
            raise InputError("activations.from_sympy needs a sympy expression, not a string "
                             "(build it with sympy: x = sympy.Symbol('x'); f = x * sympy.tanh(x))")
        formula = sympy.sympify(formula)
        free = sorted(formula.free_symbols, key=str)
        if symbol is None:
            if len(free) != 1:
                raise InputError(f"activations.from_sympy: the formula {formula} must have exactly one free "
                                 f"symbol, it has {len(free)} ({', '.join(map(str, free))})")
            symbol = free[0]
        elif isinstance(symbol, str):
            symbol = next((s for s in free if s.name == symbol), sympy.Symbol(symbol))
        extra = set(formula.free_symbols) - {symbol}
        if extra:
            raise InputError(f"activations.from_sympy: the formula {formula} uses {sorted(map(str, extra))} "
                             f"besides {symbol}")
        self.formula = formula
        self.symbol = symbol
        self.derivative = sympy.diff(formula, symbol)
        self.__name__ = name
        to_tree(formula)  # fail early if it cannot be stored

    def __call__(self, x: Node) -> Node:
        return to_graph(self.formula, self.symbol, ops.as_tensor(x))

    def derivative_fn(self, x: Node) -> Node:
        """The symbolic derivative evaluated on ``x`` as graph ops."""
        return to_graph(self.derivative, self.symbol, ops.as_tensor(x))

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """The formula evaluated with NumPy (via sympy.lambdify), for checking."""
        return sympy.lambdify(self.symbol, self.formula, "numpy")(x)

    def get_config(self) -> dict[str, Any]:
        return {"formula": to_tree(self.formula), "symbol": self.symbol.name, "name": self.__name__}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SympyActivation":
        formula = from_tree(config["formula"])
        return cls(formula, config.get("symbol"), config.get("name", "sympy_activation"))

    def __repr__(self) -> str:
        return f"SympyActivation({self.formula}, d/d{self.symbol} = {self.derivative})"


def from_sympy(formula: sympy.Expr, symbol: sympy.Symbol | str | None = None,
               name: str = "sympy_activation") -> SympyActivation:
    """An activation from a sympy formula of one variable, e.g.
    ``x = sympy.Symbol("x"); act = activations.from_sympy(x * sympy.tanh(sympy.log(1 + sympy.exp(x))))``.
    Use it as ``Dense(10, activation=act)``; it is saved with the model as a formula tree."""
    return SympyActivation(formula, symbol, name)


def get(identifier: Any) -> Callable[..., Node]:
    """The activation function for a name, a function, a config dict, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise InputError(f"unknown activation {identifier!r}; valid names: {', '.join(sorted(_BY_NAME))}")
        return _BY_NAME[identifier]
    if isinstance(identifier, dict):
        return ser.deserialize("activation", identifier)
    if callable(identifier):
        return identifier
    raise InputError(f"could not interpret activation {identifier!r}")


def serialize(activation: Callable[..., Node]) -> Any:
    """A name for a built-in activation, a config dict for a sympy one, else the function's name."""
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return name
    if isinstance(activation, SympyActivation):
        return ser.serialize(activation)
    return getattr(activation, "__name__", repr(activation))


def deserialize(config: Any, custom_objects: Mapping[str, Any] | None = None) -> Callable[..., Node]:
    """The inverse of :func:`serialize` (custom functions by name through ``custom_objects``)."""
    if isinstance(config, str) and config not in _BY_NAME:
        return ser.lookup("activation", config, custom_objects)
    if isinstance(config, dict):
        return ser.deserialize("activation", config, custom_objects)
    return get(config)
