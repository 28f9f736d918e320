"""``Progbar``: the text progress bar that ``fit``/``evaluate``/``predict`` print (Keras's format)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Sequence, TextIO

import numpy as np


def _format_value(v: object) -> str:
    try:
        f = float(np.mean(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f" {v}"
    return f" {f:.4f}" if abs(f) > 1e-3 else f" {f:.4e}"


def format_time(seconds: float, unit: str = "step") -> str:
    """``1s/step``, ``12ms/step`` or ``40us/step`` for the time of one unit."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """A progress bar, as ``keras.utils.Progbar``.

    ``target`` is the number of steps (None if unknown). ``verbose=1`` redraws one line in
    place with ``\\r`` (``12/50 [=====>....] - ETA: 3s - loss: 0.4321``) and ends it with the
    total time and the time per step; ``verbose=2`` prints one line when finished; 0 is silent.
    Values named in ``stateful_metrics`` are shown as given; the others are averaged over the
    steps seen so far (Keras's rule). ``stateful_metrics=None`` averages every value, ``"all"``
    shows every value as given.
    """

    def __init__(self, target: int | None, width: int = 30, verbose: int = 1, interval: float = 0.05,
                 stateful_metrics: Iterable[str] | str | None = None, unit_name: str = "step",
                 file: TextIO | None = None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._all_stateful = stateful_metrics == "all"
        self.stateful_metrics = set() if stateful_metrics in (None, "all") else set(stateful_metrics)  # type: ignore[arg-type]
        self._file = file
        self._values: dict[str, object] = {}
        self._values_order: list[str] = []
        self._seen_so_far = 0
        self._start = time.monotonic()
        self._last_update = 0.0
        self._total_width = 0
        self._finished = False

    @property
    def file(self) -> TextIO:
        return self._file if self._file is not None else sys.stdout

    def update(self, current: int, values: Sequence[tuple[str, object]] | None = None,
               finalize: bool | None = None) -> None:
        """Show progress ``current`` (steps done) with ``(name, value)`` pairs."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self._all_stateful or k in self.stateful_metrics:
                self._values[k] = v
            else:
                base = max(current - self._seen_so_far, 1)
                prev = self._values.get(k)
                if isinstance(prev, list):
                    prev[0] += float(np.mean(v)) * base  # type: ignore[arg-type]
                    prev[1] += base
                else:
                    self._values[k] = [float(np.mean(v)) * base, base]  # type: ignore[arg-type]
        self._seen_so_far = current
        now = time.monotonic()
        if self.verbose == 1:
            if not finalize and now - self._last_update < self.interval:
                return
            self._draw(current, now, finalize)
        elif self.verbose == 2 and finalize and not self._finished:
            elapsed = now - self._start
            count = f"{current}/{self.target}" if self.target else f"{current}"
            line = f"{count} - {elapsed:.0f}s - {format_time(elapsed / max(current, 1), self.unit_name)}"
            self.file.write(line + self._values_text() + "\n")
            self.file.flush()
            self._finished = True
        self._last_update = now

    def add(self, n: int, values: Sequence[tuple[str, object]] | None = None) -> None:
        """Advance by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    def _values_text(self) -> str:
        out = ""
        for k in self._values_order:
            v = self._values[k]
            out += f" - {k}:" + (_format_value(v[0] / max(1, v[1])) if isinstance(v, list) else _format_value(v))
        return out

    def _draw(self, current: int, now: float, finalize: bool) -> None:
        if self.target is not None:
            digits = len(str(self.target))
            bar = f"{current:>{digits}}/{self.target} ["
            filled = int(self.width * min(current / self.target, 1.0)) if self.target else self.width
            if filled > 0:
                bar += "=" * (filled - 1) + (">" if current < self.target else "=")
            bar += "." * (self.width - filled) + "]"
        else:
            bar = f"{current:7d}/Unknown"
        elapsed = now - self._start
        per_step = elapsed / current if current else 0.0
        if finalize or self.target is None:
            info = f" - {elapsed:.0f}s {format_time(per_step, self.unit_name)}"
        else:
            eta = per_step * (self.target - current)
            eta_text = (f"{int(eta) // 3600}:{(int(eta) % 3600) // 60:02d}:{int(eta) % 60:02d}" if eta > 3600
                        else f"{int(eta) // 60}:{int(eta) % 60:02d}" if eta > 60 else f"{eta:.0f}s")
            info = f" - ETA: {eta_text}"
        line = bar + info + self._values_text()
        pad = max(self._total_width - len(line), 0)
        self._total_width = len(line)
        self.file.write("\r" + line + " " * pad + ("\n" if finalize else ""))
        self.file.flush()
        if finalize:
            self._finished = True
