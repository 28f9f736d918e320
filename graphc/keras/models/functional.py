"""The functional graph of a model: which layer calls it runs, in which order, and its config.

:func:`map_graph` follows ``_keras_history`` back from the outputs and orders layers as
Keras 3 does (by depth from the outputs, deepest first; ties in traversal order), so
``model.layers`` and ``model.get_weights()`` come in Keras's order.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

from graphc.errors import InputError, ModelFileError
from graphc.keras import serialization as ser
from graphc.keras.layers.base import CallNode, Layer, where
from graphc.keras.tensor import KerasTensor, flatten, map_structure


def _node_of(t: KerasTensor) -> CallNode:
    layer, idx, _ = t._keras_history
    return layer._inbound_nodes[idx]


def map_graph(inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor]) -> tuple[list[CallNode], list[Layer]]:
    """The call nodes between ``inputs`` and ``outputs`` in execution order, and the layers in
    Keras's order (InputLayers included)."""
    input_ids = {id(t) for t in inputs}
    finished: set[int] = set()
    in_progress: set[int] = set()
    order: list[CallNode] = []
    op_index: dict[int, int] = {}
    layers_by_id: dict[int, Layer] = {}

    def visit(t: KerasTensor) -> None:
        node = _node_of(t)
        if id(node) in finished:
            return
        if id(node) in in_progress:
            raise InputError(f"the model graph has a cycle at layer {node.layer.name!r}")
        if id(node.layer) not in op_index:
            op_index[id(node.layer)] = len(op_index)
            layers_by_id[id(node.layer)] = node.layer
        in_progress.add(id(node))
        if not node.is_input and id(t) not in input_ids:
            for x in node.input_tensors:
                visit(x)
        elif node.is_input and id(t) not in input_ids:
            raise InputError(f"graph disconnected: the outputs need the input {t.name!r} "
                             f"(shape {t.shape}), which is not among the model's inputs "
                             f"{[i.name for i in inputs]}{where()}")
        finished.add(id(node))
        in_progress.discard(id(node))
        order.append(node)

    for o in outputs:
        if not isinstance(o, KerasTensor):
            raise InputError(f"model outputs must be symbolic tensors from layers, got {o!r}{where()}")
        visit(o)
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(order):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        if node.output_tensors and all(id(t) in input_ids for t in node.output_tensors):
            continue  # a model input: what produced it is outside the model
        for parent in node.parent_nodes:
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:
        layer = t._keras_history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            op_index[id(layer)] = -1
            layers_by_id[id(layer)] = layer
    by_depth: dict[int, list[Layer]] = defaultdict(list)
    for lid, d in layer_depth.items():
        by_depth[d].append(layers_by_id[lid])
    layers: list[Layer] = []
    for d in sorted(by_depth, reverse=True):
        layers.extend(sorted(by_depth[d], key=lambda l: op_index[id(l)]))
    exec_nodes = [n for n in order if not (n.is_input or all(id(t) in input_ids for t in n.output_tensors))]
    return exec_nodes, layers


# ----------------------------------------------------------------------------- config
def _own_nodes(layer: Layer, nodes: set[int]) -> list[CallNode]:
    return [n for n in layer._inbound_nodes if id(n) in nodes]


def functional_config(model: Any) -> dict[str, Any]:
    """Keras-style functional config: layers with their inbound calls, input and output refs."""
    node_ids = {id(n) for n in model._exec_nodes} | {id(_node_of(t)) for t in model.inputs}
    index: dict[int, tuple[str, int]] = {}
    for layer in model._layers:
        for i, n in enumerate(_own_nodes(layer, node_ids)):
            index[id(n)] = (layer.name, i)

    def ref(t: Any) -> Any:
        if isinstance(t, KerasTensor):
            name, i = index[id(_node_of(t))]
            return {"__keras_tensor__": [name, i, t._keras_history[2]]}
        if t is None or isinstance(t, (str, int, float, bool)):
            return t
        raise InputError(f"model {model.name!r}: cannot serialize the call argument {t!r}")

    layers = []
    for layer in model._layers:
        inbound = []
        if type(layer).__name__ != "InputLayer":
            for n in _own_nodes(layer, node_ids):
                inbound.append({"args": map_structure(ref, list(n.args)), "kwargs": map_structure(ref, n.kwargs)})
        layers.append({"class_name": type(layer).__name__, "config": layer.get_config(), "name": layer.name,
                       "inbound_nodes": inbound})

    def out_ref(t: KerasTensor) -> list:
        name, i = index[id(_node_of(t))]
        return [name, i, t._keras_history[2]]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": [out_ref(t) for t in model.inputs], "output_layers": [out_ref(t) for t in model.outputs],
            "input_names": list(model._input_keys) if model._input_keys else None}


def rebuild_functional(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> tuple[list, list]:
    """Recreate the layers of a functional config and replay their calls; returns (inputs, outputs)."""
    from graphc.keras.layers import deserialize as deserialize_layer
    try:
        layer_cfgs = list(config["layers"])
        input_refs, output_refs = config["input_layers"], config["output_layers"]
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"model config is missing {e}") from None
    layers: dict[str, Layer] = {}
    produced: dict[tuple[str, int], Any] = {}
    pending: list[tuple[Layer, int, dict]] = []
    with ser.custom_object_scope(custom_objects):
        for lc in layer_cfgs:
            layer = deserialize_layer({"class_name": lc["class_name"], "config": lc["config"]}, custom_objects)
            layers[lc["name"]] = layer
            if lc["class_name"] == "InputLayer":
                produced[(lc["name"], 0)] = layer.output
            for i, nd in enumerate(lc.get("inbound_nodes", [])):
                pending.append((layer, i, nd))

    def resolve(x: Any) -> Any:
        if isinstance(x, dict) and "__keras_tensor__" in x:
            name, ni, ti = x["__keras_tensor__"]
            out = produced[(name, ni)]
            flat = flatten(out)
            return flat[ti]
        if isinstance(x, dict):
            return {k: resolve(v) for k, v in x.items()}
        if isinstance(x, list):
            return [resolve(v) for v in x]
        return x

    def ready(x: Any) -> bool:
        if isinstance(x, dict) and "__keras_tensor__" in x:
            name, ni, _ = x["__keras_tensor__"]
            return (name, ni) in produced
        if isinstance(x, dict):
            return all(ready(v) for v in x.values())
        if isinstance(x, list):
            return all(ready(v) for v in x)
        return True

    while pending:
        progress = False
        for item in list(pending):
            layer, i, nd = item
            if (i == 0 or (layer.name, i - 1) in produced) and ready(nd["args"]) and ready(nd["kwargs"]):
                args = resolve(nd["args"])
                produced[(layer.name, i)] = layer(*args, **resolve(nd["kwargs"]))
                pending.remove(item)
                progress = True
        if not progress:
            raise ModelFileError("model config: layer calls refer to tensors no layer produces "
                                 f"({', '.join(l.name for l, _, _ in pending)})")

    def get(r: Sequence[Any]) -> Any:
        key = (r[0], int(r[1]))
        if key not in produced:
            raise ModelFileError(f"model config refers to unknown layer output {list(r)}")
        return flatten(produced[key])[int(r[2])]

    return [get(r) for r in input_refs], [get(r) for r in output_refs]
