"""Weight initializers (NumPy-side): ``init(shape, dtype) -> np.ndarray``.

With an int ``seed`` an initializer gives the same values at every call (as in Keras 3);
without one it draws from NumPy's global generator, so ``np.random.seed`` (or
``keras.utils.set_random_seed``) makes a model's initial weights reproducible.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from graphc.errors import InputError
from graphc.keras import serialization as ser

_register = ser.register


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype)`` and ``get_config``."""

    seed: int | None = None

    def _rng(self) -> Any:
        return np.random.default_rng(self.seed) if self.seed is not None else np.random

    def __call__(self, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Initializer":
        return cls(**config)


@_register("initializer", "zeros")
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype)


@_register("initializer", "ones")
class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype)


@_register("initializer", "constant")
class Constant(Initializer):
    """Every entry ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


@_register("initializer", "random_uniform", "uniform")
class RandomUniform(Initializer):
    """Uniform in ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = float(minval), float(maxval), seed

    def __call__(self, shape, dtype="float32"):
        return self._rng().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@_register("initializer", "random_normal", "normal")
class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def __call__(self, shape, dtype="float32"):
        return self._rng().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(rng: Any, stddev: float, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.normal(0.0, 1.0, size=shape)
    bad = np.abs(out) > 2.0
    while np.any(bad):
        out[bad] = rng.normal(0.0, 1.0, size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev


@_register("initializer", "truncated_normal")
class TruncatedNormal(Initializer):
    """Normal with ``mean`` and ``stddev``, redrawn beyond two standard deviations."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def __call__(self, shape, dtype="float32"):
        return (self.mean + _truncated_normal(self._rng(), self.stddev, tuple(shape))).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@_register("initializer", "variance_scaling")
class VarianceScaling(Initializer):
    """Keras's variance scaling: ``scale / fan`` variance, normal (truncated) or uniform."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise InputError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise InputError(f"VarianceScaling: unknown distribution {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = float(scale), mode, distribution, seed

    def __call__(self, shape, dtype="float32"):
        shape = tuple(int(d) for d in shape)
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            out = _truncated_normal(rng, math.sqrt(var) / 0.87962566103423978, shape)
        elif self.distribution == "untruncated_normal":
            out = rng.normal(0.0, math.sqrt(var), size=shape)
        else:
            limit = math.sqrt(3.0 * var)
            out = rng.uniform(-limit, limit, size=shape)
        return np.asarray(out).astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _variant(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self, seed: int | None = None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    cls = type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                          "__doc__": f"Variance scaling: scale {scale}, {mode}, {distribution}."})
    return cls


GlorotUniform = _register("initializer", "glorot_uniform")(_variant("GlorotUniform", 1.0, "fan_avg", "uniform"))
GlorotNormal = _register("initializer", "glorot_normal")(_variant("GlorotNormal", 1.0, "fan_avg", "truncated_normal"))
HeUniform = _register("initializer", "he_uniform")(_variant("HeUniform", 2.0, "fan_in", "uniform"))
HeNormal = _register("initializer", "he_normal")(_variant("HeNormal", 2.0, "fan_in", "truncated_normal"))
LecunUniform = _register("initializer", "lecun_uniform")(_variant("LecunUniform", 1.0, "fan_in", "uniform"))
LecunNormal = _register("initializer", "lecun_normal")(_variant("LecunNormal", 1.0, "fan_in", "truncated_normal"))


@_register("initializer", "orthogonal")
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, from the QR decomposition of a normal draw."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain, self.seed = float(gain), seed

    def __call__(self, shape, dtype="float32"):
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise InputError(f"Orthogonal initializer needs a shape of rank >= 2, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self._rng().normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@_register("initializer", "identity")
class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        if len(shape) != 2:
            raise InputError(f"Identity initializer needs a 2-D shape, got {tuple(shape)}")
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


def get(identifier: Any) -> Initializer:
    """An initializer from a name, a config dict, an instance or a callable."""
    if identifier is None:
        raise InputError("an initializer is required")
    if isinstance(identifier, (str, dict)):
        if isinstance(identifier, str) and identifier not in ser.registry("initializer"):
            raise InputError(f"unknown initializer {identifier!r}; valid names: "
                             f"{', '.join(sorted(k for k in ser.registry('initializer') if k.islower()))}")
        obj = ser.deserialize("initializer", identifier)
        return obj() if isinstance(obj, type) else obj
    if isinstance(identifier, type):
        return identifier()
    if callable(identifier):
        return identifier
    raise InputError(f"could not interpret initializer {identifier!r}")


def serialize(init: Any) -> Any:
    """The config dict of an initializer (or its name for a plain function)."""
    return ser.serialize(init)


def deserialize(config: Any, custom_objects: Mapping[str, Any] | None = None) -> Initializer:
    """The inverse of :func:`serialize`."""
    obj = ser.deserialize("initializer", config, custom_objects)
    return obj() if isinstance(obj, type) else obj


# Keras's lower-case function-style aliases.
zeros, ones, constant = Zeros, Ones, Constant
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal = HeUniform, HeNormal
lecun_uniform, lecun_normal = LecunUniform, LecunNormal
orthogonal, random_uniform, random_normal = Orthogonal, RandomUniform, RandomNormal
