"""``Sequential``: a plain stack of layers, built as a functional graph once the input shape
is known (from an ``Input``/``InputLayer``, a first layer's ``input_shape``, ``build`` or the data)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from graphc.errors import InputError
from graphc.keras import serialization as ser
from graphc.keras.layers.base import Layer, where
from graphc.keras.layers.core import Input, InputLayer
from graphc.keras.models.model import Model
from graphc.keras.tensor import KerasTensor


@ser.register("layer")
class Sequential(Model):
    """``Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10)])`` or ``.add``."""

    def __init__(self, layers: Sequence[Layer] | None = None, trainable: bool = True, name: str | None = None):
        super().__init__(trainable=trainable, name=name)
        self._seq: list[Layer] = []
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or an ``Input``) to the stack."""
        if isinstance(layer, KerasTensor):
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise InputError(f"Sequential.add needs a layer, got {layer!r}{where()}")
        if isinstance(layer, InputLayer):
            if self._seq or self._input_layer is not None:
                raise InputError(f"Sequential {self.name!r}: an Input can only come first{where()}")
            self._input_layer = layer
            self._rebuild()
            return
        if any(l is layer for l in self._seq):
            raise InputError(f"Sequential {self.name!r}: layer {layer.name!r} is already in the model{where()}")
        self._seq.append(layer)
        if self._input_layer is None and len(self._seq) == 1 and layer._batch_input_shape is not None:
            self._input_layer = InputLayer(batch_shape=layer._batch_input_shape, dtype=layer.dtype)
            self._rebuild()
        elif self._is_functional:
            out = layer(self.outputs[0])
            self._set_graph(out)
        else:
            object.__setattr__(self, "_layers", list(self._seq))

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._seq:
            raise InputError(f"Sequential {self.name!r} has no layers to pop")
        layer = self._seq.pop()
        self._rebuild()
        return layer

    def _rebuild(self) -> None:
        if self._input_layer is None:
            self._is_functional = False
            object.__setattr__(self, "_layers", list(self._seq))
            return
        x = self._input_layer.output
        for layer in self._seq:
            x = layer(x)
            if isinstance(x, (list, tuple)):
                raise InputError(f"Sequential {self.name!r}: layer {layer.name!r} returns several tensors; "
                                 "use the functional API")
        self._set_graph(x)

    def _set_graph(self, out: KerasTensor) -> None:
        self._init_graph(self._input_layer.output, out)
        object.__setattr__(self, "_layers", [self._input_layer] + list(self._seq))

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the InputLayer (as in Keras)."""
        return list(self._seq)

    def build(self, input_shape: Any = None) -> None:
        """Build for inputs of ``input_shape`` (batch dim included, may be None)."""
        if self._is_functional:
            return
        if input_shape is None:
            raise InputError(f"Sequential {self.name!r}: build() needs an input shape{where()}")
        self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._rebuild()

    def _ensure_built_from(self, x: Any) -> None:
        if self._is_functional:
            return
        import numpy as np
        arr = np.asarray(x[0] if isinstance(x, (list, tuple)) else next(iter(x.values())) if isinstance(x, Mapping) else x)
        dtype = "float32" if arr.dtype.kind == "f" else arr.dtype.name
        self._input_layer = InputLayer(batch_shape=(None,) + arr.shape[1:], dtype=dtype)
        self._rebuild()

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if self._is_functional:
            return super().call(inputs, training=training)
        x = inputs
        for layer in self._seq:
            x = layer(x)
        return x

    def get_config(self) -> dict[str, Any]:
        layers = []
        if self._input_layer is not None:
            layers.append({"class_name": "InputLayer", "config": self._input_layer.get_config()})
        layers += [{"class_name": type(l).__name__ if type(l).__name__ != "Model" else "Functional",
                    "config": l.get_config()} for l in self._seq]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> "Sequential":
        from graphc.keras.layers import deserialize
        model = cls(name=config.get("name"))
        with ser.custom_object_scope(custom_objects):
            for lc in config.get("layers", []):
                model.add(deserialize(lc, custom_objects))
        model.trainable = config.get("trainable", True)
        return model
