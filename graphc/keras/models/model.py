"""``Model``: a functional graph of layers (``Model(inputs, outputs)``) or a subclass with its
own ``call``; both train with :class:`~graphc.keras.models.training.TrainingMixin`."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphc.errors import InputError
from graphc.frontend.variables import placeholder
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.layers.base import Layer, call_context, where
from graphc.keras.models.functional import functional_config, map_graph, rebuild_functional
from graphc.keras.models.training import TrainingMixin
from graphc.keras.tensor import KerasTensor, flatten, keras_shape


@ser.register("layer", "Functional")
class Model(TrainingMixin, Layer):
    """A trainable graph of layers.

    - ``Model(inputs, outputs)``: the functional API (inputs/outputs may be single tensors,
      lists, or dicts by name);
    - subclass ``Model``, create layers in ``__init__`` and define ``call(inputs, training=None)``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        inputs = kwargs.pop("inputs", args[0] if len(args) > 0 else None)
        outputs = kwargs.pop("outputs", args[1] if len(args) > 1 else None)
        kwargs.pop("jit_compile", None)
        Layer.__init__(self, **kwargs)
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._is_functional = False
        self._fn_cache: dict = {}
        self.compiled_functions = 0
        self._run_mode: str | None = None
        self._input_keys: list[str] | None = None
        self._output_keys: list[str] | None = None
        self._output_is_single = True
        self.inputs: list[KerasTensor] = []
        self.outputs: list[KerasTensor] = []
        if inputs is not None and outputs is not None:
            self._init_graph(inputs, outputs)
        elif inputs is not None or outputs is not None:
            raise InputError(f"Model needs both inputs and outputs{where()}")

    # ------------------------------------------------------------------ functional graph
    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        if isinstance(inputs, Mapping):
            self._input_keys = list(inputs)
            in_list = [inputs[k] for k in self._input_keys]
        else:
            in_list = flatten(inputs)
        for t in in_list:
            if not isinstance(t, KerasTensor):
                raise InputError(f"model inputs must come from keras.Input(...), got {t!r}{where()}")
        if isinstance(outputs, Mapping):
            self._output_keys = list(outputs)
            out_list = [outputs[k] for k in self._output_keys]
        else:
            out_list = flatten(outputs)
        self._output_is_single = isinstance(outputs, KerasTensor)
        self._output_was_list = isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = list(in_list), list(out_list)
        self._exec_nodes, layers = map_graph(self.inputs, self.outputs)
        object.__setattr__(self, "_layers", layers)
        self._is_functional = True
        self.built = True

    @property
    def layers(self) -> list[Layer]:
        """The model's layers (InputLayers included for functional models, as in Keras 3)."""
        return list(self._layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or index."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InputError(f"model {self.name!r} has no layer named {name!r}; its layers are "
                         f"{[l.name for l in self.layers]}")

    @property
    def input_names(self) -> list[str]:
        return self._input_keys or [t._keras_history[0].name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        if self._output_keys:
            return list(self._output_keys)
        if self._is_functional:
            return [t._keras_history[0].name for t in self.outputs]
        n = max(len(self.outputs), 1)
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]

    def _consumer_of(self, t: KerasTensor) -> str | None:
        for n in self._exec_nodes if self._is_functional else []:
            if any(x is t for x in n.input_tensors):
                return n.layer.name
        return None

    def _run_functional(self, input_nodes: Sequence[Node]) -> list[Node]:
        values: dict[int, Any] = {id(t): n for t, n in zip(self.inputs, input_nodes)}

        def sub(x: Any) -> Any:
            if isinstance(x, KerasTensor):
                return values[id(x)]
            if isinstance(x, dict):
                return {k: sub(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(sub(v) for v in x)
            return x

        for node in self._exec_nodes:
            out = node.layer._call_graph(sub(node.args), sub(node.kwargs))
            for t, o in zip(node.output_tensors, flatten(out)):
                values[id(t)] = o
        return [values[id(t)] for t in self.outputs]

    def _inputs_as_list(self, inputs: Any) -> list[Any]:
        if isinstance(inputs, Mapping):
            keys = self.input_names
            return [inputs[k] for k in keys]
        return flatten(inputs)

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Run the functional graph on graph nodes (subclasses override this)."""
        if not self._is_functional:
            raise NotImplementedError(f"model {self.name!r}: a subclassed Model must define call()")
        outs = self._run_functional(self._inputs_as_list(inputs))
        return self._structure_outputs(outs)

    def _structure_outputs(self, outs: Sequence[Any]) -> Any:
        if self._output_keys:
            return dict(zip(self._output_keys, outs))
        if self._output_is_single and len(outs) == 1:
            return outs[0]
        return list(outs)

    def _run_outputs(self, xs: Sequence[Node]) -> list[Node]:
        """The output nodes for placeholder inputs ``xs`` (training flag from the context)."""
        if self._is_functional:
            return self._run_functional(xs)
        arg = xs[0] if len(xs) == 1 else list(xs)
        return flatten(self._call_graph((arg,), {}))

    # ------------------------------------------------------------------ building subclassed models
    def _ensure_built_from(self, x: Any) -> None:
        if self._is_functional:
            return
        arrays = [np.asarray(a) for a in (x.values() if isinstance(x, Mapping) else flatten(x))]
        shapes = [(None,) + a.shape[1:] for a in arrays]
        dtypes = ["float32" if a.dtype.kind == "f" else a.dtype.name for a in arrays]
        self._build_symbolic(shapes if len(shapes) > 1 else shapes[0], dtypes)

    def build(self, input_shape: Any) -> None:
        """Build a subclassed model (or a Sequential) for inputs of ``input_shape``."""
        if self._is_functional:
            return
        self._build_symbolic(input_shape, None)

    def _build_symbolic(self, input_shape: Any, dtypes: Sequence[str] | None) -> None:
        from graphc.keras.layers.core import Input
        multi = isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (tuple, list))
        shapes = list(input_shape) if multi else [tuple(input_shape)]
        dtypes = list(dtypes) if dtypes else [self.dtype] * len(shapes)
        ins = [Input(batch_shape=tuple(s), dtype=d) for s, d in zip(shapes, dtypes)]
        self.inputs = ins
        self.built = True  # so that calling it below does not build again
        with call_context(False):
            nodes = self._call_graph((ins[0]._node if len(ins) == 1 else [t._node for t in ins],), {})
        self._sub_outputs = flatten(nodes)
        self.outputs = [_FakeOut(n, i) for i, n in enumerate(self._sub_outputs)]
        self._output_is_single = isinstance(nodes, Node)
        self._build_input_shape = input_shape
        self.built = True

    # ------------------------------------------------------------------ weights by layer
    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Callable[[str], Any] | None = None, **kwargs: Any) -> None:
        """Print a table of the layers, their output shapes and parameter counts."""
        from graphc.keras.models.summary import summary_lines
        out = print_fn or print
        for line in summary_lines(self, line_length or 80):
            out(line)

    # ------------------------------------------------------------------ config and saving
    def get_config(self) -> dict[str, Any]:
        if self._is_functional:
            return functional_config(self)
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._build_input_shape is not None:
            cfg["build_input_shape"] = _jsonable(self._build_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> "Model":
        if "layers" in config and "input_layers" in config:
            inputs, outputs = rebuild_functional(config, custom_objects)
            names = config.get("input_names")
            if names:
                inputs = dict(zip(names, inputs))
            model = cls(inputs=inputs, outputs=outputs if len(outputs) > 1 else outputs[0], name=config.get("name"))
            model.trainable = config.get("trainable", True)
            return model
        cfg = dict(config)
        build_shape = cfg.pop("build_input_shape", None)
        model = cls(**cfg)
        if build_shape is not None:
            model.build(_tupled(build_shape))
        return model

    def to_json(self, **kwargs: Any) -> str:
        """The model's architecture (no weights) as a JSON string."""
        return json.dumps({"class_name": _class_name(self), "config": self.get_config()}, **kwargs)

    def save(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        """Save architecture, weights, optimizer state and compile settings to one zip file
        (see graphc.keras.saving for the format)."""
        from graphc.keras.saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def export(self, path: str, **kwargs: Any) -> dict:
        """Compile this model ahead of time into an artifact directory (see graphc.export)."""
        from graphc.aot import export
        return export(self, path, **kwargs)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Save the weights only (``.weights.npz``)."""
        from graphc.keras.saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str, skip_mismatch: bool = False, **kwargs: Any) -> None:
        """Load weights saved by ``save_weights`` (or the weights inside a ``model.save`` file)."""
        from graphc.keras.saving import load_weights
        load_weights(self, filepath)


class _FakeOut:
    """An output description of a subclassed model built from data (shape and dtype only)."""

    def __init__(self, node: Node, index: int):
        self._node, self.shape, self.dtype = node, keras_shape(node.shape), node.dtype
        self.name = f"output_{index}" if index else "output"


def _class_name(model: Model) -> str:
    name = type(model).__name__
    return "Functional" if name == "Model" else name


def _jsonable(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _tupled(x: Any) -> Any:
    if isinstance(x, list) and x and isinstance(x[0], list):
        return [tuple(v) for v in x]
    return tuple(x)


Functional = Model
