"""One table-driven test over every op.

``CASES`` maps the public ``graphc.ops`` functions (and through them every primitive
``graphc.ir.Op``) to input generators, a NumPy reference and whether they are differentiable.
Each case's ``fn(o, *xs)`` is written once against a NumPy-named namespace ``o``: it builds a
graph when ``o`` is ``graphc.ops`` and computes the reference when ``o`` is ``NP`` (NumPy plus
the few functions NumPy lacks, such as ``sigmoid``), unless the case gives its own ``ref``.

For every case, in float32 and float64, and in every execution mode (reference, native):
- the forward value equals NumPy, and the output dtype equals NumPy's;
- the inferred static shape equals the computed shape (a few cases also with a symbolic
  ``None`` dimension);
- for differentiable cases: ``grad(sum(out * w))`` (random ``w``) equals central finite
  differences of the NumPy reference, in float64.

Tolerances (``rtol``; ``atol = rtol * max(1, max|expected|)``, since the inputs are O(1) the
rounding of intermediate values is of that size, e.g. in a sum that cancels):
- float32: 1e-5 (NumPy/native float32 rounding of a few ops on O(1) values is ~1e-7).
- float64: 1e-12.
- native code, transcendental ops (exp, log, tanh, erf, sin, ...): float32 2e-5 and float64
  1e-11, because generated code may use its own polynomial approximations rather than libm
  (DESIGN.md: "libm-level symbols ... or its own approximations"); a few ulp in float32 and
  ~1e-13 relative in float64 are what a good approximation gives, with margin.
- ``erf`` in float32: 5e-5 in native (approximations of erf are typically the least accurate).
- gradients: central differences with eps 1e-6 in float64, rtol 1e-5, atol 1e-6 (the
  truncation error is ~eps^2 and the rounding error ~1e-16/eps times |f| ~ 1e-9).

Coverage: ``test_every_op_is_covered`` fails when a primitive Op is produced by no case
(forward graph, gradient graph or optimised graph) and is not in ``EXEMPT`` with a reason;
``test_every_public_op_function_is_covered`` does the same for the functions of ``graphc.ops``;
``test_every_op_has_a_table_entry`` checks INFER, REFERENCE, VJP/NO_VJP and LOWER/NOT_LOWERED.
"""
from __future__ import annotations

import importlib
import operator
import types
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import scipy.special
import sympy

import graphc as gc
from graphc.ir import Op, toposort
from graphc.ir.shapes import evaluate
from graphc.passes.pipeline import optimize

# ----------------------------------------------------------------------------- the NumPy side
_NP_EXTRAS = {
    "getitem": operator.getitem,
    "flatten": lambda x: np.reshape(x, (-1,)),
    "cast": lambda x, dtype: np.asarray(x).astype(dtype),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(0, x),
    "relu": lambda x: np.maximum(x, 0),
    "erf": scipy.special.erf,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "softmax": lambda x, axis=-1: scipy.special.softmax(x, axis=axis),
    "log_softmax": lambda x, axis=-1: scipy.special.log_softmax(x, axis=axis),
    "logsumexp": lambda x, axis=None, keepdims=False: scipy.special.logsumexp(x, axis=axis, keepdims=keepdims),
    "count": lambda x, axis=None: np.int64(np.prod([x.shape[a] for a in np.atleast_1d(axis)]) if axis is not None
                                            else x.size),
    "shape": lambda x: np.array(x.shape, np.int64),
    "size": lambda x: np.int64(x.size),
    "isclose_zero": lambda x: np.equal(x, 0),
    "one_hot": lambda idx, depth, dtype="float32": (np.asarray(idx)[..., None] == np.arange(depth)).astype(dtype),
    "slice_axis": lambda x, axis, b, e, s=1: x[(slice(None),) * axis + (slice(b, e, s),)],
    "gather": lambda x, i, axis=0: np.take(x, i, axis=axis),  # TF-style default axis=0
    "unstack": lambda x, axis=0: list(np.unstack(x, axis=axis)),
}
NP = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("_")})
for _k, _v in _NP_EXTRAS.items():
    setattr(NP, _k, _v)


class _Recorder:
    """``graphc.ops`` that records which functions a case calls."""

    def __init__(self, used: set[str]):
        self._used = used

    def __getattr__(self, name):
        self._used.add(name)
        return getattr(gc.ops, name)


# ----------------------------------------------------------------------------- inputs
HALF_INTS = tuple(k / 2 for k in range(-8, 9))


@dataclass(frozen=True)
class In:
    """An input generator. kind: "float" (uniform in [lo, hi), at least ``gap`` away from every
    point of ``avoid``: kinks and discontinuities), "distinct" (floats at least 0.1 apart: no
    ties for max/argmax), "intfloat" (integer-valued floats, so that equality happens),
    "int" (integers in [lo, hi] of ``dtype``), "bool"."""

    shape: tuple
    kind: str = "float"
    lo: float = -2.0
    hi: float = 2.0
    avoid: tuple = ()
    gap: float = 0.05
    dtype: str | None = None

    @property
    def is_float(self) -> bool:
        return self.kind in ("float", "distinct", "intfloat")

    def sample(self, rng: np.random.Generator, float_dtype: str) -> np.ndarray:
        n = int(np.prod(self.shape, dtype=np.int64))
        if self.kind == "float":
            v = rng.uniform(self.lo, self.hi, n)
            for _ in range(100):
                bad = np.zeros(n, bool)
                for a in self.avoid:
                    bad |= np.abs(v - a) < self.gap
                if not bad.any():
                    break
                v[bad] = rng.uniform(self.lo, self.hi, int(bad.sum()))
            return v.reshape(self.shape).astype(float_dtype)
        if self.kind == "distinct":
            v = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)
            return v.reshape(self.shape).astype(float_dtype)
        if self.kind == "intfloat":
            return rng.integers(-2, 3, self.shape).astype(float_dtype)
        if self.kind == "int":
            return rng.integers(int(self.lo), int(self.hi) + 1, self.shape).astype(self.dtype or "int64")
        if self.kind == "bool":
            return rng.random(self.shape) < 0.5
        raise ValueError(self.kind)


def f(*shape, lo=-2.0, hi=2.0, avoid=(), gap=0.05):
    return In(tuple(shape), "float", lo, hi, tuple(avoid), gap)


def pos(*shape):
    return In(tuple(shape), "float", 0.5, 2.0)


def nokink(*shape):
    return In(tuple(shape), "float", -2.0, 2.0, (0.0,), 0.1)


def noint(*shape):
    return In(tuple(shape), "float", -3.0, 3.0, HALF_INTS, 0.05)


def distinct(*shape):
    return In(tuple(shape), "distinct")


def intfloat(*shape):
    return In(tuple(shape), "intfloat")


def ints(*shape, lo=-3, hi=3, dtype="int64"):
    return In(tuple(shape), "int", lo, hi, dtype=dtype)


def bools(*shape):
    return In(tuple(shape), "bool")


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    fn: Callable  # fn(o, *xs): o is graphc.ops (build) or NP (reference)
    inputs: list
    grad: bool = True  # differentiable (with respect to its float inputs)
    ref: Callable | None = None  # ref(*arrays), when fn(NP, ...) is not the reference
    sym: tuple = ()  # (input, axis) pairs made None in the symbolic-shape variant
    transcendental: bool = False
    native_rtol: dict = field(default_factory=dict)  # dtype -> rtol overrides in native mode
    fd_ref: Callable | None = None  # the function to difference, when the reference rounds to float32

    def __post_init__(self):
        self.id = self.name.replace(" ", "")

    @property
    def float_inputs(self) -> list[int]:
        return [i for i, s in enumerate(self.inputs) if s.is_float]

    @property
    def dtypes(self) -> list[str]:
        # cases without float inputs do not depend on the float dtype: run them once
        return ["float32", "float64"] if self.float_inputs else ["int"]

    def reference(self, *arrays):
        return self.ref(*arrays) if self.ref is not None else self.fn(NP, *arrays)

    def arrays(self, dtype: str) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        fdt = "float64" if dtype == "int" else dtype
        return [s.sample(rng, fdt) for s in self.inputs]


def T(name, fn, inputs, **kw) -> Case:
    return Case(name, fn, list(inputs), **kw)


A = (3, 4)
B3 = (2, 3, 4)


def _np_patches(x, ksize, strides, dilation):
    """im2col by explicit loops over every output position and kernel offset."""
    import itertools
    spatial = x.shape[1:-1]
    outs = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(spatial, ksize, strides, dilation)]
    c = x.shape[-1]
    out = np.zeros((x.shape[0], *outs, int(np.prod(ksize)) * c), x.dtype)
    for pos in itertools.product(*[range(o) for o in outs]):
        for i, offs in enumerate(itertools.product(*[range(k) for k in ksize])):
            src = tuple(p * s + o * d for p, s, o, d in zip(pos, strides, offs, dilation))
            out[(slice(None), *pos, slice(i * c, (i + 1) * c))] = x[(slice(None), *src, slice(None))]
    return out


def _scan_rnn(o, h, x, w, reverse):
    final, ys = gc.scan(lambda c, xt: (o.tanh(o.matmul(c, w) + xt), o.sin(c) * xt), h, x, reverse=reverse)
    return o.concatenate([o.expand_dims(final, 0), ys], axis=0)


def _np_scan_rnn(h, x, w, reverse):
    ys = np.empty_like(x)
    for t in (range(len(x) - 1, -1, -1) if reverse else range(len(x))):
        ys[t] = np.sin(h) * x[t]
        h = np.tanh(h @ w + x[t])
    return np.concatenate([h[None], ys], axis=0)


def _scan_two(o, h, c, x, w):
    def step(carry, xt):
        h, c = carry
        z = o.matmul(h, w) + xt
        c_new = o.sigmoid(z) * c + o.tanh(z)
        return [o.tanh(c_new) * o.sigmoid(z), c_new], h * c
    (h, c), ys = gc.scan(step, [h, c], x, reverse=True)
    return o.concatenate([o.expand_dims(h, 0), o.expand_dims(c, 0), ys], axis=0)


def _np_scan_two(h, c, x, w):
    ys = np.empty_like(x)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(len(x) - 1, -1, -1):
        ys[t] = h * c
        z = h @ w + x[t]
        c = sig(z) * c + np.tanh(z)
        h = np.tanh(c) * sig(z)
    return np.concatenate([h[None], c[None], ys], axis=0)

CASES: list[Case] = [
    # --- elementwise, one input
    T("negative", lambda o, x: o.negative(x), [f(*A)], sym=((0, 0),)),
    T("neg operator", lambda o, x: -x, [f(*A)]),
    T("abs", lambda o, x: o.abs(x), [nokink(*A)]),
    T("sign", lambda o, x: o.sign(x), [nokink(*A)]),
    T("exp", lambda o, x: o.exp(x), [f(*A)], transcendental=True, sym=((0, 0),)),
    T("expm1", lambda o, x: o.expm1(x), [f(*A, lo=-1, hi=1)], transcendental=True),
    T("log", lambda o, x: o.log(x), [pos(*A)], transcendental=True),
    T("log1p", lambda o, x: o.log1p(x), [f(*A, lo=-0.5, hi=2)], transcendental=True),
    T("sqrt", lambda o, x: o.sqrt(x), [pos(*A)]),
    T("sin", lambda o, x: o.sin(x), [f(*A)], transcendental=True),
    T("cos", lambda o, x: o.cos(x), [f(*A)], transcendental=True),
    T("tanh", lambda o, x: o.tanh(x), [f(*A)], transcendental=True),
    T("sigmoid", lambda o, x: o.sigmoid(x), [f(*A, lo=-5, hi=5)], transcendental=True),
    T("softplus", lambda o, x: o.softplus(x), [f(*A, lo=-5, hi=5)], transcendental=True),
    T("erf", lambda o, x: o.erf(x), [f(*A)], transcendental=True,
      native_rtol={"float32": 5e-5}),
    T("relu", lambda o, x: o.relu(x), [nokink(*A)], sym=((0, 0),)),
    T("floor", lambda o, x: o.floor(x), [noint(*A)]),
    T("ceil", lambda o, x: o.ceil(x), [noint(*A)]),
    T("round", lambda o, x: o.round(x), [noint(*A)]),
    T("square", lambda o, x: o.square(x), [f(*A)]),
    T("reciprocal", lambda o, x: o.reciprocal(x), [nokink(*A)]),
    T("rsqrt", lambda o, x: o.rsqrt(x), [pos(*A)]),
    T("sqrt of int32 (float64, as NumPy)", lambda o, x: o.sqrt(x), [ints(*A, lo=0, hi=9, dtype="int32")], grad=False),
    T("abs of int64", lambda o, x: o.abs(x), [ints(*A)], grad=False),
    T("logical_not", lambda o, x: o.logical_not(x), [bools(*A)], grad=False),
    T("invert operator on bool", lambda o, x: ~x, [bools(*A)], grad=False),
    T("cast to int32 (truncates)", lambda o, x: o.cast(x, "int32"), [f(*A, lo=-3, hi=3)], grad=False),
    T("cast to float64", lambda o, x: o.cast(x, "float64"), [f(*A)]),
    T("cast to float32", lambda o, x: o.cast(x, "float32"), [f(*A)], fd_ref=lambda x: x),
    T("cast to bool", lambda o, x: o.cast(x, "bool"), [intfloat(*A)], grad=False),
    T("cast int64 to float32", lambda o, x: o.cast(x, "float32"), [ints(*A)], grad=False),
    T("astype method", lambda o, x: x.astype("float64") * 2, [f(*A)]),
    # --- elementwise, two and three inputs, with broadcasting
    T("add", lambda o, x, y: o.add(x, y), [f(*A), f(4)], sym=((0, 0),)),
    T("add broadcast 3d", lambda o, x, y: o.add(x, y), [f(2, 1, 4), f(3, 1)]),
    T("add python scalar", lambda o, x: x + 1.5, [f(*A)]),
    T("subtract", lambda o, x, y: o.subtract(x, y), [f(*A), f(3, 1)], sym=((0, 0), (1, 0))),
    T("rsub python scalar", lambda o, x: 2.0 - x, [f(*A)]),
    T("multiply", lambda o, x, y: o.multiply(x, y), [f(*A), f(*A)]),
    T("divide", lambda o, x, y: o.divide(x, y), [f(*A), nokink(4)]),
    T("true_divide", lambda o, x, y: o.true_divide(x, y), [f(*A), nokink(3, 1)]),
    T("rdiv python scalar", lambda o, x: 1.0 / x, [nokink(*A)]),
    T("divide int64 (float64, as NumPy)", lambda o, x, y: o.divide(x, y), [ints(*A), ints(4, lo=1, hi=4)], grad=False),
    T("power", lambda o, x, y: o.power(x, y), [pos(*A), f(*A)], transcendental=True),
    T("power scalar exponent 3", lambda o, x: o.power(x, 3), [f(*A)]),
    T("pow operator 0.5 and 2", lambda o, x: x ** 0.5 + x ** 2, [pos(*A)]),
    T("power int64", lambda o, x, y: o.power(x, y), [ints(*A, lo=0, hi=4), ints(*A, lo=0, hi=3)], grad=False),
    T("maximum", lambda o, x, y: o.maximum(x, y), [f(*A), f(4)]),
    T("minimum", lambda o, x, y: o.minimum(x, y), [f(*A), f(3, 1)]),
    T("maximum int32", lambda o, x, y: o.maximum(x, y), [ints(*A, dtype="int32"), ints(4, dtype="int32")], grad=False),
    T("equal", lambda o, x, y: o.equal(x, y), [intfloat(*A), intfloat(4)], grad=False),
    T("not_equal", lambda o, x, y: o.not_equal(x, y), [intfloat(*A), intfloat(4)], grad=False),
    T("less", lambda o, x, y: o.less(x, y), [intfloat(*A), intfloat(4)], grad=False),
    T("less_equal", lambda o, x, y: o.less_equal(x, y), [intfloat(*A), intfloat(3, 1)], grad=False),
    T("greater", lambda o, x, y: o.greater(x, y), [intfloat(*A), intfloat(4)], grad=False),
    T("greater_equal", lambda o, x, y: o.greater_equal(x, y), [intfloat(*A), intfloat(4)], grad=False),
    T("comparison operators", lambda o, x, y: (x < y) | (x >= 1.0), [intfloat(*A), intfloat(4)], grad=False),
    T("less int64", lambda o, x, y: o.less(x, y), [ints(*A), ints(4)], grad=False),
    T("isclose_zero", lambda o, x: o.isclose_zero(x), [intfloat(*A)], grad=False),
    T("logical_and", lambda o, x, y: o.logical_and(x, y), [bools(*A), bools(4)], grad=False),
    T("logical_or", lambda o, x, y: o.logical_or(x, y), [bools(*A), bools(4)], grad=False),
    T("logical_xor", lambda o, x, y: o.logical_xor(x, y), [bools(*A), bools(3, 1)], grad=False),
    T("where", lambda o, c, x, y: o.where(c, x, y), [bools(*A), f(*A), f(4)], sym=((0, 0), (1, 0))),
    T("where python scalar", lambda o, c, x: o.where(c, x, 0.5), [bools(3, 1), f(*A)]),
    T("clip", lambda o, x: o.clip(x, -0.5, 0.5), [f(*A, avoid=(-0.5, 0.5))]),
    T("expression of operators", lambda o, x: (2.5 * x - 1.0) / (x * x + 1.0) + x ** 3, [f(*A)]),
    # --- reductions
    T("sum", lambda o, x: o.sum(x), [f(*B3)], sym=((0, 0),)),
    T("sum axis=1", lambda o, x: o.sum(x, axis=1), [f(*B3)], sym=((0, 0),)),
    T("sum axis=(0,2) keepdims", lambda o, x: o.sum(x, axis=(0, 2), keepdims=True), [f(*B3)]),
    T("sum method axis=-1", lambda o, x: x.sum(axis=-1), [f(*B3)]),
    T("sum int32 (int64, as NumPy)", lambda o, x: o.sum(x, axis=-1), [ints(*B3, dtype="int32")], grad=False),
    T("sum bool", lambda o, x: o.sum(x, axis=0), [bools(*A)], grad=False),
    T("prod", lambda o, x: o.prod(x), [f(*A, lo=0.5, hi=1.5)]),
    T("prod axis=1", lambda o, x: o.prod(x, axis=1), [f(*B3, lo=0.5, hi=1.5)]),
    T("prod int64", lambda o, x: o.prod(x, axis=0), [ints(*A)], grad=False),
    T("max", lambda o, x: o.max(x), [distinct(*B3)]),
    T("max axis=2", lambda o, x: o.max(x, axis=2), [distinct(*B3)], sym=((0, 0),)),
    T("min axis=(0,1) keepdims", lambda o, x: o.min(x, axis=(0, 1), keepdims=True), [distinct(*B3)]),
    T("amax", lambda o, x: o.amax(x, axis=0), [distinct(*A)]),
    T("amin", lambda o, x: o.amin(x, axis=-1), [distinct(*A)]),
    T("max int32", lambda o, x: o.max(x, axis=1), [ints(*A, dtype="int32")], grad=False),
    T("mean", lambda o, x: o.mean(x), [f(*B3)], sym=((0, 0),)),
    T("mean axis=0", lambda o, x: o.mean(x, axis=0), [f(*B3)], sym=((0, 0),)),
    T("mean axis=(1,2) keepdims", lambda o, x: o.mean(x, axis=(1, 2), keepdims=True), [f(*B3)]),
    T("mean int32 (float64, as NumPy)", lambda o, x: o.mean(x, axis=1), [ints(*A, dtype="int32")], grad=False),
    T("var", lambda o, x: o.var(x, axis=1), [f(*B3)]),
    T("std", lambda o, x: o.std(x), [f(*B3)]),
    T("argmax", lambda o, x: o.argmax(x), [distinct(*B3)], grad=False),
    T("argmax axis=1", lambda o, x: o.argmax(x, axis=1), [distinct(*B3)], grad=False, sym=((0, 0),)),
    T("argmin axis=0 keepdims", lambda o, x: o.argmin(x, axis=0, keepdims=True), [distinct(*A)], grad=False),
    T("logsumexp", lambda o, x: o.logsumexp(x), [f(*A)], transcendental=True),
    T("logsumexp axis=-1", lambda o, x: o.logsumexp(x, axis=-1), [f(*B3)], transcendental=True, sym=((0, 0),)),
    T("count", lambda o, x: o.count(x, (0, 2)), [f(*B3)], grad=False, sym=((0, 0),)),
    T("softmax", lambda o, x: o.softmax(x), [f(*A)], transcendental=True, sym=((0, 0),)),
    T("softmax axis=0", lambda o, x: o.softmax(x, axis=0), [f(*B3)], transcendental=True),
    T("log_softmax", lambda o, x: o.log_softmax(x, axis=-1), [f(*A)], transcendental=True, sym=((0, 0),)),
    T("log_softmax axis=1", lambda o, x: o.log_softmax(x, axis=1), [f(*B3)], transcendental=True),
    # --- linear algebra
    T("matmul", lambda o, x, y: o.matmul(x, y), [f(3, 4), f(4, 5)], sym=((0, 0),)),
    T("matmul operator", lambda o, x, y: x @ y, [f(2, 3), f(3, 2)]),
    T("matmul batched", lambda o, x, y: o.matmul(x, y), [f(2, 3, 4), f(2, 4, 5)]),
    T("matmul broadcast batch", lambda o, x, y: o.matmul(x, y), [f(2, 1, 3, 4), f(3, 4, 2)]),
    T("matmul batched with matrix", lambda o, x, y: o.matmul(x, y), [f(2, 3, 4), f(4, 2)], sym=((0, 0),)),
    T("matmul vector-matrix", lambda o, x, y: o.matmul(x, y), [f(4), f(4, 3)]),
    T("matmul matrix-vector", lambda o, x, y: o.matmul(x, y), [f(3, 4), f(4)]),
    T("matmul vector-vector", lambda o, x, y: o.matmul(x, y), [f(4), f(4)]),
    T("matmul int64", lambda o, x, y: o.matmul(x, y), [ints(3, 4), ints(4, 2)], grad=False),
    T("dot", lambda o, x, y: o.dot(x, y), [f(3, 4), f(4)]),
    T("dot matrices", lambda o, x, y: o.dot(x, y), [f(2, 4), f(4, 3)]),
    T("tensordot axes=2", lambda o, x, y: o.tensordot(x, y, axes=2), [f(2, 3, 4), f(3, 4, 2)]),
    T("tensordot axes lists", lambda o, x, y: o.tensordot(x, y, axes=([1], [0])), [f(2, 3, 4), f(3, 5)]),
    # --- data movement
    T("reshape", lambda o, x: o.reshape(x, (4, 6)), [f(*B3)]),
    T("reshape -1", lambda o, x: o.reshape(x, (-1, 12)), [f(*B3)], sym=((0, 0),)),
    T("reshape method", lambda o, x: x.reshape(3, 2, 4), [f(*B3)]),
    T("flatten", lambda o, x: o.flatten(x), [f(*B3)]),
    T("transpose", lambda o, x: o.transpose(x), [f(*B3)], sym=((0, 0),)),
    T("transpose axes", lambda o, x: o.transpose(x, (1, 2, 0)), [f(*B3)]),
    T("T property", lambda o, x: x.T, [f(*A)]),
    T("swapaxes", lambda o, x: o.swapaxes(x, 0, 2), [f(*B3)]),
    T("expand_dims", lambda o, x: o.expand_dims(x, 1), [f(*A)]),
    T("expand_dims negative", lambda o, x: o.expand_dims(x, -1), [f(*A)], sym=((0, 0),)),
    T("squeeze", lambda o, x: o.squeeze(x), [f(3, 1, 4, 1)]),
    T("squeeze axis", lambda o, x: o.squeeze(x, axis=1), [f(3, 1, 4, 1)]),
    T("broadcast_to", lambda o, x: o.broadcast_to(x, (2, 3, 4)), [f(3, 1)]),
    T("concatenate", lambda o, x, y, z: o.concatenate([x, y, z], axis=1), [f(2, 3), f(2, 1), f(2, 2)],
      sym=((0, 0), (1, 0), (2, 0))),
    T("concatenate axis 0", lambda o, x, y: o.concatenate([x, y], axis=0), [f(2, 3), f(1, 3)], sym=((0, 0),)),
    T("concatenate int64", lambda o, x, y: o.concatenate([x, y], axis=-1), [ints(2, 3), ints(2, 2)], grad=False),
    T("stack", lambda o, x, y: o.stack([x, y], axis=1), [f(*A), f(*A)]),
    T("unstack", lambda o, x: o.stack(o.unstack(x, axis=1)[::-1], axis=0), [f(*A)]),
    T("shape", lambda o, x: o.shape(x), [f(*B3)], grad=False, sym=((0, 0),)),
    T("size", lambda o, x: o.size(x), [f(*B3)], grad=False, sym=((0, 0),)),
    T("slice_axis", lambda o, x: o.slice_axis(x, 1, 1, 3), [f(*A)]),
    T("getitem", lambda o, x: o.getitem(x, (0, slice(None, None, -1))), [f(*B3)]),
    T("index [:, 1:3]", lambda o, x: x[:, 1:3], [f(*A)], sym=((0, 0),)),
    T("index [1:]", lambda o, x: x[1:], [f(*A)], sym=((0, 0),)),
    T("index int", lambda o, x: x[1], [f(*B3)]),
    T("index negative int and ellipsis", lambda o, x: x[-1, ..., 1:], [f(*B3)]),
    T("index [::-1]", lambda o, x: x[::-1], [f(*A)]),
    T("index [1:-1, ::-2]", lambda o, x: x[1:-1, ::-2], [f(4, 5)]),
    T("index [..., None, ::2]", lambda o, x: x[..., None, ::2], [f(*B3)]),
    T("index [0, None]", lambda o, x: x[0, None], [f(*B3)]),
    T("index [:, None, 1]", lambda o, x: x[:, None, 1], [f(*B3)]),
    T("index [::2, 1::3] (strided)", lambda o, x: x[::2, 1::3], [f(5, 7)]),
    T("index int array", lambda o, x: x[np.array([2, 0, 2])], [f(*A)]),
    T("take", lambda o, x, i: o.take(x, i, axis=1), [f(*A), ints(5, lo=-4, hi=3)]),
    T("take int32 2d indices", lambda o, x, i: o.take(x, i, axis=0), [f(*A), ints(2, 2, lo=0, hi=2, dtype="int32")]),
    T("gather", lambda o, x, i: o.gather(x, i), [f(*A), ints(4, lo=0, hi=2)]),
    T("take int64 data", lambda o, x, i: o.take(x, i, axis=-1), [ints(*A), ints(3, lo=0, hi=3)], grad=False),
    T("one_hot", lambda o, i: o.one_hot(i, 5), [ints(2, 3, lo=-1, hi=5)], grad=False),
    T("one_hot float64", lambda o, i: o.one_hot(i, 4, "float64"), [ints(5, lo=0, hi=3)], grad=False),
    T("pad", lambda o, x: o.pad(x, ((1, 2), (0, 1)), constant_values=0.5), [f(*A)]),
    T("pad int width", lambda o, x: o.pad(x, 1), [f(*B3)]),
    T("pad int64", lambda o, x: o.pad(x, ((0, 1), (2, 0))), [ints(*A)], grad=False),
    # --- convolution windows (PATCHES; its gradient is PATCHES_ADJOINT, and back)
    T("patches 2-D, strided and dilated", lambda o, x: o.patches(x, (3, 2), (2, 1), (1, 2)), [f(2, 7, 6, 3)],
      ref=lambda x: _np_patches(x, (3, 2), (2, 1), (1, 2)), sym=((0, 0),)),
    T("patches 1-D", lambda o, x: o.patches(x, (3,)), [f(2, 6, 2)], ref=lambda x: _np_patches(x, (3,), (1,), (1,))),
    T("patches of patches' gradient (second order)",
      lambda o, x: gc.grad(o.sum(o.patches(x, (2, 2)) ** 2), x), [f(1, 4, 4, 2)],
      # each pixel is in (windows along rows) x (windows along columns) 2x2 windows
      ref=lambda x: 2 * x * np.outer([1, 2, 2, 1], [1, 2, 2, 1])[None, :, :, None].astype(x.dtype)),
    # --- loops (graphc.scan: one SCAN node and its SCAN_OUTPUTs; the gradient is another loop)
    T("scan: RNN, final carry and stacked outputs", lambda o, h, x, w: _scan_rnn(o, h, x, w, False),
      [f(2, 3), f(5, 2, 3), f(3, 3, lo=-0.8, hi=0.8)], ref=lambda h, x, w: _np_scan_rnn(h, x, w, False),
      transcendental=True, sym=((1, 0),)),
    T("scan: reverse, two carries", lambda o, h, c, x, w: _scan_two(o, h, c, x, w),
      [f(2, 3), f(2, 3), f(4, 2, 3), f(3, 3, lo=-0.8, hi=0.8)], ref=lambda h, c, x, w: _np_scan_two(h, c, x, w),
      transcendental=True),
    T("scan: no sequence, a length", lambda o, v, w: gc.scan(lambda c, _: (o.tanh(o.matmul(c, w)), None), v,
                                                              length=3)[0],
      [f(2, 3), f(3, 3)], ref=lambda v, w: np.tanh(np.tanh(np.tanh(v @ w) @ w) @ w), transcendental=True),
    T("zeros_like", lambda o, x: o.zeros_like(x) + x * 2, [f(*A)]),
    T("ones_like", lambda o, x: o.ones_like(x) - x, [f(*A)], sym=((0, 0),)),
    T("zeros", lambda o, x: o.zeros((2, 3, 4), x.dtype) + x, [f(3, 4)]),
    T("ones", lambda o, x: o.ones((2, 3, 1), x.dtype) * x, [f(3, 4)]),
]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "case names must be unique"

# Ops no case produces, and why. Only truly untestable-here ops belong here.
EXEMPT: dict[Op, str] = {
    Op.SHARED: "a leaf whose value lives outside the graph: tests/core/test_api.py (get/set_value, updates)",
    Op.RANDOM: "stochastic: tests/core/test_api.py checks seeds, statistics and native == reference bitwise",
}
# Public graphc.ops functions no case calls, and why.
EXEMPT_FUNCTIONS: dict[str, str] = {
    "as_tensor": "a conversion used by every op",
    "random_uniform": "stochastic: tests/core/test_api.py",
    "random_normal": "stochastic: tests/core/test_api.py",
}

# ----------------------------------------------------------------------------- helpers
FORWARD_RTOL = {"float32": 1e-5, "float64": 1e-12, "int": 1e-12}
NATIVE_TRANSCENDENTAL_RTOL = {"float32": 2e-5, "float64": 1e-11, "int": 1e-11}
GRAD_EPS, GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-5, 1e-6


def _rtol(case: Case, mode: str, dtype: str) -> float:
    if mode == "native":
        if dtype in case.native_rtol:
            return case.native_rtol[dtype]
        if case.transcendental:
            return NATIVE_TRANSCENDENTAL_RTOL[dtype]
    return FORWARD_RTOL[dtype]


def _placeholders(case: Case, arrays: list[np.ndarray], sym: tuple = ()) -> list:
    out = []
    for k, a in enumerate(arrays):
        shape = tuple(None if (k, j) in sym else d for j, d in enumerate(a.shape))
        out.append(gc.placeholder(shape, a.dtype.name, name=f"in{k}"))
    return out


def assert_matches(got, expected, rtol: float, what: str) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != NumPy's {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != NumPy's {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _static_shape(node, env) -> tuple:
    return tuple(evaluate(d, env) for d in node.shape)


def _env(placeholders, arrays) -> dict:
    env = {}
    for p, a in zip(placeholders, arrays):
        for d, n in zip(p.shape, a.shape):
            if isinstance(d, sympy.Symbol):
                env[d] = n
    return env


def _forward_cases():
    return [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in CASES for dt in c.dtypes]


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("case,dtype", _forward_cases())
def test_forward(case: Case, dtype: str, mode: str):
    """Forward value, dtype and inferred shape against NumPy."""
    arrays = case.arrays(dtype)
    xs = _placeholders(case, arrays)
    out = case.fn(gc.ops, *xs)
    expected = np.asarray(case.reference(*arrays))
    assert tuple(out.shape) == expected.shape, f"inferred shape {out.shape} != NumPy's {expected.shape}"
    assert out.dtype == expected.dtype.name, f"inferred dtype {out.dtype} != NumPy's {expected.dtype}"
    fn = gc.function(xs, out, mode=mode)
    got = fn(*arrays)
    assert_matches(got, expected, _rtol(case, mode, dtype), f"{case.name} {dtype} {mode}")


_SYM_CASES = [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in CASES if c.sym for dt in c.dtypes[-1:]]


@pytest.mark.parametrize("case,dtype", _SYM_CASES)
def test_forward_symbolic_dims(case: Case, dtype: str, mode: str):
    """With ``None`` dimensions: the inferred shape (a sympy expression) evaluates to the
    computed shape, for two different sizes through one compiled function."""
    arrays = case.arrays(dtype)
    xs = _placeholders(case, arrays, case.sym)
    assert any(not isinstance(d, int) for x in xs for d in x.shape)
    out = case.fn(gc.ops, *xs)
    fn = gc.function(xs, out, mode=mode)
    for grow in (0, 3):
        # the symbolic axes get ``grow`` more entries (all inputs alike, so they still fit)
        arrs = []
        for k, a in enumerate(arrays):
            for (kk, axis) in case.sym:
                if kk == k and grow:
                    extra = np.take(a, np.arange(grow) % a.shape[axis], axis=axis)
                    a = np.concatenate([a, extra], axis=axis)
            arrs.append(a)
        expected = np.asarray(case.reference(*arrs))
        got = fn(*arrs)
        assert _static_shape(out, _env(xs, arrs)) == expected.shape
        assert_matches(got, expected, _rtol(case, mode, dtype), f"{case.name} symbolic, grow={grow}")


_GRAD_CASES = [pytest.param(c, id=c.id) for c in CASES if c.grad]


@pytest.mark.parametrize("case", _GRAD_CASES)
def test_gradient(case: Case, mode: str):
    """grad(sum(out * w)) against central finite differences of the NumPy reference (float64)."""
    arrays = case.arrays("float64")
    xs = _placeholders(case, arrays)
    out = case.fn(gc.ops, *xs)
    rng = np.random.default_rng(7)
    w = rng.standard_normal(tuple(out.shape))
    cost = gc.ops.sum(out * gc.constant(w))
    wrt = [xs[i] for i in case.float_inputs]
    grads = gc.grad(cost, wrt)
    fn = gc.function(xs, grads, mode=mode)
    got = fn(*arrays)

    ref = case.fd_ref or case.reference

    def f_np(arrs):
        return float(np.sum(np.asarray(ref(*arrs), np.float64) * w))

    for i, g in zip(case.float_inputs, got):
        assert g.shape == arrays[i].shape and g.dtype == np.float64
        fd = np.zeros_like(arrays[i])
        for j in np.ndindex(arrays[i].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i][j] += GRAD_EPS
            minus[i][j] -= GRAD_EPS
            fd[j] = (f_np(plus) - f_np(minus)) / (2 * GRAD_EPS)
        np.testing.assert_allclose(g, fd, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   err_msg=f"gradient of {case.name} with respect to input {i} ({mode})")


def _ops_of_case(case: Case, used_functions: set[str]) -> set[Op]:
    """Every Op in the case's forward graph, gradient graph and optimised graph (and the
    symbolic variant's), in both float dtypes."""
    seen: set[Op] = {Op.PLACEHOLDER}
    for dtype in case.dtypes:
        arrays = case.arrays(dtype)
        for sym in ((), case.sym) if case.sym else ((),):
            xs = _placeholders(case, arrays, sym)
            out = case.fn(_Recorder(used_functions), *xs)
            nodes = [out]
            if case.grad and not sym:
                w = gc.constant(np.ones(tuple(out.shape), out.dtype))
                nodes += gc.grad(gc.ops.sum(out * w), [xs[i] for i in case.float_inputs])
            for level in (0, 1, 2):
                seen |= {n.op for n in toposort(optimize(nodes, level))}
    return seen


def test_every_op_is_covered():
    used_functions: set[str] = set()
    covered: set[Op] = set()
    for case in CASES:
        covered |= _ops_of_case(case, used_functions)
    missing = [op for op in Op if op not in covered and op not in EXEMPT]
    assert not missing, ("ops that no case of tests/core/test_op_table.py exercises (add a case, or an EXEMPT "
                         f"entry with a reason): {[op.name for op in missing]}")


def test_every_public_op_function_is_covered():
    used: set[str] = set()
    for case in CASES:
        _ops_of_case(case, used)
    public = set(gc.ops.__all__)
    missing = sorted(public - used - set(EXEMPT_FUNCTIONS))
    assert not missing, f"graphc.ops functions without a case in CASES (or an EXEMPT_FUNCTIONS entry): {missing}"
    stale = sorted(set(EXEMPT_FUNCTIONS) - public)
    assert not stale, f"EXEMPT_FUNCTIONS names functions graphc.ops no longer has: {stale}"


def _lower_tables():
    try:
        cpu = importlib.import_module("graphc.lower.cpu")
    except ModuleNotFoundError as e:
        if e.name in ("graphc.lower.cpu", "graphc.lower"):
            pytest.skip("graphc.lower.cpu does not exist yet")
        raise
    return cpu.LOWER, cpu.NOT_LOWERED


@pytest.mark.parametrize("table", ["INFER", "REFERENCE", "VJP", "LOWER"])
def test_every_op_has_a_table_entry(table: str):
    from graphc.autodiff.vjp import NO_VJP, VJP
    from graphc.interp import REFERENCE
    from graphc.ir.infer import INFER

    if table == "INFER":
        missing = [op for op in Op if op not in INFER]
    elif table == "REFERENCE":
        missing = [op for op in Op if op not in REFERENCE]
    elif table == "VJP":
        missing = [op for op in Op if op not in VJP and op not in NO_VJP]
        both = [op.name for op in Op if op in VJP and op in NO_VJP]
        assert not both, f"ops both in VJP and NO_VJP: {both}"
        assert all(isinstance(r, str) and r for r in NO_VJP.values()), "every NO_VJP entry needs a reason"
    else:
        lower, not_lowered = _lower_tables()
        missing = [op for op in Op if op not in lower and op not in not_lowered]
        both = [op.name for op in Op if op in lower and op in not_lowered]
        assert not both, f"ops both in LOWER and NOT_LOWERED: {both}"
        assert all(isinstance(r, str) and r for r in not_lowered.values()), "every NOT_LOWERED entry needs a reason"
    assert not missing, f"ops without an entry in {table}: {[op.name for op in missing]}"
