"""The optimizers, with Keras 3's update formulas and defaults."""
from __future__ import annotations

from typing import Any

import numpy as np

from graphc.frontend import ops
from graphc.frontend.variables import shared
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.optimizers.base import Optimizer, Update

_reg = ser.register


@_reg("optimizer", "sgd")
class SGD(Optimizer):
    """``m = momentum * m - lr * g``; ``v += m`` (Nesterov: ``v += momentum * m - lr * g``);
    without momentum ``v -= lr * g``."""

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0.0 <= float(momentum) <= 1.0:
            from graphc.errors import InputError
            raise InputError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum != 0.0 else ()

    def _update_rule(self, g, v, slots, lr, step, extra):
        if self.momentum == 0.0:
            return ops.subtract(v, ops.multiply(g, lr)), {}
        m = slots["momentum"]
        new_m = ops.add(ops.multiply(ops.negative(g), lr), ops.multiply(m, self.momentum))
        if self.nesterov:
            return ops.add(v, ops.add(ops.multiply(ops.negative(g), lr), ops.multiply(new_m, self.momentum))), \
                {"momentum": new_m}
        return ops.add(v, new_m), {"momentum": new_m}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@_reg("optimizer", "rmsprop")
class RMSprop(Optimizer):
    """``s = rho * s + (1 - rho) * g^2``; ``v -= lr * g / sqrt(s + eps)`` (centered and momentum variants)."""

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def _slot_names(self):
        return ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + (("average_gradient",) if self.centered else ())

    def _update_rule(self, g, v, slots, lr, step, extra):
        rho = self.rho
        vel = ops.add(ops.multiply(rho, slots["velocity"]), ops.multiply(1.0 - rho, ops.square(g)))
        new = {"velocity": vel}
        if self.centered:
            avg = ops.add(ops.multiply(rho, slots["average_gradient"]), ops.multiply(1.0 - rho, g))
            new["average_gradient"] = avg
            denom = ops.add(ops.subtract(vel, ops.square(avg)), self.epsilon)
        else:
            denom = ops.add(vel, self.epsilon)
        inc = ops.divide(ops.multiply(lr, g), ops.sqrt(denom))
        if self.momentum > 0:
            mom = ops.add(ops.multiply(self.momentum, slots["momentum"]), inc)
            new["momentum"] = mom
            return ops.subtract(v, mom), new
        return ops.subtract(v, inc), new

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


@_reg("optimizer", "adagrad")
class Adagrad(Optimizer):
    """``a += g^2``; ``v -= lr * g / sqrt(a + eps)``."""

    _slots = ("accumulator",)

    def __init__(self, learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)
        self._slot_init = {"accumulator": self.initial_accumulator_value}

    def _update_rule(self, g, v, slots, lr, step, extra):
        acc = ops.add(slots["accumulator"], ops.square(g))
        return ops.subtract(v, ops.divide(ops.multiply(lr, g), ops.sqrt(ops.add(acc, self.epsilon)))), \
            {"accumulator": acc}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


@_reg("optimizer", "adadelta")
class Adadelta(Optimizer):
    """Adadelta with ``rho`` and ``epsilon`` inside the square roots, scaled by ``lr``."""

    _slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _update_rule(self, g, v, slots, lr, step, extra):
        rho, eps = self.rho, self.epsilon
        acc_g = ops.add(ops.multiply(rho, slots["accumulated_grad"]), ops.multiply(1.0 - rho, ops.square(g)))
        acc_d = slots["accumulated_delta_var"]
        delta = ops.negative(ops.divide(ops.multiply(ops.sqrt(ops.add(acc_d, eps)), g), ops.sqrt(ops.add(acc_g, eps))))
        new_d = ops.add(ops.multiply(rho, acc_d), ops.multiply(1.0 - rho, ops.square(delta)))
        return ops.add(v, ops.multiply(lr, delta)), {"accumulated_grad": acc_g, "accumulated_delta_var": new_d}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@_reg("optimizer", "adam")
class Adam(Optimizer):
    """``m += (g - m)(1 - b1)``; ``u += (g^2 - u)(1 - b2)``;
    ``v -= m * lr * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(u) + eps)`` (``amsgrad``: max of u so far)."""

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def _slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def _update_rule(self, g, v, slots, lr, step, extra):
        b1, b2 = self.beta_1, self.beta_2
        b1p = ops.power(np.float32(b1), step)
        b2p = ops.power(np.float32(b2), step)
        alpha = ops.divide(ops.multiply(lr, ops.sqrt(ops.subtract(1.0, b2p))), ops.subtract(1.0, b1p))
        m = ops.add(slots["momentum"], ops.multiply(ops.subtract(g, slots["momentum"]), 1.0 - b1))
        u = ops.add(slots["velocity"], ops.multiply(ops.subtract(ops.square(g), slots["velocity"]), 1.0 - b2))
        new = {"momentum": m, "velocity": u}
        if self.amsgrad:
            u = ops.maximum(slots["velocity_hat"], u)
            new["velocity_hat"] = u
        return ops.subtract(v, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(u), self.epsilon))), new

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


@_reg("optimizer", "adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay ``v -= v * weight_decay * lr`` before the Adam step."""

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, **kwargs)


@_reg("optimizer", "nadam")
class Nadam(Optimizer):
    """Adam with Nesterov momentum (Keras 3's schedule ``u_t = b1 (1 - 0.5 * 0.96^t)``)."""

    _slots = ("momentum", "velocity")

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self._u_product = shared(np.float32(1.0), name=f"{self.name}/u_product")
        self._extra_vars = [self._u_product]

    def _pre_step(self, lr: Node, step: Node) -> tuple[list[Update], dict[str, Node]]:
        u_t = ops.multiply(self.beta_1, ops.subtract(1.0, ops.multiply(0.5, ops.power(np.float32(0.96), step))))
        new_prod = ops.multiply(self._u_product, u_t)
        return [(self._u_product, new_prod)], {"u_product": new_prod}

    def _update_rule(self, g, v, slots, lr, step, extra):
        b1, b2 = self.beta_1, self.beta_2
        u_t = ops.multiply(b1, ops.subtract(1.0, ops.multiply(0.5, ops.power(np.float32(0.96), step))))
        u_t1 = ops.multiply(b1, ops.subtract(1.0, ops.multiply(0.5, ops.power(np.float32(0.96), ops.add(step, 1.0)))))
        up_t = ops.cast(extra["u_product"], v.dtype)
        up_t1 = ops.multiply(up_t, u_t1)
        b2p = ops.power(np.float32(b2), step)
        m = ops.add(slots["momentum"], ops.multiply(ops.subtract(g, slots["momentum"]), 1.0 - b1))
        u = ops.add(slots["velocity"], ops.multiply(ops.subtract(ops.square(g), slots["velocity"]), 1.0 - b2))
        m_hat = ops.add(ops.divide(ops.multiply(u_t1, m), ops.subtract(1.0, up_t1)),
                        ops.divide(ops.multiply(ops.subtract(1.0, u_t), g), ops.subtract(1.0, up_t)))
        v_hat = ops.divide(u, ops.subtract(1.0, b2p))
        new_v = ops.subtract(v, ops.divide(ops.multiply(m_hat, lr), ops.add(ops.sqrt(v_hat), self.epsilon)))
        return new_v, {"momentum": m, "velocity": u}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
