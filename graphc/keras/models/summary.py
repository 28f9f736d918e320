"""``model.summary()``: a table of layers, output shapes and parameter counts."""
from __future__ import annotations

from typing import Any

import numpy as np


def _shape_of(layer: Any) -> str:
    try:
        return str(layer.output_shape)
    except (AttributeError, IndexError):
        return "?"


def summary_lines(model: Any, width: int = 80) -> list[str]:
    """The lines ``summary()`` prints."""
    cols = [int(width * 0.45), int(width * 0.33), width - int(width * 0.45) - int(width * 0.33)]
    kind = "Sequential" if type(model).__name__ == "Sequential" else "Functional" if model._is_functional else type(model).__name__

    def row(a: str, b: str, c: str) -> str:
        return f"{a:<{cols[0]}}{b:<{cols[1]}}{c:>{cols[2]}}"

    lines = [f'Model: "{model.name}" ({kind})', "_" * width, row("Layer (type)", "Output Shape", "Param #"),
             "=" * width]
    layers = model.layers if model._is_functional or type(model).__name__ == "Sequential" else model._layers
    for i, layer in enumerate(layers):
        lines.append(row(f"{layer.name} ({type(layer).__name__})"[:cols[0] - 1], _shape_of(layer)[:cols[1] - 1],
                         f"{layer.count_params():,}"))
        if i < len(layers) - 1:
            lines.append("_" * width)
    total = model.count_params()
    trainable = int(sum(int(np.prod(n.shape)) for n in model.trainable_weights))
    lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * width]
    return lines
