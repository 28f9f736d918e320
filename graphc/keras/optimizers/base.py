"""``Optimizer``: builds the graph of one update step (Keras 3's ``apply`` semantics).

The learning rate and the iteration counter are shared variables, so changing the learning
rate (``optimizer.learning_rate = 0.01``, callbacks) never recompiles. :meth:`update_graph`
returns the ``(shared, new value)`` pairs of one step, in this order of computation, as Keras 3:
clip gradients (clipnorm / clipvalue / global_clipnorm), apply weight decay, the optimizer's
update rule (learning rate ``schedule(iterations)`` or the variable), constraints on the
updated weights, then ``iterations += 1``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphc.errors import InputError
from graphc.frontend import ops
from graphc.frontend.variables import get_value, set_value, shared
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.optimizers.schedules import LearningRateSchedule, deserialize as deserialize_schedule

Update = tuple[Node, Node]


def _clip_by_norm(g: Node, clip: float) -> Node:
    l2sum = ops.sum(ops.square(g))
    pred = ops.greater(l2sum, 0.0)
    safe = ops.where(pred, l2sum, ops.ones_like(l2sum))
    norm = ops.where(pred, ops.sqrt(safe), l2sum)
    return ops.divide(ops.multiply(g, clip), ops.maximum(norm, clip))


class LearningRate(float):
    """The current learning rate: a float that also writes back to its optimizer.

    ``float(opt.learning_rate)``, arithmetic and comparisons work as on a float;
    ``.assign(v)`` / ``.set_value(v)`` change the optimizer's learning-rate variable (what
    ``keras.backend.set_value`` and callbacks do), ``.numpy()`` / ``.get_value()`` read it,
    ``.variable`` is the shared node itself.
    """

    def __new__(cls, value: float, optimizer: "Optimizer"):
        obj = super().__new__(cls, value)
        obj._optimizer = optimizer
        return obj

    def assign(self, value: Any) -> None:
        self._optimizer.learning_rate = value

    set_value = assign

    def get_value(self) -> np.ndarray:
        return np.asarray(self._optimizer.learning_rate, dtype="float32")

    def numpy(self) -> np.ndarray:
        return self.get_value()

    @property
    def variable(self) -> Node | None:
        return self._optimizer._lr_var

    @property
    def dtype(self) -> str:
        return "float32"

    @property
    def shape(self) -> tuple:
        return ()


class Optimizer:
    """Base class: subclasses define ``_slots`` (names of per-variable state) and
    ``_update_rule(g, v, slots, lr, step) -> (new_v, {slot: new})``."""

    _slots: tuple[str, ...] = ()
    _slot_init: Mapping[str, float] = {}

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None, loss_scale_factor: Any = None,
                 gradient_accumulation_steps: Any = None, name: str | None = None, lr: float | None = None,
                 decay: float | None = None, **kwargs: Any):
        if kwargs:
            raise InputError(f"{type(self).__name__}: unknown argument(s) {sorted(kwargs)}")
        if lr is not None:
            learning_rate = lr
        if sum(x is not None for x in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise InputError(f"{type(self).__name__}: only one of clipnorm, clipvalue and global_clipnorm can be set")
        self.name = name or type(self).__name__.lower()
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.use_ema = use_ema
        self._schedule: LearningRateSchedule | None = None
        if isinstance(learning_rate, dict):
            learning_rate = deserialize_schedule(learning_rate)
        if isinstance(learning_rate, LearningRateSchedule) or (callable(learning_rate) and
                                                                not isinstance(learning_rate, (int, float))):
            self._schedule = learning_rate
            self._lr_var = None
        else:
            self._lr_var = shared(np.float32(learning_rate), name=f"{self.name}/learning_rate")
        self._iterations = shared(np.int64(0), name=f"{self.name}/iterations")
        self._slot_vars: dict[int, dict[str, Node]] = {}
        self._slot_order: list[Node] = []
        self._exclude: set[str] = set()
        self._extra_vars: list[Node] = []

    # ------------------------------------------------------------------ learning rate, state
    @property
    def iterations(self) -> Node:
        """The step counter (an int64 shared variable; ``.get_value()`` reads it)."""
        return self._iterations

    @property
    def learning_rate(self) -> LearningRate:
        """The current learning rate, a float (the schedule's value at the current step) that
        can also be assigned through (see :class:`LearningRate`)."""
        if self._schedule is not None:
            return LearningRate(float(self._schedule(int(get_value(self._iterations)))), self)
        return LearningRate(float(get_value(self._lr_var)), self)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if self._schedule is not None:
            raise TypeError(f"{type(self).__name__}: the learning rate is a schedule "
                            f"({type(self._schedule).__name__}) and cannot be set")
        if isinstance(value, LearningRateSchedule):
            raise TypeError("set a schedule when creating the optimizer, not afterwards")
        if isinstance(value, Node):
            value = get_value(value)
        set_value(self._lr_var, np.float32(float(np.asarray(value))))

    lr = learning_rate

    @property
    def variables(self) -> list[Node]:
        """The optimizer's state: iterations, the learning rate (unless scheduled), then slots."""
        out = [self._iterations] + ([self._lr_var] if self._lr_var is not None else [])
        return out + self._extra_vars + self._slot_order

    def get_weights(self) -> list[np.ndarray]:
        return [get_value(v) for v in self.variables]

    def set_weights(self, values: Sequence[np.ndarray]) -> None:
        vs = self.variables
        if len(values) != len(vs):
            raise InputError(f"{self.name}: set_weights got {len(values)} arrays, the optimizer has {len(vs)} "
                             "variables (build it on the model's weights first)")
        for v, a in zip(vs, values):
            set_value(v, np.asarray(a))

    def exclude_from_weight_decay(self, var_list: Sequence[Node] = (), var_names: Sequence[str] = ()) -> None:
        """Do not decay these variables (matched by node or by a substring of the name)."""
        self._exclude |= {str(v.name) for v in var_list} | set(var_names)

    def build(self, var_list: Sequence[Node]) -> None:
        """Create the slot variables of ``var_list`` (once per variable)."""
        for v in var_list:
            if id(v) in self._slot_vars:
                continue
            slots = {}
            for s in self._slot_names():
                init = self._slot_init.get(s, 0.0)
                slots[s] = shared(np.full(tuple(v.shape), init, dtype=v.dtype), name=f"{self.name}/{v.name}_{s}")
                self._slot_order.append(slots[s])
            self._slot_vars[id(v)] = slots

    def _slot_names(self) -> tuple[str, ...]:
        return self._slots

    # ------------------------------------------------------------------ the update graph
    def _current_lr(self) -> Node:
        if self._schedule is not None:
            return ops.cast(ops.as_tensor(self._schedule(self._iterations)), "float32")
        return self._lr_var

    def _clip(self, grads: list[Node]) -> list[Node]:
        if self.clipnorm is not None:
            return [_clip_by_norm(g, float(self.clipnorm)) for g in grads]
        if self.global_clipnorm is not None:
            total = ops.sqrt(sum((ops.sum(ops.square(g)) for g in grads[1:]), ops.sum(ops.square(grads[0]))))
            scale = ops.multiply(float(self.global_clipnorm),
                                 ops.minimum(ops.divide(1.0, total), 1.0 / float(self.global_clipnorm)))
            scale = ops.add(scale, ops.subtract(total, total))
            return [ops.multiply(g, ops.cast(scale, g.dtype)) for g in grads]
        if self.clipvalue is not None:
            c = float(self.clipvalue)
            return [ops.clip(g, -c, c) for g in grads]
        return grads

    def _pre_step(self, lr: Node, step: Node) -> tuple[list[Update], dict[str, Node]]:
        """Per-step state updated before the variables (Nadam's u_product); returns its updates
        and values the rule may read."""
        return [], {}

    def _update_rule(self, g: Node, v: Node, slots: dict[str, Node], lr: Node, step: Node,
                     extra: dict[str, Node]) -> tuple[Node, dict[str, Node]]:
        raise NotImplementedError

    def update_graph(self, grads: Sequence[Node], variables: Sequence[Node],
                     constraints: Sequence[Callable[[Node], Node] | None] | None = None) -> list[Update]:
        """The (shared, new value) pairs of one optimizer step on ``variables``."""
        variables = list(variables)
        if not variables:
            return []
        self.build(variables)
        grads = self._clip([ops.cast(g, v.dtype) for g, v in zip(grads, variables)])
        lr = self._current_lr()
        step = ops.cast(ops.add(self._iterations, np.int64(1)), "float32")
        updates, extra = self._pre_step(lr, step)
        for i, (g, v) in enumerate(zip(grads, variables)):
            cur = v
            lr_v = ops.cast(lr, v.dtype)
            if self.weight_decay and not any(x in str(v.name) for x in self._exclude):
                cur = ops.subtract(cur, ops.multiply(ops.multiply(cur, float(self.weight_decay)), lr_v))
            slots = self._slot_vars[id(v)]
            new_v, new_slots = self._update_rule(g, cur, slots, lr_v, ops.cast(step, v.dtype), extra)
            c = constraints[i] if constraints else None
            if c is not None:
                new_v = c(new_v)
            updates.append((v, new_v))
            updates.extend((slots[k], val) for k, val in new_slots.items())
        updates.append((self._iterations, ops.add(self._iterations, np.int64(1))))
        return updates

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        lr: Any = ser.serialize(self._schedule) if self._schedule is not None else float(self.learning_rate)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> "Optimizer":
        cfg = dict(config)
        if isinstance(cfg.get("learning_rate"), dict):
            cfg["learning_rate"] = deserialize_schedule(cfg["learning_rate"], custom_objects)
        return cls(**cfg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} learning_rate={self.learning_rate}>"
