"""Turning what ``fit``/``evaluate``/``predict`` are given into batches of NumPy arrays.

Accepted: arrays, lists/tuples/dicts of arrays (several inputs or outputs, dicts by Input or
output name), and Python generators or other iterables (and Sequence-like objects with
``__len__``/``__getitem__``) yielding ``x``, ``(x, y)`` or ``(x, y, sample_weight)``.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from graphc.errors import InputError, ShapeError

Batch = tuple[list[np.ndarray], list[np.ndarray] | None, list[np.ndarray | None] | None]


def is_array_like(x: Any) -> bool:
    """NumPy arrays, lists/tuples/dicts of arrays, numbers."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return True
    if isinstance(x, dict):
        return all(is_array_like(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(isinstance(v, np.ndarray) or np.isscalar(v) or isinstance(v, (list, tuple)) for v in x)
    return hasattr(x, "__array__")


def to_list(x: Any, names: Sequence[str], what: str, model_name: str) -> list[np.ndarray]:
    """``x`` as a list of arrays aligned with ``names`` (the model's inputs or outputs)."""
    if isinstance(x, Mapping):
        missing = [n for n in names if n not in x]
        if missing:
            raise InputError(f"model {model_name!r}: {what} dict is missing {missing}; it has keys {sorted(x)} and "
                             f"the model's {what}s are {list(names)}")
        return [np.asarray(x[n]) for n in names]
    if isinstance(x, (list, tuple)) and len(names) > 1:
        if len(x) != len(names):
            raise InputError(f"model {model_name!r} has {len(names)} {what}s ({', '.join(names)}), got a list of "
                             f"{len(x)} arrays")
        return [np.asarray(v) for v in x]
    if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
        return [np.asarray(x[0])]
    if len(names) > 1:
        raise InputError(f"model {model_name!r} has {len(names)} {what}s ({', '.join(names)}); pass a list or a dict "
                         f"of arrays, got a single {type(x).__name__}")
    return [np.asarray(x)]


def num_samples(arrays: Sequence[np.ndarray], model_name: str) -> int:
    """The common first dimension of ``arrays`` (an error names the mismatch)."""
    sizes = {int(a.shape[0]) if a.ndim else 1 for a in arrays}
    if len(sizes) > 1:
        raise ShapeError(f"model {model_name!r}: the arrays have different numbers of samples: "
                         f"{[tuple(a.shape) for a in arrays]}")
    return sizes.pop() if sizes else 0


class ArrayData:
    """Batches over in-memory arrays (optionally shuffled each epoch)."""

    def __init__(self, xs: list[np.ndarray], ys: list[np.ndarray] | None, sws: list[np.ndarray | None] | None,
                 batch_size: int, shuffle: bool, steps: int | None, model_name: str):
        self.xs, self.ys, self.sws = xs, ys, sws
        self.n = num_samples(xs + (ys or []) + [s for s in (sws or []) if s is not None], model_name)
        self.batch_size, self.shuffle = int(batch_size), bool(shuffle)
        self.steps = steps if steps is not None else (self.n + self.batch_size - 1) // self.batch_size

    def epoch(self) -> Iterator[Batch]:
        for batch, _ in self.groups(1):
            yield batch

    def groups(self, per_call: int) -> Iterator[tuple[Batch, int]]:
        """The batches of one epoch as ``epoch`` gives them, up to ``per_call`` consecutive full
        batches at a time as one batch of all their rows, with their count (a last, short
        batch always comes alone, with count 1)."""
        idx = np.random.permutation(self.n) if self.shuffle else None
        start = step = 0
        bs = self.batch_size
        while step < self.steps:
            if start >= self.n:
                if idx is not None:
                    idx = np.random.permutation(self.n)
                start = 0
            count = max(1, min(per_call, self.steps - step, (self.n - start) // bs))
            rows = count * bs
            sl = idx[start:start + rows] if idx is not None else slice(start, start + rows)
            start += rows
            step += count
            yield ([a[sl] for a in self.xs], None if self.ys is None else [a[sl] for a in self.ys],
                   None if self.sws is None else [None if s is None else s[sl] for s in self.sws]), count


def split_batch(item: Any) -> tuple[Any, Any, Any]:
    """``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` from a generator."""
    if isinstance(item, tuple):
        if len(item) == 1:
            return item[0], None, None
        if len(item) == 2:
            return item[0], item[1], None
        if len(item) == 3:
            return item
        raise InputError(f"a data generator must yield x, (x, y) or (x, y, sample_weight), got a tuple of {len(item)}")
    return item, None, None


class IterableData:
    """Batches from a generator, an iterable or a Sequence-like object (``len`` and indexing)."""

    def __init__(self, source: Any, steps: int | None):
        self.source = source
        self.sequence = hasattr(source, "__getitem__") and hasattr(source, "__len__") and not isinstance(source, (list, tuple))
        self.steps = steps if steps is not None else (len(source) if hasattr(source, "__len__") else None)
        self._iter: Iterator[Any] | None = None

    def epoch(self) -> Iterator[Any]:
        if self.sequence:
            for i in range(self.steps if self.steps is not None else len(self.source)):
                yield split_batch(self.source[i])
            if hasattr(self.source, "on_epoch_end"):
                self.source.on_epoch_end()
            return
        if self.steps is None or self._iter is None:
            self._iter = iter(self.source)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                item = next(self._iter)
            except StopIteration:
                self._iter = None
                if self.steps is not None and count == 0:
                    raise InputError("the data generator is exhausted: it yielded no batches "
                                     "(give steps_per_epoch, or make it loop forever)") from None
                return
            count += 1
            yield split_batch(item)


def class_weights_to_sample(y: np.ndarray, class_weight: Mapping[int, float]) -> np.ndarray:
    """Per-sample weights from ``class_weight`` (one-hot labels use their argmax)."""
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        cls = np.argmax(y, axis=-1)
    else:
        cls = np.rint(y.reshape(y.shape[0], -1)[:, 0]).astype(np.int64)
    out = np.ones(cls.shape, dtype="float32")
    for k, w in class_weight.items():
        out[cls == int(k)] = float(w)
    return out.reshape(y.shape[0], -1)[:, 0] if out.ndim > 1 else out
