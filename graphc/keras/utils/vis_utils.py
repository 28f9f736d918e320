"""``plot_model`` and ``model_to_dot``: the layer graph of a model, as a PNG or Graphviz text.

The graph is read from the model's public structure: ``model.layers`` in order and, for
functional models, each layer's ``_inbound_nodes`` (call nodes whose ``input_tensors`` carry
``_keras_history = (layer, node_index, tensor_index)``, Keras's own bookkeeping). A model
where no such links are found (a ``Sequential`` built without an input, or any object with
just a ``layers`` list) is drawn as a chain in the order of ``model.layers``.
"""
from __future__ import annotations

import os
from typing import Any

from graphc.errors import InputError
from graphc.keras.utils._raster import Canvas, text_size

BOX_FILL = (232, 240, 254)
BOX_LINE = (60, 80, 120)
ARROW = (70, 70, 70)


def layer_graph(model: Any) -> tuple[list[Any], list[tuple[int, int]]]:
    """``(layers, edges)``: the model's layers and ``(i, j)`` pairs meaning layer ``i`` feeds
    layer ``j`` (indices into ``layers``)."""
    layers = list(getattr(model, "layers", None) or [])
    if not layers:
        raise InputError(f"plot_model: {type(model).__name__} has no layers to draw (is it built?)")
    index = {id(layer): i for i, layer in enumerate(layers)}
    edges: list[tuple[int, int]] = []
    for j, layer in enumerate(layers):
        for node in getattr(layer, "_inbound_nodes", None) or []:
            for t in getattr(node, "input_tensors", None) or []:
                history = getattr(t, "_keras_history", None)
                i = index.get(id(history[0])) if history else None
                if i is not None and i != j and (i, j) not in edges:
                    edges.append((i, j))
    if not edges:
        edges = [(i, i + 1) for i in range(len(layers) - 1)]
    return layers, edges


def _shape_text(layer: Any, attr: str) -> str:
    try:
        shape = getattr(layer, attr)
    except Exception:  # noqa: BLE001 - an unbuilt layer has no shapes; show that instead
        return "?"
    return str(shape).replace("'", "")


def _labels(layer: Any, show_shapes: bool, show_dtype: bool, show_layer_names: bool) -> list[str]:
    kind = type(layer).__name__
    lines = [f"{layer.name}: {kind}" if show_layer_names and getattr(layer, "name", None) else kind]
    if show_dtype and getattr(layer, "dtype", None):
        lines[0] += f" ({layer.dtype})"
    if show_shapes:
        out_shape = _shape_text(layer, "output_shape")
        in_shape = _shape_text(layer, "input_shape")
        if in_shape in ("[]", "()", "?") and kind == "InputLayer":
            in_shape = out_shape  # an input layer's input is its output, as Keras draws it
        lines += [f"input:  {in_shape}", f"output: {out_shape}"]
    return lines


def model_to_dot(model: Any, show_shapes: bool = False, show_dtype: bool = False, show_layer_names: bool = True,
                 rankdir: str = "TB") -> str:
    """The layer graph as Graphviz DOT text (render it with ``dot -Tpng``)."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise InputError(f"rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")
    layers, edges = layer_graph(model)

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')
    out = [f'digraph "{esc(str(getattr(model, "name", "model")))}" {{', f"  rankdir={rankdir};",
           '  node [shape=box, style="rounded,filled", fillcolor="#e8f0fe", fontname="Helvetica"];']
    for i, layer in enumerate(layers):
        label = "\\n".join(esc(s) for s in _labels(layer, show_shapes, show_dtype, show_layer_names))
        out.append(f'  layer{i} [label="{label}"];')
    out += [f"  layer{i} -> layer{j};" for i, j in edges]
    out.append("}")
    return "\n".join(out) + "\n"


def _depths(n: int, edges: list[tuple[int, int]]) -> list[int]:
    depth = [0] * n
    for _ in range(n):
        changed = False
        for i, j in edges:
            if depth[j] < depth[i] + 1:
                depth[j] = depth[i] + 1
                changed = True
        if not changed:
            return depth
    raise InputError("plot_model: the layer graph has a cycle")


def plot_model(model: Any, to_file: str | os.PathLike = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 96, scale: int = 2) -> str:
    """Draw the model's layer graph: a PNG (built-in renderer, top to bottom, one row per
    depth) or, when ``to_file`` ends in ``.dot``/``.gv``, Graphviz text. Returns the path."""
    path = os.fspath(to_file)
    if path.endswith((".dot", ".gv")):
        with open(path, "w") as f:
            f.write(model_to_dot(model, show_shapes, show_dtype, show_layer_names, rankdir))
        return path
    layers, edges = layer_graph(model)
    depth = _depths(len(layers), edges)
    labels = [_labels(layer, show_shapes, show_dtype, show_layer_names) for layer in layers]
    pad, line_h = 8 * scale // 2, 11 * scale // 1
    sizes = [(max(text_size(s, scale)[0] for s in lines) + 2 * pad, len(lines) * line_h + 2 * pad - 3 * scale)
             for lines in labels]
    rows: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        rows.setdefault(d, []).append(i)
    gap_x, gap_y, margin = 24, 36 * scale // 2, 20
    row_h = [max(sizes[i][1] for i in rows[d]) for d in sorted(rows)]
    row_w = [sum(sizes[i][0] for i in rows[d]) + gap_x * (len(rows[d]) - 1) for d in sorted(rows)]
    width, height = max(row_w) + 2 * margin, sum(row_h) + gap_y * (len(rows) - 1) + 2 * margin
    boxes: dict[int, tuple[int, int, int, int]] = {}
    y = margin
    for r, d in enumerate(sorted(rows)):
        x = margin + (max(row_w) - row_w[r]) // 2
        for i in rows[d]:
            w, h = sizes[i]
            top = y + (row_h[r] - h) // 2
            boxes[i] = (x, top, x + w, top + h)
            x += w + gap_x
        y += row_h[r] + gap_y
    canvas = Canvas(width, height)
    for i, j in edges:
        (a0, _, a1, ab), (b0, bt, b1, _) = boxes[i], boxes[j]
        sx, ex = (a0 + a1) / 2, (b0 + b1) / 2
        canvas.line(sx, ab, ex, bt - 6 * scale // 2, ARROW, width=max(1, scale // 2))
        dx, dy = ex - sx, bt - ab
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        ux, uy, s = dx / norm, dy / norm, 5 * scale
        canvas.triangle([(ex, bt), (ex - s * ux - s * 0.6 * uy, bt - s * uy + s * 0.6 * ux),
                         (ex - s * ux + s * 0.6 * uy, bt - s * uy - s * 0.6 * ux)], ARROW)
    for i, (x0, y0, x1, y1) in boxes.items():
        canvas.rect(x0, y0, x1, y1, outline=BOX_LINE, fill=BOX_FILL, width=max(1, scale // 2))
        for k, s in enumerate(labels[i]):
            canvas.text(x0 + pad, y0 + pad + k * line_h, s, scale=scale, anchor="lt")
    canvas.save(path)
    return path
