"""``plot_history``: training curves (one panel per metric, training vs validation) to a PNG."""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from graphc.errors import InputError
from graphc.keras.utils._raster import Canvas, text_size

TRAIN_COLOR = (31, 119, 180)
VAL_COLOR = (255, 127, 14)
GRID = (225, 225, 225)
_SKIP = ("lr", "learning_rate")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float, step: float) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.1e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    return f"{v:.{decimals}f}"


def _series(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping):
        raise InputError(f"plot_history expects a History or a dict of lists, got {type(history).__name__}")
    series = {str(k): [float(np.mean(v)) for v in vals] for k, vals in hist.items()}
    n = max((len(v) for v in series.values()), default=0)
    epochs = list(getattr(history, "epoch", []) or [])
    if len(epochs) != n:
        epochs = list(range(n))
    return series, [e + 1 for e in epochs]


def _panel(c: Canvas, x0: int, y0: int, w: int, h: int, name: str, epochs: list[int],
           lines: list[tuple[str, list[float], tuple[int, int, int]]]) -> None:
    left, right, top, bottom = x0 + 64, x0 + w - 16, y0 + 34, y0 + h - 44
    values = [v for _, vals, _ in lines for v in vals if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - max(abs(lo) * 0.1, 0.5), hi + max(abs(hi) * 0.1, 0.5)
    pad = (hi - lo) * 0.06
    lo, hi = lo - pad, hi + pad
    e0, e1 = epochs[0], max(epochs[-1], epochs[0] + 1)

    def px(e: float) -> float:
        return left + (e - e0) / (e1 - e0) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    yt = nice_ticks(lo, hi, 5)
    for v in yt:
        c.line(left, py(v), right, py(v), GRID)
        c.line(left - 4, py(v), left, py(v), (0, 0, 0))
        c.text(left - 7, py(v), _label(v, yt[1] - yt[0] if len(yt) > 1 else 1.0), anchor="rm")
    xt = [t for t in nice_ticks(e0, e1, 6) if float(t).is_integer() and e0 <= t <= e1] or [e0]
    for t in xt:
        c.line(px(t), bottom, px(t), bottom + 4, (0, 0, 0))
        c.text(px(t), bottom + 7, str(int(t)), anchor="ct")
    c.rect(left, top, right, bottom)
    c.text((left + right) / 2, y0 + 10, name, scale=2, anchor="ct")
    c.text((left + right) / 2, bottom + 22, "epoch", anchor="ct")
    c.text(x0 + 8, (top + bottom) / 2, name, anchor="lm", rotate=True)
    for label, vals, color in lines:
        segment: list[tuple[float, float]] = []
        for e, v in zip(epochs, vals):
            if math.isfinite(v):
                segment.append((px(e), py(v)))
            else:
                c.polyline(segment, color, width=2)
                segment = []
        c.polyline(segment, color, width=2)
        for x, y in ((px(e), py(v)) for e, v in zip(epochs, vals) if math.isfinite(v)):
            c.rect(x - 2, y - 2, x + 2, y + 2, outline=None, fill=color)
    # legend in the corner that hides the fewest points
    lw, lh = max(text_size(label)[0] for label, _, _ in lines) + 36, 14 * len(lines) + 6
    pts_list = []
    for _, vals, _ in lines:  # the points and the segments between them
        xy = [(px(e), py(v)) for e, v in zip(epochs, vals) if math.isfinite(v)]
        for (xa, ya), (xb, yb) in zip(xy, xy[1:] + xy[-1:]):
            pts_list += [(xa + (xb - xa) * t, ya + (yb - ya) * t) for t in np.linspace(0, 1, 12)]
    pts = np.array(pts_list)
    corners = [(right - lw - 6, top + 6), (right - lw - 6, bottom - lh - 6), (left + 6, top + 6),
               (left + 6, bottom - lh - 6)]

    def hidden(corner: tuple[float, float]) -> int:
        if not len(pts):
            return 0
        return int(np.sum((pts[:, 0] >= corner[0] - 8) & (pts[:, 0] <= corner[0] + lw + 8)
                          & (pts[:, 1] >= corner[1] - 8) & (pts[:, 1] <= corner[1] + lh + 8)))
    lx, ly = min(corners, key=hidden)
    c.rect(lx, ly, lx + lw, ly + lh, outline=(160, 160, 160), fill=(255, 255, 255))
    for i, (label, _, color) in enumerate(lines):
        yy = ly + 10 + 14 * i
        c.line(lx + 6, yy, lx + 26, yy, color, width=2)
        c.text(lx + 32, yy, label, anchor="lm")


def plot_history(history: Any, path: str | os.PathLike, metrics: Sequence[str] | None = None,
                 panel_size: tuple[int, int] = (480, 360), columns: int = 2) -> str:
    """Draw the curves of a :class:`~graphc.keras.callbacks.History` (or its ``history``
    dict) to a PNG at ``path``: one panel per metric (``loss`` first), the training values
    in blue and the ``val_`` values in orange, against the epoch. ``metrics`` picks the panels
    (default: every recorded metric but the learning rate). Returns the path.
    """
    series, epochs = _series(history)
    if not epochs:
        raise InputError("plot_history: the history is empty (no epoch was recorded)")
    names = [k for k in series if not k.startswith("val_") and k not in _SKIP]
    names += [k[4:] for k in series if k.startswith("val_") and k[4:] not in series]  # validation-only
    if metrics is not None:
        unknown = [m for m in metrics if m not in series and "val_" + m not in series]
        if unknown:
            raise InputError(f"plot_history: no metric {unknown} in the history (it has {sorted(series)})")
        names = list(metrics)
    names.sort(key=lambda k: k != "loss")
    cols = max(1, min(columns, len(names)))
    rows = math.ceil(len(names) / cols)
    w, h = panel_size
    canvas = Canvas(w * cols, h * rows)
    for i, name in enumerate(names):
        lines = [(k, series[k], color) for k, color in ((name, TRAIN_COLOR), ("val_" + name, VAL_COLOR))
                 if k in series]
        _panel(canvas, (i % cols) * w, (i // cols) * h, w, h, name, epochs, lines)
    path = os.fspath(path)
    canvas.save(path)
    return path
