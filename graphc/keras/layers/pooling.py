"""Pooling and reshaping-of-space layers: MaxPooling1D/2D, AveragePooling1D/2D,
GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D, ZeroPadding1D/2D, Cropping1D/2D,
UpSampling1D/2D. All are compositions of primitive ops (see :mod:`graphc.frontend.nn`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import nn, ops
from graphc.ir.node import Node
from graphc.keras import serialization as ser
from graphc.keras.layers.base import InputSpec, Layer, where
from graphc.keras.layers.conv import normalize_data_format, normalize_padding, normalize_tuple


class _Pool(Layer):
    rank = 2
    _fn = staticmethod(nn.max_pool)

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", cls)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, self.rank, "strides", cls)
        self.padding = normalize_padding(padding, cls)
        self.data_format = normalize_data_format(data_format, cls)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs: Node) -> Node:
        x = nn.to_channels_last(inputs) if self.data_format == "channels_first" else inputs
        y = type(self)._fn(x, self.pool_size, self.strides, self.padding, what=f"layer {self.name!r} ({type(self).__name__})")
        return nn.to_channels_first(y) if self.data_format == "channels_first" else y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"pool_size": list(self.pool_size), "strides": list(self.strides), "padding": self.padding,
                    "data_format": self.data_format})
        return cfg


@ser.register("layer")
class MaxPooling2D(_Pool):
    """Max over ``pool_size`` windows of ``(batch, rows, cols, channels)``."""
    rank = 2
    _fn = staticmethod(nn.max_pool)


@ser.register("layer")
class MaxPooling1D(_Pool):
    """Max over ``pool_size`` windows of ``(batch, steps, channels)``."""
    rank = 1
    _fn = staticmethod(nn.max_pool)


@ser.register("layer")
class AveragePooling2D(_Pool):
    """Mean over ``pool_size`` windows (padding not counted with ``padding="same"``)."""
    rank = 2
    _fn = staticmethod(nn.avg_pool)


@ser.register("layer")
class AveragePooling1D(_Pool):
    """Mean over ``pool_size`` windows of ``(batch, steps, channels)``."""
    rank = 1
    _fn = staticmethod(nn.avg_pool)


class _GlobalPool(Layer):
    rank = 2
    _max = False

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs: Node) -> Node:
        axes = tuple(range(1, 1 + self.rank)) if self.data_format == "channels_last" else tuple(range(2, 2 + self.rank))
        return (ops.max if self._max else ops.mean)(inputs, axis=axes, keepdims=self.keepdims)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return cfg


@ser.register("layer")
class GlobalAveragePooling2D(_GlobalPool):
    """Mean over the spatial axes: ``(batch, rows, cols, channels) -> (batch, channels)``."""
    rank, _max = 2, False


@ser.register("layer")
class GlobalAveragePooling1D(_GlobalPool):
    """Mean over time: ``(batch, steps, channels) -> (batch, channels)``."""
    rank, _max = 1, False


@ser.register("layer")
class GlobalMaxPooling2D(_GlobalPool):
    """Max over the spatial axes."""
    rank, _max = 2, True


@ser.register("layer")
class GlobalMaxPooling1D(_GlobalPool):
    """Max over time."""
    rank, _max = 1, True


def _pairs(v: Any, rank: int, name: str, cls: str) -> tuple[tuple[int, int], ...]:
    """Keras's padding/cropping argument: an int, a tuple of ``rank`` ints, or ``rank`` pairs."""
    if isinstance(v, (int, np.integer)):
        return ((int(v), int(v)),) * rank
    v = tuple(v)
    if rank == 1 and len(v) == 2 and all(isinstance(a, (int, np.integer)) for a in v):
        return ((int(v[0]), int(v[1])),)
    if len(v) != rank:
        raise InputError(f"{cls}: {name} must be an int, {rank} ints or {rank} (before, after) pairs, got {v}{where()}")
    out = []
    for a in v:
        if isinstance(a, (int, np.integer)):
            out.append((int(a), int(a)))
        else:
            a = tuple(int(b) for b in a)
            if len(a) != 2:
                raise InputError(f"{cls}: {name} entries must be ints or (before, after) pairs, got {v}{where()}")
            out.append(a)
    if any(b < 0 for p in out for b in p):
        raise InputError(f"{cls}: {name} must be non-negative, got {v}{where()}")
    return tuple(out)


class _Spatial(Layer):
    rank = 2

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, type(self).__name__)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _axes(self) -> list[int]:
        first = 1 if self.data_format == "channels_last" else 2
        return list(range(first, first + self.rank))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        if self.rank > 1:
            cfg["data_format"] = self.data_format
        return cfg


class _ZeroPadding(_Spatial):
    def __init__(self, padding: Any = 1, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.padding = _pairs(padding, self.rank, "padding", type(self).__name__)

    def call(self, inputs: Node) -> Node:
        widths = [(0, 0)] * inputs.ndim
        for a, p in zip(self._axes(), self.padding):
            widths[a] = p
        return ops.pad(inputs, widths)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["padding"] = [list(p) for p in self.padding]
        return cfg


@ser.register("layer")
class ZeroPadding2D(_ZeroPadding):
    """Zeros around the rows and columns: ``padding`` as Keras (int, (rows, cols) or pairs)."""
    rank = 2


@ser.register("layer")
class ZeroPadding1D(_ZeroPadding):
    """Zeros before/after the time axis."""
    rank = 1

    def __init__(self, padding: Any = 1, **kwargs: Any):
        kwargs.pop("data_format", None)
        super().__init__(padding=padding, **kwargs)


class _Cropping(_Spatial):
    def __init__(self, cropping: Any = 0, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = _pairs(cropping, self.rank, "cropping", type(self).__name__)

    def call(self, inputs: Node) -> Node:
        idx = [slice(None)] * inputs.ndim
        for a, (lo, hi) in zip(self._axes(), self.cropping):
            d = inputs.shape[a]
            if isinstance(d, int) and lo + hi >= d:
                raise ShapeError(f"layer {self.name!r} ({type(self).__name__}): cropping {self.cropping} removes "
                                 f"everything from an input of shape {tuple(inputs.shape)}{where()}")
            idx[a] = slice(lo, d - hi)
        return ops.getitem(inputs, tuple(idx))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["cropping"] = [list(p) for p in self.cropping]
        return cfg


@ser.register("layer")
class Cropping2D(_Cropping):
    """Remove rows and columns at the borders."""
    rank = 2


@ser.register("layer")
class Cropping1D(_Cropping):
    """Remove steps at the start and end of the time axis."""
    rank = 1

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any):
        kwargs.pop("data_format", None)
        super().__init__(cropping=cropping, **kwargs)


class _UpSampling(_Spatial):
    def __init__(self, size: Any = 2, data_format: str | None = None, interpolation: str = "nearest", **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.size = normalize_tuple(size, self.rank, "size", type(self).__name__)
        if interpolation != "nearest":
            raise InputError(f"{type(self).__name__}: only interpolation='nearest' is supported, got "
                             f"{interpolation!r}{where()}")
        self.interpolation = interpolation

    def call(self, inputs: Node) -> Node:
        x = nn.to_channels_last(inputs) if self.data_format == "channels_first" else inputs
        y = nn.upsample_nearest(x, self.size)
        return nn.to_channels_first(y) if self.data_format == "channels_first" else y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["size"] = list(self.size)
        if self.rank > 1:
            cfg["interpolation"] = self.interpolation
        return cfg


@ser.register("layer")
class UpSampling2D(_UpSampling):
    """Repeat rows and columns ``size`` times (nearest neighbour)."""
    rank = 2


@ser.register("layer")
class UpSampling1D(_UpSampling):
    """Repeat each step ``size`` times."""
    rank = 1

    def __init__(self, size: Any = 2, **kwargs: Any):
        kwargs.pop("data_format", None)
        super().__init__(size=size, **kwargs)


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D

__all__ = ["MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D",
           "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D",
           "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D"]
