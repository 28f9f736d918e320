"""``Layer``: the base class of every layer and model, with weights, building and calling.

A layer is called three ways:

- on :class:`KerasTensor` s (the functional API): the layer is traced once on graph nodes to
  learn its output shapes, and the call is recorded as a :class:`CallNode` so a ``Model`` can
  replay the graph later (for training or inference, on fresh placeholders);
- on graph nodes (``graphc.Node``): it builds graph ops directly (what models do inside their
  compiled functions, and what a subclassed layer's ``call`` does with its sublayers);
- on NumPy arrays: it builds, compiles and runs a small function (eager use, for convenience).

Weights are ``graphc.shared`` nodes (``layer.kernel`` is one), so a subclass's ``call`` can use
them in expressions directly; their values live outside the graph.
"""
from __future__ import annotations

import inspect
import re
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.variables import get_value, set_value, shared
from graphc.ir.node import Node, set_label, user_location
from graphc.keras import activations, config, constraints as constraints_mod, initializers as init_mod
from graphc.keras import regularizers as reg_mod, serialization as ser
from graphc.keras.tensor import KerasTensor, flatten, keras_shape, map_structure, placeholder_for

_name_uids: dict[str, int] = {}


def reset_name_uids() -> None:
    """Forget the names handed out so far (``keras.backend.clear_session`` calls this)."""
    _name_uids.clear()


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``, ... (as Keras names layers)."""
    n = _name_uids.get(base, 0)
    _name_uids[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def snake_case(name: str) -> str:
    """``MyLayer`` -> ``my_layer``."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def where(location: str | None = None) -> str:
    """`` (at file:line)`` for error messages, pointing at the user's code."""
    loc = location or user_location()
    return f" (at {loc})" if loc else ""


# ----------------------------------------------------------------------------- call context
_context: list[dict[str, Any]] = []


@contextmanager
def call_context(training: bool | None) -> Iterator[dict[str, Any]]:
    """Within it, layers called without ``training=`` see this training flag, and losses
    added with ``add_loss`` are collected in ``ctx["losses"]``."""
    ctx = {"training": training, "losses": []}
    _context.append(ctx)
    try:
        yield ctx
    finally:
        _context.pop()


def current_training() -> bool:
    """The training flag of the innermost call context (False outside any)."""
    for ctx in reversed(_context):
        if ctx["training"] is not None:
            return bool(ctx["training"])
    return False


class Weight:
    """A layer weight: its shared node and what the optimizer must know about it."""

    __slots__ = ("node", "name", "trainable", "regularizer", "constraint", "layer")

    def __init__(self, node: Node, name: str, trainable: bool, regularizer: Any, constraint: Any, layer: "Layer"):
        self.node, self.name, self.trainable = node, name, trainable
        self.regularizer, self.constraint, self.layer = regularizer, constraint, layer


class InputSpec:
    """What a layer accepts: a rank (``ndim``/``min_ndim``) and fixed sizes (``axes``)."""

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: Mapping[int, int] | None = None,
                 dtype: str | None = None, shape: Sequence[int | None] | None = None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})
        self.dtype, self.shape = dtype, None if shape is None else tuple(shape)


class CallNode:
    """One call of a layer on KerasTensors: what a functional model replays."""

    def __init__(self, layer: "Layer", args: tuple, kwargs: dict, outputs: Any):
        self.layer, self.args, self.kwargs, self.outputs = layer, args, kwargs, outputs
        self.input_tensors = [t for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)]
        self.output_tensors = [t for t in flatten(outputs) if isinstance(t, KerasTensor)]

    @property
    def parent_nodes(self) -> list["CallNode"]:
        out = []
        for t in self.input_tensors:
            layer, idx, _ = t._keras_history
            out.append(layer._inbound_nodes[idx])
        return out

    @property
    def is_input(self) -> bool:
        return not self.input_tensors


# Config entries holding a serialized activation (Dense, Conv, recurrent layers, ...).
ACTIVATION_KEYS = ("activation", "recurrent_activation")


@ser.register("layer")
class Layer:
    """Base class of layers: override ``build(input_shape)`` to create weights with
    ``add_weight`` and ``call(inputs, training=None)`` to compute the outputs from graph nodes."""

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: str | None = None,
                 activity_regularizer: Any = None, input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None, input_dim: int | None = None,
                 batch_size: int | None = None, **kwargs: Any):
        for k in ("autocast", "dynamic", "weights", "input_length"):
            kwargs.pop(k, None)
        if kwargs:
            raise InputError(f"{type(self).__name__}: unknown keyword argument(s) {sorted(kwargs)}{where()}")
        object.__setattr__(self, "_layers", [])
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.dtype = dtype if isinstance(dtype, str) else config.floatx()
        self.activity_regularizer = reg_mod.get(activity_regularizer)
        self._weights: list[Weight] = []
        self._inbound_nodes: list[CallNode] = []
        self.built = False
        self.input_spec: InputSpec | None = None
        self._build_input_shape: Any = None
        self.supports_masking = False
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None
        self._call_accepts_training = "training" in inspect.signature(self.call).parameters

    # ------------------------------------------------------------------ attribute tracking
    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and hasattr(self, "_layers"):
            items = value if isinstance(value, (list, tuple)) else [value]
            for v in items:
                if isinstance(v, Layer) and v is not self and all(v is not l for l in self._layers):
                    self._layers.append(v)
        object.__setattr__(self, name, value)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value

    # ------------------------------------------------------------------ weights
    def add_weight(self, name: str | None = None, shape: Sequence[int] = (), dtype: str | None = None,
                   initializer: Any = None, regularizer: Any = None, trainable: bool = True,
                   constraint: Any = None, **kwargs: Any) -> Node:
        """Create a weight (a shared node) initialised by ``initializer`` and track it."""
        shape = tuple(int(d) for d in (shape or ()))
        dtype = dtype or self.dtype
        if initializer is None:
            initializer = "glorot_uniform" if "float" in dtype else "zeros"
        init = init_mod.get(initializer)
        value = np.asarray(init(shape, dtype=dtype), dtype=dtype)
        if value.shape != shape:
            raise ShapeError(f"layer {self.name!r}: initializer for weight {name!r} returned shape {value.shape}, "
                             f"expected {shape}")
        name = name or f"variable_{len(self._weights)}"
        node = shared(value, name=f"{self.name}/{name}")
        self._weights.append(Weight(node, name, bool(trainable), reg_mod.get(regularizer),
                                    constraints_mod.get(constraint), self))
        return node

    def _all_weight_records(self) -> list[Weight]:
        own = [w for w in self._weights if w.trainable] + [w for w in self._weights if not w.trainable]
        out, seen = [], set()
        for w in own + [w for layer in self._layers for w in layer._all_weight_records()]:
            if id(w.node) not in seen:
                seen.add(id(w.node))
                out.append(w)
        return out

    def _trainable_records(self) -> list[Weight]:
        if not self.trainable:
            return []
        own = [w for w in self._weights if w.trainable]
        return own + [w for layer in self._layers for w in layer._trainable_records()]

    @property
    def weights(self) -> list[Node]:
        """All weights (trainable first, then non-trainable, then those of sublayers)."""
        return [w.node for w in self._all_weight_records()]

    variables = weights

    @property
    def trainable_weights(self) -> list[Node]:
        """Weights the optimizer updates (none if ``trainable`` is False)."""
        seen, out = set(), []
        for w in self._trainable_records():
            if id(w.node) not in seen:
                seen.add(id(w.node))
                out.append(w.node)
        return out

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[Node]:
        """Weights the optimizer leaves alone."""
        t = {id(n) for n in self.trainable_weights}
        return [n for n in self.weights if id(n) not in t]

    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights' values, in ``weights`` order."""
        return [get_value(n) for n in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Overwrite the weights' values (same order and shapes as ``get_weights``)."""
        nodes = self.weights
        weights = list(weights)
        if len(weights) != len(nodes):
            raise InputError(f"layer {self.name!r}: set_weights got {len(weights)} arrays but the layer has "
                             f"{len(nodes)} weights ({', '.join(str(n.name) for n in nodes)})")
        for n, w in zip(nodes, weights):
            w = np.asarray(w)
            if tuple(w.shape) != tuple(n.shape):
                raise ShapeError(f"layer {self.name!r}: weight {n.name!r} has shape {tuple(n.shape)}, "
                                 f"set_weights got {tuple(w.shape)}{where()}")
            set_value(n, w.astype(n.dtype))

    def count_params(self) -> int:
        """The number of scalars in all weights."""
        return int(sum(int(np.prod(n.shape)) for n in self.weights))

    @property
    def losses(self) -> list[Node]:
        """Weight regularization penalties of this layer and its sublayers (graph nodes)."""
        return [w.regularizer(w.node) for w in self._all_weight_records() if w.regularizer is not None]

    def add_loss(self, loss: Node) -> None:
        """Add a loss tensor computed in ``call`` to the training loss."""
        if _context:
            _context[-1]["losses"].append(ops.as_tensor(loss))

    # ------------------------------------------------------------------ building and calling
    def build(self, input_shape: Any) -> None:
        """Create the weights, given the input shape(s) (batch dim None). Default: none."""

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Compute the outputs from graph nodes. Default: the identity."""
        return inputs

    def _maybe_build(self, input_shapes: Any) -> None:
        if not self.built:
            self._build_input_shape = input_shapes
            self.build(input_shapes)
            self.built = True

    def _check_input_spec(self, nodes: Any) -> None:
        spec = self.input_spec
        if spec is None:
            return
        for x in flatten(nodes):
            if not isinstance(x, Node):
                continue
            shape = keras_shape(x.shape)
            if spec.ndim is not None and x.ndim != spec.ndim:
                raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of rank {spec.ndim}, "
                                 f"got shape {shape}{where()}")
            if spec.min_ndim is not None and x.ndim < spec.min_ndim:
                raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of rank >= "
                                 f"{spec.min_ndim}, got shape {shape}{where()}")
            for axis, size in spec.axes.items():
                d = x.shape[axis] if -x.ndim <= axis < x.ndim else None
                if isinstance(d, int) and d != size:
                    want = list(shape)
                    want[axis] = size
                    raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input shape "
                                     f"{tuple(want)} (axis {axis} of size {size}), but it was called on an input "
                                     f"of shape {shape}{where()}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            if "inputs" not in kwargs:
                raise InputError(f"layer {self.name!r} called without inputs{where()}")
            args = (kwargs.pop("inputs"),)
        flat = flatten((args, kwargs))
        if any(isinstance(t, KerasTensor) for t in flat):
            return self._call_symbolic(args, kwargs)
        if any(isinstance(t, Node) for t in flat):
            return self._call_graph(args, kwargs)
        return self._call_eager(args, kwargs)

    def _call_graph(self, args: tuple, kwargs: dict) -> Any:
        kwargs = dict(kwargs)
        training = kwargs.pop("training", None)
        kwargs.pop("mask", None)
        inputs = args[0]
        self._maybe_build(map_structure(lambda n: keras_shape(n.shape) if isinstance(n, Node) else n, inputs))
        self._check_input_spec(inputs)
        with call_context(training) as ctx:
            if self._call_accepts_training:
                kwargs["training"] = current_training()
            outputs = self.call(*args, **kwargs)
            if self.activity_regularizer is not None:
                for o in flatten(outputs):
                    if isinstance(o, Node):
                        self.add_loss(self.activity_regularizer(o))
            losses = ctx["losses"]
        if _context:
            _context[-1]["losses"].extend(losses)
        for o in flatten(outputs):
            if isinstance(o, Node):
                set_label(o, self.name)
        return outputs

    def _call_symbolic(self, args: tuple, kwargs: dict) -> Any:
        node_args = map_structure(lambda t: t._node if isinstance(t, KerasTensor) else t, (args, kwargs))
        try:
            with call_context(False):
                out_nodes = self._call_graph(*node_args)
        except (ShapeError, InputError):
            raise
        index = len(self._inbound_nodes)
        counter = iter(range(1 << 30))

        def wrap(n: Any) -> Any:
            if isinstance(n, Node):
                i = next(counter)
                return KerasTensor(n, (self, index, i), name=f"{self.name}_out{i}" if i else self.name)
            return n
        outputs = map_structure(wrap, out_nodes)
        self._inbound_nodes.append(CallNode(self, args, kwargs, outputs))
        return outputs

    def _call_eager(self, args: tuple, kwargs: dict) -> Any:
        import graphc as gc
        inputs = args[0]
        arrays = [np.asarray(a) for a in flatten(inputs)]
        holders = [gc.placeholder(a.shape, "float32" if a.dtype == np.float64 else a.dtype.name) for a in arrays]
        it = iter(holders)
        structured = map_structure(lambda a: next(it), inputs)
        out = self._call_graph((structured,) + tuple(args[1:]), kwargs)
        outs = flatten(out)
        fn = gc.function(holders, outs, mode=config.run_mode())
        values = iter(fn(*arrays))
        return map_structure(lambda n: next(values), out)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape(s) for ``input_shape`` (found by tracing ``call``)."""
        holders = map_structure(lambda s: placeholder_for(s, self.dtype), input_shape, is_leaf=_is_shape)
        with call_context(False):
            out = self._call_graph((holders,), {})
        return map_structure(lambda n: keras_shape(n.shape), out)

    # ------------------------------------------------------------------ graph information
    def _node_attr(self, attr: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has never been called on a symbolic input, "
                                 f"so it has no {attr}")
        node = self._inbound_nodes[0]
        if attr == "input":
            ins = node.input_tensors
            return ins[0] if len(ins) == 1 else ins
        outs = node.output_tensors
        return outs[0] if len(outs) == 1 else outs

    @property
    def input(self) -> Any:
        return self._node_attr("input")

    @property
    def output(self) -> Any:
        return self._node_attr("output")

    @property
    def input_shape(self) -> Any:
        return map_structure(lambda t: t.shape, self.input)

    @property
    def output_shape(self) -> Any:
        return map_structure(lambda t: t.shape, self.output)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (weights not included)."""
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        if self.activity_regularizer is not None:
            cfg["activity_regularizer"] = reg_mod.serialize(self.activity_regularizer)
        return cfg

    @classmethod
    def from_config(cls, config_: Mapping[str, Any]) -> "Layer":
        """A new layer from ``get_config``'s output (serialized activations are restored)."""
        cfg = dict(config_)
        for key in ACTIVATION_KEYS:
            if key in cfg:
                cfg[key] = activations.deserialize(cfg[key])
        return cls(**cfg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(d is None or isinstance(d, (int, np.integer)) for d in x)
