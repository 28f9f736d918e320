"""Tests for graphc.lower.mathlib: accuracy against NumPy, special values, vectorisation.

Every math function is wrapped in a loop ``void k_<name>(T* in, [T* in2,] T* out, i64 n)``,
JIT-compiled with graphc.backend.jit and called through ctypes on NumPy arrays.  float32
results are compared with float64 NumPy; float64 results with NumPy's long double (80-bit
on x86-64) where that is wider than double, else with float64 and one more ulp allowed.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from llvmlite import ir

from graphc.backend.jit import NativeModule, compile_ir, compile_object, host_target
from graphc.errors import DTypeError, InputError
from graphc.lower.mathlib import MATH_FUNCTIONS, math_function

DTYPES = [np.float32, np.float64]
UNARY = [n for n, k in MATH_FUNCTIONS.items() if k == 1]
LONG_OK = np.finfo(np.longdouble).nmant > 52
# Measured maxima are below 2.7 ulp for every function (see the module docstring of
# mathlib); the bound leaves a little room and one ulp for a plain float64 reference.
TOL = {np.float32: 3.0, np.float64: 3.0 if LONG_OK else 4.0}
N = 8000


def _ir_type(dtype: type) -> ir.Type:
    """llvmlite type for a NumPy float dtype."""
    return ir.FloatType() if dtype == np.float32 else ir.DoubleType()


def add_kernel(module: ir.Module, name: str, ty: ir.Type) -> None:
    """Add ``void k_<name>(ty* in.., ty* out, i64 n)`` applying math function ``name``."""
    fn_math = math_function(module, name, ty)
    nargs = MATH_FUNCTIONS[name]
    i64 = ir.IntType(64)
    ptr = ty.as_pointer()
    f = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (nargs + 1) + [i64]), f"k_{name}")
    for a in f.args[:-1]:
        a.add_attribute("noalias")
    entry, loop, done = (f.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    n = f.args[-1]
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    vals = [b.load(b.gep(f.args[j], [i], inbounds=True)) for j in range(nargs)]
    b.store(b.call(fn_math, vals), b.gep(f.args[nargs], [i], inbounds=True))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


def build_module(names: list[str], dtype: type) -> ir.Module:
    """A module with one loop kernel per math function."""
    module = ir.Module(name=f"mathlib_test_{np.dtype(dtype).name}")
    for name in names:
        add_kernel(module, name, _ir_type(dtype))
    return module


class Kernels:
    """Compiled loop kernels for one dtype."""

    def __init__(self, dtype: type, opt_level: int = 3, names: list[str] | None = None) -> None:
        """Build and JIT all kernels in one module."""
        self.dtype = dtype
        self.names = list(MATH_FUNCTIONS) if names is None else names
        self.module_ir = str(build_module(self.names, dtype))
        self.native: NativeModule = compile_ir(self.module_ir, opt_level=opt_level)
        p = ctypes.c_void_p
        self.funcs = {
            n: self.native.cfunc(f"k_{n}", None, *([p] * (MATH_FUNCTIONS[n] + 1)), ctypes.c_int64)
            for n in self.names
        }

    def __call__(self, name: str, *args: Any) -> np.ndarray:
        """Apply function ``name`` elementwise."""
        arrs = [np.ascontiguousarray(a, dtype=self.dtype) for a in args]
        arrs = np.broadcast_arrays(*arrs)
        arrs = [np.ascontiguousarray(a) for a in arrs]
        out = np.empty_like(arrs[0])
        self.funcs[name](*[a.ctypes.data for a in arrs], out.ctypes.data, out.size)
        return out


@pytest.fixture(scope="module", params=DTYPES, ids=["f32", "f64"])
def kern(request: pytest.FixtureRequest) -> Kernels:
    """All kernels compiled for float32 / float64."""
    return Kernels(request.param)


# ------------------------------------------------------------------------- references


def _wide(dtype: type) -> type:
    """The reference precision for ``dtype``."""
    return np.float64 if dtype == np.float32 else (np.longdouble if LONG_OK else np.float64)


def _erf_ref(x: np.ndarray) -> np.ndarray:
    """erf through math.erf (float64)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _sigmoid_ref(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in the precision of x."""
    with np.errstate(over="ignore"):
        ex = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + ex), ex / (1 + ex))


REFS: dict[str, Callable[..., np.ndarray]] = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": _sigmoid_ref,
    "softplus": lambda x: np.logaddexp(x.dtype.type(0), x),
    "erf": _erf_ref,
    "sin": np.sin,
    "cos": np.cos,
    "sqrt": np.sqrt,
    "pow": np.power,
}


def reference(name: str, dtype: type, *args: np.ndarray) -> np.ndarray:
    """Reference values in the wider precision."""
    w = _wide(dtype)
    with np.errstate(all="ignore"):
        return REFS[name](*[np.asarray(a, dtype=dtype).astype(w) for a in args])


def ulp_errors(got: np.ndarray, ref: np.ndarray, dtype: type) -> np.ndarray:
    """|got - ref| in units of the last place of ``dtype`` at ref (0 where both agree)."""
    with np.errstate(all="ignore"):
        refd = ref.astype(dtype)
        finfo = np.finfo(dtype)
        mag = np.minimum(np.abs(refd), finfo.max)
        spacing = np.maximum(np.spacing(mag.astype(dtype)), finfo.smallest_subnormal)
        err = (np.abs(got.astype(ref.dtype) - ref) / spacing.astype(ref.dtype)).astype(np.float64)
    same = (got == refd) | (np.isnan(got) & np.isnan(ref))
    err[same] = 0.0
    err[np.isnan(got) != np.isnan(ref)] = np.inf
    return err


def assert_close(name: str, dtype: type, got: np.ndarray, ref: np.ndarray, tol: float, *args: Any) -> None:
    """All results within ``tol`` ulp, with a readable failure message."""
    err = ulp_errors(got, ref, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= tol, (
        f"{name}[{np.dtype(dtype).name}]: {err[worst]:.2f} ulp at args "
        f"{[np.asarray(a).ravel()[worst] for a in args]}: got {got[worst]!r}, want {ref[worst]!r}"
    )


def assert_same_specials(got: np.ndarray, want: np.ndarray, args: list[np.ndarray]) -> None:
    """NaN where NumPy has NaN, the same infinities, exact zeros with the same sign.

    ``want`` is NumPy's result in the wider precision; a result that only rounds to zero
    (or to inf) in the narrow type is left to the ulp comparison.
    """
    for i, (g, w) in enumerate(zip(got, want)):
        where = [a[i] for a in args]
        if np.isnan(w):
            assert np.isnan(g), (where, g, w)
        elif np.isinf(w) or w == 0:
            assert g == w and np.signbit(g) == np.signbit(w), (where, g, w)


# --------------------------------------------------------------------------- accuracy

RANGES: dict[str, list[tuple[float, float, str]]] = {
    "exp": [(-110, 90, "lin"), (-750, 712, "lin"), (-1, 1, "lin"), (1e-30, 1, "log")],
    "expm1": [(-1, 1, "lin"), (-50, 712, "lin"), (1e-30, 1, "log")],
    "log": [(1e-45, 3e38, "pos"), (1e-320, 1e308, "pos"), (0.5, 2, "lin")],
    "log1p": [(-1, 1, "lin"), (1e-30, 1e30, "pos"), (1e-30, 1, "log")],
    "tanh": [(-6, 6, "lin"), (1e-30, 30, "log")],
    "sigmoid": [(-800, 800, "lin"), (-20, 20, "lin")],
    "softplus": [(-800, 800, "lin"), (-20, 20, "lin")],
    "erf": [(-7, 7, "lin"), (-1.2, 1.2, "lin"), (1e-30, 10, "log")],
    "sin": [(-10, 10, "lin"), (-1e5, 1e5, "lin"), (1e-30, 3e38, "log"), (1e-30, 1e300, "log")],
    "cos": [(-10, 10, "lin"), (-1e5, 1e5, "lin"), (1e-30, 3e38, "log"), (1e-30, 1e300, "log")],
    "sqrt": [(0, 1e30, "lin"), (1e-320, 1e300, "pos")],
}


def sample(dtype: type, lo: float, hi: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``N`` finite test inputs: uniform, log-uniform with random sign, or log-uniform positive."""
    if kind == "lin":
        x = rng.uniform(lo, hi, N)
    else:
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), N))
        if kind == "log":
            x *= rng.choice([-1.0, 1.0], N)
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    return x[np.isfinite(x)]


@pytest.mark.parametrize("name", UNARY)
def test_accuracy(kern: Kernels, name: str) -> None:
    """Max error over wide random ranges is within a few ulp of the reference."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    tol = TOL[kern.dtype]
    if name == "erf" and kern.dtype == np.float64:
        tol += 1.0  # the reference (math.erf) is itself a float64 result
    if name == "sqrt":
        tol = 0.5 if kern.dtype == np.float32 or LONG_OK else 1.0
    for lo, hi, kind in RANGES[name]:
        x = sample(kern.dtype, lo, hi, kind, rng)
        assert_close(name, kern.dtype, kern(name, x), reference(name, kern.dtype, x), tol, x)


SPECIALS = [
    0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, 1e-45, -1e-45,
    1e-310, -1e-310, 1e-30, -1e-30, 2.0**-126, 2.0**-1022, 88.72, 88.73, -87.3, -103.9, -104.0,
    709.78, 709.79, -745.1, -746.0, 20.0, -20.0, 40.0, 1e5, -1e5, 3e38, -3e38, 1e300, -1e300,
    1.7976931348623157e308, -1.7976931348623157e308, np.pi / 2, np.pi, 2.0**25, 2.0**60,
]


@pytest.mark.parametrize("name", UNARY)
def test_special_values(kern: Kernels, name: str) -> None:
    """Zeros, infinities, NaN, subnormals, overflow and underflow behave like NumPy."""
    with np.errstate(over="ignore"):
        x = np.array(SPECIALS, dtype=kern.dtype)
    got = kern(name, x)
    ref = reference(name, kern.dtype, x)
    assert_same_specials(got, ref, [x])
    tol = TOL[kern.dtype] + (1.0 if name == "erf" else 0.0)
    assert_close(name, kern.dtype, got, ref, tol, x)


def test_exp_overflow_underflow_edges(kern: Kernels) -> None:
    """exp is finite right up to the overflow threshold, then inf; underflows gradually."""
    dt = kern.dtype
    fi = np.finfo(dt)
    top = np.log(np.float64(fi.max))
    x = np.array([np.nextafter(dt(top), dt(0)), np.nextafter(dt(top), dt(np.inf))], dtype=dt)
    got = kern("exp", x)
    assert np.isfinite(got[0]) and got[1] == np.inf
    bottom = np.log(np.float64(fi.smallest_subnormal))
    x = np.linspace(bottom - 1.0, bottom + 30.0, 2001).astype(dt)
    got = kern("exp", x)
    assert np.all(np.diff(got) >= 0)  # monotone through the subnormal range
    assert_close("exp", dt, got, reference("exp", dt, x), TOL[dt], x)


def test_saturation(kern: Kernels) -> None:
    """tanh, sigmoid, softplus and erf never produce NaN for huge finite inputs."""
    dt = kern.dtype
    big = np.array([1e3, 1e10, np.finfo(dt).max, np.inf], dtype=dt)
    for s in (1, -1):
        v = s * big
        assert np.all(kern("tanh", v) == s)
        assert np.all(kern("erf", v) == s)
        assert np.all(kern("sigmoid", v) == (1.0 if s > 0 else 0.0))
        sp = kern("softplus", v)
        assert np.all(sp == (v if s > 0 else 0.0))


def test_small_arguments_are_exact(kern: Kernels) -> None:
    """expm1, log1p, tanh, sin, erf are accurate (not cancelling) for tiny arguments."""
    dt = kern.dtype
    x = np.array([1e-20, -1e-20, 1e-30, -3e-38, 2.0**-100], dtype=dt)
    for name in ("expm1", "log1p", "tanh", "sin"):
        np.testing.assert_array_equal(kern(name, x), x)
    np.testing.assert_allclose(kern("erf", x), x * (2 / np.sqrt(np.pi)), rtol=2 * np.finfo(dt).eps)


def test_huge_trig_arguments(kern: Kernels) -> None:
    """sin/cos use an exact reduction for huge arguments (hard cases included)."""
    dt = kern.dtype
    if dt == np.float64:
        x = np.array([6381956970095103 * 2.0**797, 1e22, 1.7976931348623157e308, 2.0**25 + 0.5, 1e16])
    else:
        x = np.array([1e38, 3.4e38, 2.0**25, 16777216.0, 1e10, 102940.414], dtype=dt)
    for name in ("sin", "cos"):
        assert_close(name, dt, kern(name, x), reference(name, dt, x), TOL[dt], x)


# -------------------------------------------------------------------------------- pow


def test_pow_accuracy(kern: Kernels) -> None:
    """x**y over wide ranges, including bases near 1 with large exponents."""
    dt = kern.dtype
    rng = np.random.default_rng(7)
    lim = 700 if dt == np.float64 else 80
    cases = [
        (np.exp(rng.uniform(-lim, lim, N)), rng.uniform(-1.5, 1.5, N)),
        (rng.uniform(0, 3, N), rng.uniform(-60, 60, N)),
        (rng.uniform(0.99, 1.01, N), np.exp(rng.uniform(0, 12, N)) * rng.choice([-1, 1], N)),
        (-rng.uniform(0, 5, N), rng.integers(-40, 40, N).astype(np.float64)),
        (rng.uniform(-5, 5, N), rng.uniform(-5, 5, N)),
    ]
    for x, y in cases:
        x, y = x.astype(dt), y.astype(dt)
        assert_close("pow", dt, kern("pow", x, y), reference("pow", dt, x, y), TOL[dt], x, y)


def test_pow_special_grid(kern: Kernels) -> None:
    """pow agrees with np.power on every pair of special values (C99 Annex F semantics)."""
    dt = kern.dtype
    mant = np.finfo(dt).nmant
    vals = np.array(
        [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, np.inf, -np.inf, np.nan,
         np.finfo(dt).smallest_subnormal, 1e30, 2.0**mant + 1, 2.0 ** (mant + 1) - 1,
         2.0 ** (mant + 1) + 2, 2.0**60, -7.0],
        dtype=dt,
    )
    x, y = (a.ravel() for a in np.meshgrid(vals, vals))
    got = kern("pow", x, y)
    ref = reference("pow", dt, x, y)
    with np.errstate(all="ignore"):
        same_type = np.power(x, y)
    special = np.isnan(same_type) | np.isinf(x) | np.isinf(y) | (x == 0) | (y == 0) | (x == 1)
    assert_same_specials(got[special], same_type[special], [x[special], y[special]])
    assert_same_specials(got, ref, [x, y])
    assert_close("pow", dt, got, ref, TOL[dt], x, y)


def test_pow_integer_exponents(kern: Kernels) -> None:
    """Negative bases with integral exponents get the right sign; exact small powers."""
    dt = kern.dtype
    x = np.array([-2.0, -3.0, -0.5, -10.0, 2.0, 10.0], dtype=dt)
    for n in range(-12, 13):
        got = kern("pow", x, np.full_like(x, n))
        with np.errstate(all="ignore"):
            want = np.power(x, dt(n))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        assert_close("pow", dt, got, want.astype(_wide(dt)), 1.0, x)
    np.testing.assert_array_equal(kern("pow", np.array([3.0, 7.0], dt), np.array([2.0, 2.0], dt)), [9.0, 49.0])


# -------------------------------------------------------------------- generated code


def test_loops_vectorise_without_libm(kern: Kernels) -> None:
    """Every kernel loop is vectorised and calls nothing but LLVM intrinsics."""
    text = kern.native.optimized_ir
    elem = "float" if kern.dtype == np.float32 else "double"
    for name in kern.names:
        body = _function_body(text, f"k_{name}")
        widths = [int(w) for w in re.findall(rf"<(\d+) x {elem}>", body)]
        assert widths and max(widths) >= 4, f"{name} was not vectorised"
        callees = set(re.findall(r"call [^@]*@\"?([\w.$]+)", body))
        assert all(c.startswith("llvm.") for c in callees), (name, callees)


def _function_body(module_text: str, name: str) -> str:
    """The text of function ``name`` in an LLVM IR module."""
    m = re.search(rf"define [^\n]*@\"?{re.escape(name)}\"?\(.*?\n}}\n", module_text, re.S)
    assert m, name
    return m.group(0)


@pytest.mark.skipif("+avx2" not in host_target().features, reason="host has no AVX2")
@pytest.mark.parametrize("dtype,pattern", [(np.float32, r"<(\d+) x float>"), (np.float64, r"<(\d+) x double>")])
def test_exp_loop_uses_full_vector_width(dtype: type, pattern: str) -> None:
    """With AVX2 the exp loop runs on 256-bit (or wider) vectors: <8 x float>, <4 x double>."""
    k = Kernels(dtype, names=["exp"])
    body = _function_body(k.native.optimized_ir, "k_exp")
    widths = [int(w) for w in re.findall(pattern, body)]
    assert max(widths) * np.dtype(dtype).itemsize >= 32
    assert not re.search(r"@(expf?|exp2f?|logf?|__\w+)\(", body)


def test_ir_has_no_pointer_integer_casts_or_branches() -> None:
    """The math functions are branch-free and never use ptrtoint/inttoptr."""
    for dtype in DTYPES:
        module = ir.Module()
        for name in MATH_FUNCTIONS:
            math_function(module, name, _ir_type(dtype))
        text = str(module)
        assert "ptrtoint" not in text and "inttoptr" not in text
        assert not re.search(r"^\s*br ", text, re.M)
        callees = set(re.findall(r"call [^@]*@\"?([\w.$]+)", text))
        assert callees and all(c.startswith("llvm.") for c in callees), callees


@pytest.mark.parametrize(
    "triple,cpu,features",
    [("x86_64-unknown-linux-gnu", "x86-64", ""), ("aarch64-unknown-linux-gnu", "", "")],
)
def test_aot_objects_need_no_libm(triple: str, cpu: str, features: str) -> None:
    """Ahead-of-time objects (even without FMA) reference no math library symbol."""
    for dtype in DTYPES:
        obj = compile_object(str(build_module(list(MATH_FUNCTIONS), dtype)), triple, cpu, features)
        assert obj[:4] == b"\x7fELF"
        for sym in ("exp", "expf", "log", "logf", "sin", "sinf", "cos", "cosf", "fma", "fmaf", "pow",
                    "powf", "rint", "floor", "erf", "tanh", "sqrt", "sqrtf", "expm1", "log1p"):
            assert b"\x00" + sym.encode() + b"\x00" not in obj, (triple, dtype, sym)


def test_unoptimised_code_is_correct() -> None:
    """At -O0 (always-inline still applies) the results are the same."""
    k = Kernels(np.float64, opt_level=0, names=["exp", "log", "sin", "pow", "erf"])
    x = np.array([-3.5, 0.25, 1.0, 7.0, 1e6])
    for name in ("exp", "log", "sin", "erf"):
        assert_close(name, np.float64, k(name, x), reference(name, np.float64, x), TOL[np.float64], x)
    assert_close("pow", np.float64, k("pow", x, x), reference("pow", np.float64, x, x), TOL[np.float64], x)


# ------------------------------------------------------------------------------ API


def test_math_function_is_cached_internal_alwaysinline() -> None:
    """One definition per (name, type), internal and always-inline, with the right type."""
    module = ir.Module()
    f32 = ir.FloatType()
    a = math_function(module, "exp", f32)
    assert math_function(module, "exp", f32) is a
    b = math_function(module, "exp", ir.DoubleType())
    assert b is not a
    assert a.linkage == "internal" and "alwaysinline" in a.attributes
    assert a.function_type.return_type == f32 and len(a.args) == 1
    p = math_function(module, "pow", f32)
    assert len(p.args) == 2
    # pieces shared between functions (constant tables) are created once
    math_function(module, "sin", ir.DoubleType())
    math_function(module, "cos", ir.DoubleType())
    str(module)


def test_math_function_errors() -> None:
    """Unknown names and non-float types are rejected with graphc errors."""
    module = ir.Module()
    with pytest.raises(InputError):
        math_function(module, "gamma", ir.FloatType())
    with pytest.raises(DTypeError):
        math_function(module, "exp", ir.IntType(32))
    with pytest.raises(DTypeError):
        math_function(module, "exp", ir.HalfType())
