"""Elementary functions written as branch-free LLVM IR, so generated code needs no libm.

LLVM has no vector math library on this toolchain: ``llvm.exp`` inside a vectorised loop
becomes one scalar ``expf`` call per lane.  The functions here are built from polynomials
(minimax fits made with mpmath, see the coefficient tables), range reductions done with
bit manipulation, and ``select`` instead of branches.  Each one is emitted once per
module as an ``internal`` ``alwaysinline`` function of one scalar (``pow``: two), so
after inlining into a scalar loop the loop vectoriser turns the whole body into
``<8 x float>`` / ``<4 x double>`` code.

Only target-independent intrinsics are used (``llvm.fmuladd``, ``llvm.fabs``,
``llvm.copysign``, ``llvm.sqrt``): none of them becomes a libm call on any target,
including targets without FMA, so the code is also safe for ahead-of-time export.
Range reductions are written so that they are exact without a fused multiply-add
(Cody-Waite constants with trailing zero bits, Dekker products).

Accuracy (measured against NumPy float64 / mpmath, see tests/lower/test_mathlib.py):
a few ulp at most for every function and both float types, with NumPy's handling of
the special values (inf, nan, signed zeros, overflow and underflow).

Public entry point: :func:`math_function`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Union

from llvmlite import ir

__all__ = ["MATH_FUNCTIONS", "math_function"]

FloatTy = Union[ir.FloatType, ir.DoubleType]

#: Names accepted by :func:`math_function`, with their number of arguments.
MATH_FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "expm1": 1,
    "log": 1,
    "log1p": 1,
    "tanh": 1,
    "sigmoid": 1,
    "softplus": 1,
    "erf": 1,
    "sin": 1,
    "cos": 1,
    "sqrt": 1,
    "pow": 2,
}


def _h(values: str) -> tuple[float, ...]:
    """Parse a whitespace-separated list of C99 hex floats."""
    return tuple(float.fromhex(v) for v in values.split())


# ---------------------------------------------------------------------------------------
# Coefficients.  Minimax fits (linear Remez exchange in mpmath, 60 digits), lowest degree
# first.  The float32 tables are already rounded to float32.
# ---------------------------------------------------------------------------------------

# e^r = 1 + r + r^2 P(r), |r| <= ln2/2, relative error 3.1e-9 (float32 exp only).
_EXP32 = _h("0x1.fffffcp-2 0x1.55549p-3 0x1.5558fp-5 0x1.123ab2p-7 0x1.6a28ep-10")
# expm1(r) = r + r^2 P(r), |r| <= ln2/2, relative error 2.7e-10 (float32 expm1/tanh).
_EXPM1_32 = _h("0x1p-1 0x1.555556p-3 0x1.55549ep-5 0x1.11101cp-7 0x1.6d8422p-10 0x1.a2a49cp-13")
# expm1(r) = r + r^2 P(r), |r| <= ln2/2, relative error 2.1e-17 (all float64 exp family).
_EXPM1_64 = _h(
    "0x1.0000000000006p-1 0x1.5555555555560p-3 0x1.5555555551a1bp-5 0x1.111111110b5e6p-7 "
    "0x1.6c16c18107f9cp-10 0x1.a01a01d3b5022p-13 0x1.a019a0ebe4d11p-16 0x1.71dd87893b830p-19 "
    "0x1.28a859900c6dap-22 0x1.b045f933bb07ep-26"
)
# log(1+f) = 2s + s R(s^2), s = f/(2+f), R(z) = z P(z): the fdlibm scheme, refitted.
_LOG32 = _h("0x1.555554p-1 0x1.999a7ap-2 0x1.2438c4p-2 0x1.e2f99cp-3")
_LOG64 = _h(
    "0x1.5555555555593p-1 0x1.999999997fca0p-2 0x1.2492494201cc3p-2 0x1.c71c51fae87b0p-3 "
    "0x1.7466420dc7190p-3 0x1.39a165183def6p-3 0x1.2f08ed59ab4a3p-3"
)
# 2 atanh(s) = 2s + 2s^3/3 + s^5 Q(s^2), used by the double-double log of float64 pow.
_LOGQ64 = _h(
    "0x1.9999999999996p-2 0x1.249249249303dp-2 0x1.c71c71c57f702p-3 0x1.745d1832c9c4fp-3 "
    "0x1.3b13629652c5fp-3 0x1.1120ba65c08a1p-3 0x1.de32af2873cdfp-4 0x1.eb176d6194f31p-4"
)
# sin(r) = r + r^3 S(r^2), cos(r) = 1 - r^2/2 + r^4 C(r^2), |r| <= pi/4.
_SIN64 = _h(
    "-0x1.5555555555548p-3 0x1.111111110f794p-7 -0x1.a01a019bf60cdp-13 0x1.71de3560bfd2cp-19 "
    "-0x1.ae5e54da437c8p-26 0x1.5d8e1d313c2b4p-33"
)
_COS64 = _h(
    "0x1.555555555554bp-5 -0x1.6c16c16c14f4cp-10 0x1.a01a019c7d5d1p-16 -0x1.27e4f7e59f526p-22 "
    "0x1.1ee9d41ff56f4p-29 -0x1.8fa2b48c645d4p-37"
)
# Shorter versions, evaluated in float64 for the float32 sin/cos (error 5e-12, 1e-13).
_SIN_LO = _h("-0x1.5555554c60b64p-3 0x1.1111085dee44ep-7 -0x1.a00f751b2a714p-13 0x1.6ccf8af33a3f0p-19")
_COS_LO = _h("0x1.5555554ecce46p-5 -0x1.6c16b81c9d7a4p-10 0x1.a010d5fcf7c44p-16 -0x1.241ccb76f192fp-22")
# erf(x) = x P(x^2) for |x| < 1.
_ERF32_A = _h(
    "0x1.20dd74p+0 -0x1.81273ep-2 0x1.ce2cf6p-4 -0x1.b7f908p-6 0x1.540588p-8 -0x1.a3f5c2p-11 "
    "0x1.4966a2p-14"
)
_ERF64_A = _h(
    "0x1.20dd750429b6dp+0 -0x1.812746b0379bdp-2 0x1.ce2f21a040d0ep-4 -0x1.b82ce311fa744p-6 "
    "0x1.565bccf92702bp-8 -0x1.c02db03d32eb8p-11 0x1.f9a2ba994fa2ep-14 -0x1.f4ca4c797bc6bp-17 "
    "0x1.b97fca34febb0p-20 -0x1.5c06eae89ff56p-23 0x1.d7196978a8adap-27 -0x1.aba94c57f9979p-31"
)
# erf(x) = 1 - exp(-x^2) Q(x - c) for |x| >= 1 (Q ~ erfcx); pieces (lo, c, coefficients).
_ERF32_B = (
    (1.0, 2.5, _h(
        "0x1.afbbe6p-3 -0x1.30817p-4 0x1.98335ep-6 -0x1.0a7b08p-7 0x1.2dca1ap-9 -0x1.5a895cp-11 "
        "0x1.1cfa1p-11 0x1.d8412cp-13 0x1.c03c9cp-14"
    )),
)
_ERF64_B = (
    (1.0, 1.5, _h(
        "0x1.494daffa2ad67p-2 -0x1.4f1988444cafap-3 0x1.37ea271bc6092p-4 -0x1.0dc51d293eb8bp-5 "
        "0x1.b65944f19fae1p-7 -0x1.513ed7679bebfp-8 0x1.ee705fdc98ca6p-10 -0x1.5b0ab9abdb5b6p-11 "
        "0x1.d4500e91cd430p-13 -0x1.30c34ad4ff16ap-14 0x1.7fb6701d26a28p-16 -0x1.d32d236b5f22fp-18 "
        "0x1.126a4bae9b3c6p-19 -0x1.55b85b7fe8a8cp-21 0x1.af1ccbb375dd7p-23"
    )),
    (2.0, 2.5, _h(
        "0x1.afbb3f3b7354ap-3 -0x1.3086d7f018428p-4 0x1.98958a7a1a50cp-6 -0x1.06320772a6bd3p-7 "
        "0x1.435c053c86794p-9 -0x1.809cd407d34c3p-11 0x1.ba8a647118b9cp-13 -0x1.ede31573f1c5fp-15 "
        "0x1.0bb61c24a6599p-16 -0x1.188a474d93ac7p-18 0x1.2cc173a987f88p-20 -0x1.67e432ad17252p-22"
    )),
    (3.0, 3.5, _h(
        "0x1.3e0a99a0e1329p-3 -0x1.5285d2f44222bp-5 0x1.5d5810e1c1202p-7 -0x1.5e5d61728a12ep-9 "
        "0x1.5633db5e65b2bp-11 -0x1.46186247d7e85p-13 0x1.2e35881d94998p-15 -0x1.15ca446d16b02p-17 "
        "0x1.3450533a8d4e0p-19"
    )),
    (4.0, 5.0, _h(
        "0x1.c5723b3270890p-4 -0x1.5d830d1c9fecfp-6 0x1.08f4d47baaa00p-8 -0x1.86bc0b7849ed8p-11 "
        "0x1.3e1574c2da8edp-13 -0x1.92fc077f3ef44p-17 0x1.5e2dbf2d69355p-17"
    )),
)

# Constants.
_LOG2E = float.fromhex("0x1.71547652b82fep+0")
_LN2_HI64 = float.fromhex("0x1.62e42feep-1")  # 32 significant bits: k*hi exact for |k| < 2^21
_LN2_LO64 = float.fromhex("0x1.a39ef35793c76p-33")
_LN2_HI32 = float.fromhex("0x1.62e4p-1")  # 15 significant bits: k*hi exact for |k| < 2^9
_LN2_LO32 = float.fromhex("0x1.7f7d1cp-20")
_TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
# pi/2 in 27-bit pieces (the last one rounded): k*piece exact for |k| < 2^26.
_PIO2_CW = _h("0x1.921fb54p+0 0x1.10b461p-30 0x1.a626330p-58 0x1.45c06e0e68948p-86")
_PIO2 = float.fromhex("0x1.921fb54442d18p+0")
_PIO2_LO = float.fromhex("0x1.1a62633145c07p-54")
_TWO_THIRDS_HI = float.fromhex("0x1.5555555555555p-1")
_TWO_THIRDS_LO = float.fromhex("0x1.5555555555555p-55")
# Bits of 2/pi (1280 of them), for the Payne-Hanek reduction of huge sin/cos arguments.
_TWO_OVER_PI_BITS = (
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561"
    "b7246e3a424dd2e006492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484"
    "e99c7026b45f7e413991d639835339f49c845f8bbdf9283b1ff897ffde05980f"
    "ef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d7527bac7ebe5f17b"
    "3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361d"
)
#: |x| at or above which sin/cos switch from Cody-Waite to Payne-Hanek reduction.
_TRIG_BIG = 2.0**25

_I1 = ir.IntType(1)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


class _Emitter:
    """Instruction helpers for one floating-point type inside one IR builder."""

    def __init__(self, builder: ir.IRBuilder, ty: FloatTy) -> None:
        """Bind to ``builder`` and the scalar float type ``ty``."""
        self.b = builder
        self.module: ir.Module = builder.module
        self.ty = ty
        self.is64 = isinstance(ty, ir.DoubleType)
        self.ity = _I64 if self.is64 else _I32
        self.mant = 52 if self.is64 else 23
        self.bias = 1023 if self.is64 else 127

    # -- constants ----------------------------------------------------------------------
    def f(self, value: float) -> ir.Constant:
        """A float constant of this type (rounded to float32 where needed)."""
        if not self.is64 and value == value and abs(value) != float("inf"):
            value = struct.unpack("f", struct.pack("f", value))[0]
        return ir.Constant(self.ty, value)

    def i(self, value: int) -> ir.Constant:
        """An integer constant of the integer type as wide as this float type."""
        return ir.Constant(self.ity, value)

    # -- intrinsics ---------------------------------------------------------------------
    def _intrinsic(self, base: str, nargs: int, ty: ir.Type | None = None) -> ir.Function:
        """Declare (once) the overloaded intrinsic ``base`` for ``ty``."""
        ty = ty or self.ty
        name = f"{base}.{ty.intrinsic_name}"
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * nargs), name=name)
        return fn

    # -- float arithmetic ---------------------------------------------------------------
    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """a + b."""
        return self.b.fadd(a, b)

    def sub(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """a - b."""
        return self.b.fsub(a, b)

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """a * b."""
        return self.b.fmul(a, b)

    def div(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """a / b."""
        return self.b.fdiv(a, b)

    def neg(self, a: ir.Value) -> ir.Value:
        """-a."""
        return self.b.fneg(a)

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """a * b + c, fused where the target has an FMA (llvm.fmuladd, never a libcall)."""
        return self.b.call(self._intrinsic("llvm.fmuladd", 3), [a, b, c])

    def fabs(self, a: ir.Value) -> ir.Value:
        """|a|."""
        return self.b.call(self._intrinsic("llvm.fabs", 1), [a])

    def copysign(self, mag: ir.Value, sign: ir.Value) -> ir.Value:
        """|mag| with the sign bit of ``sign``."""
        return self.b.call(self._intrinsic("llvm.copysign", 2), [mag, sign])

    def sqrt(self, a: ir.Value) -> ir.Value:
        """Correctly rounded square root (an instruction on every target)."""
        return self.b.call(self._intrinsic("llvm.sqrt", 1), [a])

    def poly(self, x: ir.Value, coefs: Sequence[float]) -> ir.Value:
        """Horner evaluation of sum(coefs[i] * x**i)."""
        acc: ir.Value = self.f(coefs[-1])
        for c in reversed(coefs[:-1]):
            acc = self.fma(acc, x, self.f(c))
        return acc

    def clamp(self, x: ir.Value, lo: float | None, hi: float | None) -> ir.Value:
        """Clamp x to [lo, hi]; NaN passes through unchanged."""
        if hi is not None:
            x = self.sel(self.gt(x, self.f(hi)), self.f(hi), x)
        if lo is not None:
            x = self.sel(self.lt(x, self.f(lo)), self.f(lo), x)
        return x

    # -- comparisons and selection --------------------------------------------------------
    def lt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered a < b."""
        return self.b.fcmp_ordered("<", a, b)

    def le(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered a <= b."""
        return self.b.fcmp_ordered("<=", a, b)

    def gt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered a > b."""
        return self.b.fcmp_ordered(">", a, b)

    def ge(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered a >= b."""
        return self.b.fcmp_ordered(">=", a, b)

    def eq(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered a == b."""
        return self.b.fcmp_ordered("==", a, b)

    def isnan(self, a: ir.Value, b: ir.Value | None = None) -> ir.Value:
        """True where a (or b) is NaN."""
        return self.b.fcmp_unordered("uno", a, a if b is None else b)

    def sel(self, cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        """cond ? a : b."""
        return self.b.select(cond, a, b)

    def and_(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Bitwise / logical and."""
        return self.b.and_(a, b)

    def or_(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Bitwise / logical or."""
        return self.b.or_(a, b)

    # -- bit manipulation ---------------------------------------------------------------
    def bits(self, x: ir.Value) -> ir.Value:
        """Reinterpret a float as its integer bit pattern."""
        return self.b.bitcast(x, self.ity)

    def from_bits(self, n: ir.Value) -> ir.Value:
        """Reinterpret an integer bit pattern as a float."""
        return self.b.bitcast(n, self.ty)

    def int_to_float(self, n: ir.Value) -> ir.Value:
        """Signed integer (small magnitude) to float, through i32 (a vector instruction)."""
        if n.type != _I32:
            n = self.b.trunc(n, _I32)
        return self.b.sitofp(n, self.ty)

    def round_int(self, v: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Round to nearest (ties even) without libm: returns (as float, as integer).

        Valid for |v| < 2**(mantissa bits - 1); other inputs give garbage, never UB.
        """
        magic = self.f(1.5 * 2.0**self.mant)
        t = self.add(v, magic)
        kf = self.sub(t, magic)
        ki = self.b.sub(self.bits(t), self.bits(magic))
        return kf, ki

    def pow2(self, k: ir.Value) -> ir.Value:
        """2**k for an integer k in the normal exponent range."""
        e = self.b.add(k, self.i(self.bias))
        return self.from_bits(self.b.shl(e, self.i(self.mant)))

    def scale(self, p: ir.Value, k: ir.Value) -> ir.Value:
        """p * 2**k for |k| up to twice the exponent range, with one final rounding."""
        off = 4096
        k1 = self.b.sub(self.b.lshr(self.b.add(k, self.i(off)), self.i(1)), self.i(off // 2))
        k2 = self.b.sub(k, k1)
        return self.mul(self.mul(p, self.pow2(k1)), self.pow2(k2))

    # -- exact transformations (no FMA needed) ------------------------------------------------
    def two_sum(self, a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        """s + e == a + b exactly (Knuth)."""
        s = self.add(a, b)
        bv = self.sub(s, a)
        av = self.sub(s, bv)
        e = self.add(self.sub(a, av), self.sub(b, bv))
        return s, e

    def fast_two_sum(self, a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        """s + e == a + b exactly, given |a| >= |b| (Dekker)."""
        s = self.add(a, b)
        e = self.sub(b, self.sub(s, a))
        return s, e

    def _split(self, a: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Veltkamp split of a into two halves of at most 26 bits (float64)."""
        c = self.mul(a, self.f(134217729.0))
        hi = self.sub(c, self.sub(c, a))
        return hi, self.sub(a, hi)

    def two_prod(self, a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        """p + e == a * b exactly (Dekker, no FMA; float64, |a|, |b| < 2**995)."""
        p = self.mul(a, b)
        ah, al = self._split(a)
        bh, bl = self._split(b)
        e = self.add(
            self.add(self.add(self.sub(self.mul(ah, bh), p), self.mul(ah, bl)), self.mul(al, bh)),
            self.mul(al, bl),
        )
        return p, e


# ---------------------------------------------------------------------------------------
# Kernels.  Each takes an emitter and IR values and returns an IR value.
# ---------------------------------------------------------------------------------------

def _exp_reduce(
    e: _Emitter, x: ir.Value, coefs: Sequence[float], lo: float | None, hi: float | None
) -> tuple[ir.Value, ir.Value]:
    """x = k ln2 + r, |r| <= ln2/2: returns (k as integer, expm1(r) polynomial)."""
    xc = e.clamp(x, lo, hi)
    kf, ki = e.round_int(e.mul(xc, e.f(_LOG2E)))
    hi_c, lo_c = (_LN2_HI64, _LN2_LO64) if e.is64 else (_LN2_HI32, _LN2_LO32)
    r = e.sub(e.sub(xc, e.mul(kf, e.f(hi_c))), e.mul(kf, e.f(lo_c)))
    em = e.fma(e.mul(r, r), e.poly(r, coefs), r)
    return ki, em


def _exp_limits(e: _Emitter) -> tuple[float, float]:
    """Clamp range of exp's argument: beyond it the result is 0 or inf anyway."""
    return (-746.0, 710.0) if e.is64 else (-104.0, 89.0)


def _exp_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """exp(x) with overflow to inf, gradual underflow to 0 and NaN propagation."""
    lo, hi = _exp_limits(e)
    ki, em = _exp_reduce(e, x, _EXPM1_64 if e.is64 else _EXP32, lo, hi)
    return e.scale(e.add(e.f(1.0), em), ki)


def _expm1_value(e: _Emitter, x: ir.Value, special: bool = True) -> ir.Value:
    """expm1(x); accurate near 0, -1 for very negative x, inf on overflow."""
    lo, hi = (-40.0, 710.0) if e.is64 else (-20.0, 89.0)
    ki, em = _exp_reduce(e, x, _EXPM1_64 if e.is64 else _EXPM1_32, lo, hi)
    off = 4096
    k1 = e.b.sub(e.b.lshr(e.b.add(ki, e.i(off)), e.i(1)), e.i(off // 2))
    s1 = e.pow2(k1)
    s2 = e.pow2(e.b.sub(ki, k1))
    s = e.mul(s1, s2)
    one = e.f(1.0)
    small = e.fma(s, em, e.sub(s, one))
    big = e.sub(e.mul(e.mul(e.add(em, one), s1), s2), one)
    res = e.sel(e.b.icmp_signed(">=", ki, e.i(e.bias)), big, small)
    if special:
        res = e.sel(e.eq(x, e.f(0.0)), x, res)  # keep the sign of zero
    return res


def _log_reduce(e: _Emitter, x: ir.Value, prescale: bool) -> tuple[ir.Value, ir.Value]:
    """x = 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)): returns (k, f); f is exact."""
    kadj: ir.Value | None = None
    if prescale:  # subnormals: scale into the normal range first
        p = 54 if e.is64 else 25
        tiny = e.lt(x, e.f(2.0 ** (-1022 if e.is64 else -126)))
        x = e.sel(tiny, e.mul(x, e.f(2.0**p)), x)
        kadj = e.sel(tiny, e.i(-p), e.i(0))
    sq = 0x3FE6A09E667F3BCD if e.is64 else 0x3F3504F3  # bits of sqrt(1/2)
    offk = 1024 if e.is64 else 128
    t = e.b.add(e.b.sub(e.bits(x), e.i(sq)), e.i(offk << e.mant))
    k = e.b.sub(e.b.lshr(t, e.i(e.mant)), e.i(offk))
    if kadj is not None:
        k = e.b.add(k, kadj)
    m = e.from_bits(e.b.add(e.b.and_(t, e.i((1 << e.mant) - 1)), e.i(sq)))
    return k, e.sub(m, e.f(1.0))


def _log_combine(e: _Emitter, k: ir.Value, f: ir.Value, c: ir.Value | None = None) -> ir.Value:
    """k ln2 + log(1 + f) + c (fdlibm's arrangement, about 1 ulp)."""
    s = e.div(f, e.add(e.f(2.0), f))
    z = e.mul(s, s)
    r = e.mul(z, e.poly(z, _LOG64 if e.is64 else _LOG32))
    hfsq = e.mul(e.mul(e.f(0.5), f), f)
    kf = e.int_to_float(k)
    hi_c, lo_c = (_LN2_HI64, _LN2_LO64) if e.is64 else (_LN2_HI32, _LN2_LO32)
    low = e.mul(kf, e.f(lo_c))
    if c is not None:
        low = e.add(low, c)
    inner = e.add(e.mul(s, e.add(hfsq, r)), low)
    return e.sub(e.mul(kf, e.f(hi_c)), e.sub(e.sub(hfsq, inner), f))


def _log_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """log(x): -inf at 0, NaN below 0, inf at inf."""
    k, f = _log_reduce(e, x, prescale=True)
    res = _log_combine(e, k, f)
    inf = float("inf")
    res = e.sel(e.eq(x, e.f(inf)), e.f(inf), res)
    res = e.sel(e.eq(x, e.f(0.0)), e.f(-inf), res)
    res = e.sel(e.lt(x, e.f(0.0)), e.f(float("nan")), res)
    return e.sel(e.isnan(x), x, res)


def _log1p_core(e: _Emitter, x: ir.Value, small: bool = False) -> ir.Value:
    """log(1 + x) with the rounding error of 1 + x fed back in (no special cases).

    ``small`` asserts |x| <= 1, which allows the cheaper Fast2Sum.
    """
    one = e.f(1.0)
    if small:
        u, err = e.fast_two_sum(one, x)
    else:
        u, err = e.two_sum(one, x)
    k, f = _log_reduce(e, u, prescale=False)
    return _log_combine(e, k, f, e.div(err, u))


def _log1p_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """log1p(x): accurate for tiny x, -inf at -1, NaN below -1."""
    res = _log1p_core(e, x)
    inf = float("inf")
    res = e.sel(e.eq(x, e.f(inf)), e.f(inf), res)
    res = e.sel(e.eq(x, e.f(-1.0)), e.f(-inf), res)
    res = e.sel(e.lt(x, e.f(-1.0)), e.f(float("nan")), res)
    res = e.sel(e.eq(x, e.f(0.0)), x, res)
    return e.sel(e.isnan(x), x, res)


def _tanh_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """tanh(x) = sign(x) em / (em + 2), em = expm1(2|x|); saturates to +-1."""
    a = e.clamp(e.fabs(x), None, 20.0 if e.is64 else 10.0)
    em = _expm1_value(e, e.add(a, a), special=False)
    return e.copysign(e.div(em, e.add(em, e.f(2.0))), x)


def _exp_neg_abs(e: _Emitter, x: ir.Value) -> ir.Value:
    """exp(-|x|), in (0, 1]."""
    lo, _ = _exp_limits(e)
    ki, em = _exp_reduce(e, e.neg(e.fabs(x)), _EXPM1_64 if e.is64 else _EXP32, lo, None)
    return e.scale(e.add(e.f(1.0), em), ki)


def _sigmoid_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """1 / (1 + exp(-x)), computed as e/(1+e) with e = exp(-|x|) for x < 0."""
    ex = _exp_neg_abs(e, x)
    p = e.div(e.f(1.0), e.add(e.f(1.0), ex))
    return e.sel(e.ge(x, e.f(0.0)), p, e.mul(ex, p))


def _softplus_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """log(1 + exp(x)) = log1p(exp(-|x|)) + max(x, 0)."""
    l1p = _log1p_core(e, _exp_neg_abs(e, x), small=True)
    return e.add(l1p, e.sel(e.gt(x, e.f(0.0)), x, e.f(0.0)))


def _erf_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """erf(x): odd polynomial below 1, 1 - exp(-x^2) erfcx-fit above (pieces by select)."""
    a = e.fabs(x)
    small = e.mul(a, e.poly(e.mul(a, a), _ERF64_A if e.is64 else _ERF32_A))
    pieces = _ERF64_B if e.is64 else _ERF32_B
    ac = e.clamp(a, None, 6.0 if e.is64 else 4.0)
    ndeg = max(len(p[2]) for p in pieces)
    conds = [e.ge(ac, e.f(lo)) for lo, _, _ in pieces[1:]]

    def pick(values: Sequence[float]) -> ir.Value:
        """The value belonging to the piece ``ac`` falls in (a chain of selects)."""
        v: ir.Value = e.f(values[0])
        for cond, val in zip(conds, values[1:]):
            v = e.sel(cond, e.f(val), v)
        return v

    t = e.sub(ac, pick([p[1] for p in pieces]))
    coefs = [pick([p[2][j] if j < len(p[2]) else 0.0 for p in pieces]) for j in range(ndeg)]
    q: ir.Value = coefs[-1]
    for c in reversed(coefs[:-1]):
        q = e.fma(q, t, c)
    ki, em = _exp_reduce(e, e.neg(e.mul(ac, ac)), _EXPM1_64 if e.is64 else _EXP32, None, None)
    gauss = e.scale(e.add(e.f(1.0), em), ki)
    large = e.sub(e.f(1.0), e.mul(gauss, q))
    return e.copysign(e.sel(e.lt(a, e.f(1.0)), small, large), x)


def _two_over_pi_table(module: ir.Module) -> ir.GlobalVariable:
    """The bits of 2/pi as 32-bit words, after one zero word (created once per module)."""
    name = "graphc.math.two_over_pi"
    gv = module.globals.get(name)
    if gv is None:
        words = [0] + [
            int(_TWO_OVER_PI_BITS[i:i + 8], 16) for i in range(0, len(_TWO_OVER_PI_BITS), 8)
        ]
        aty = ir.ArrayType(_I32, len(words))
        gv = ir.GlobalVariable(module, aty, name=name)
        gv.initializer = ir.Constant(aty, words)
        gv.global_constant = True
        gv.linkage = "internal"
        gv.unnamed_addr = True
    return gv


def _payne_hanek(d: _Emitter, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Reduce |x| >= 2^25 (float64) exactly: x = (4n + q) pi/2 + r, returns (q as i32, r).

    Integer arithmetic on 32-bit limbs (32x32->64 products, which vectorise as pmuludq)
    against a 192-bit window of the bits of 2/pi chosen by the exponent of x.
    """
    b = d.b
    ix = d.bits(x)
    mask32 = ir.Constant(_I64, 0xFFFFFFFF)
    bexp = b.and_(b.lshr(ix, ir.Constant(_I64, 52)), ir.Constant(_I64, 0x7FF))
    ex = b.sub(bexp, ir.Constant(_I64, 1075))  # x = M 2^ex
    ex = b.select(b.icmp_signed("<", ex, ir.Constant(_I64, -27)), ir.Constant(_I64, -27), ex)
    ex = b.select(b.icmp_signed(">", ex, ir.Constant(_I64, 971)), ir.Constant(_I64, 971), ex)
    mant = b.or_(b.and_(ix, ir.Constant(_I64, (1 << 52) - 1)), ir.Constant(_I64, 1 << 52))
    m_lo = b.and_(mant, mask32)
    m_hi = b.lshr(mant, ir.Constant(_I64, 32))
    pos = b.add(ex, ir.Constant(_I64, 30))  # first needed bit, counting the zero word
    word = b.lshr(pos, ir.Constant(_I64, 5))
    shift = b.and_(pos, ir.Constant(_I64, 31))
    table = _two_over_pi_table(d.module)
    zero = ir.Constant(_I32, 0)
    raw = []
    for j in range(7):
        ptr = b.gep(table, [zero, b.add(word, ir.Constant(_I64, j))], inbounds=True)
        raw.append(b.zext(b.load(ptr), _I64))
    win = []  # F_0 (most significant) .. F_5
    for j in range(6):
        pair = b.or_(b.shl(raw[j], ir.Constant(_I64, 32)), raw[j + 1])
        win.append(b.and_(b.lshr(b.shl(pair, shift), ir.Constant(_I64, 32)), mask32))
    p_lo = {j: b.mul(m_lo, win[j]) for j in range(5)}
    p_hi = {j: b.mul(m_hi, win[j]) for j in range(1, 6)}

    def lo32(v: ir.Value) -> ir.Value:
        """Low 32 bits of a 64-bit value."""
        return b.and_(v, mask32)

    def hi32(v: ir.Value) -> ir.Value:
        """High 32 bits of a 64-bit value."""
        return b.lshr(v, ir.Constant(_I64, 32))

    def limb(lo_terms: list[ir.Value], hi_terms: list[ir.Value], carry: ir.Value | None) -> ir.Value:
        """One 32-bit limb of the product plus carries (unreduced, < 2^35)."""
        acc = lo32(lo_terms[0])
        for v in lo_terms[1:]:
            acc = b.add(acc, lo32(v))
        for v in hi_terms:
            acc = b.add(acc, hi32(v))
        if carry is not None:
            acc = b.add(acc, hi32(carry))
        return acc

    l2 = limb([p_lo[3], p_hi[4]], [p_lo[4], p_hi[5]], None)
    l3 = limb([p_lo[2], p_hi[3]], [p_lo[3], p_hi[4]], l2)
    l4 = limb([p_lo[1], p_hi[2]], [p_lo[2], p_hi[3]], l3)
    l5 = limb([p_lo[0], p_hi[1]], [p_lo[1], p_hi[2]], l4)
    l2, l3, l4, l5 = (lo32(v) for v in (l2, l3, l4, l5))
    two = ir.Constant(_I64, 2)
    thirty = ir.Constant(_I64, 30)

    def frac_word(h: ir.Value, lo: ir.Value | None) -> ir.Value:
        """32 fraction bits: limb ``h`` shifted past the 2 integer bits, topped up from ``lo``."""
        v = b.shl(h, two)
        if lo is not None:
            v = b.or_(v, b.lshr(lo, thirty))
        return b.trunc(v, _I32)

    a0 = frac_word(l5, l4)  # fraction bits 2^-1 .. 2^-32, read as signed: f in [-1/2, 1/2)
    a1 = frac_word(l4, l3)
    a2 = frac_word(l3, l2)
    a3 = frac_word(l2, None)
    f = d.mul(b.sitofp(a0, d.ty), d.f(2.0**-32))
    f = d.add(f, d.mul(b.uitofp(a1, d.ty), d.f(2.0**-64)))
    f = d.add(f, d.mul(b.uitofp(a2, d.ty), d.f(2.0**-96)))
    f = d.add(f, d.mul(b.uitofp(a3, d.ty), d.f(2.0**-128)))
    q = b.add(b.trunc(b.lshr(l5, thirty), _I32), b.lshr(a0, ir.Constant(_I32, 31)))
    r = d.add(d.mul(f, d.f(_PIO2)), d.mul(f, d.f(_PIO2_LO)))
    return q, r


def _two_over_pi_chunks(module: ir.Module) -> ir.GlobalVariable:
    """Per-exponent windows of 2/pi for float32 arguments (created once per module).

    Entry 4*E + j (E = 0..104, j = 0..3) is sum(b_i 2^(E-i)) over the 28 bits
    i = E-1+28j .. E+26+28j of 2/pi = sum(b_i 2^-i): a double with at most 28 significant
    bits, so its product with a 24-bit integer mantissa is exact.
    """
    name = "graphc.math.two_over_pi_f32"
    gv = module.globals.get(name)
    if gv is None:
        nbits = 4 * len(_TWO_OVER_PI_BITS)
        big = int(_TWO_OVER_PI_BITS, 16)  # 2/pi ~= big * 2^-nbits

        def bit(i: int) -> int:
            """Bit i (weight 2^-i) of 2/pi; zero outside the stored range."""
            return (big >> (nbits - i)) & 1 if 1 <= i <= nbits else 0

        values = []
        for ex in range(_F32_MAX_E + 1):
            for j in range(4):
                first = ex - 1 + 28 * j
                word = 0
                for i in range(first, first + 28):
                    word = (word << 1) | bit(i)
                # weight of the last bit is 2^(ex - first - 27)
                values.append(float(word) * 2.0 ** (ex - first - 27))
        aty = ir.ArrayType(ir.DoubleType(), len(values))
        gv = ir.GlobalVariable(module, aty, name=name)
        gv.initializer = ir.Constant(aty, values)
        gv.global_constant = True
        gv.linkage = "internal"
        gv.unnamed_addr = True
    return gv


_F32_MAX_E = 104  # float32: x = M 2^E with a 24-bit M, E <= 127 - 23


def _payne_hanek_f32(d: _Emitter, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Reduce a float32 value |x| >= 2^25 held in a float64: returns (q as i32, r).

    x = M 2^E with M < 2^24; x (2/pi) mod 4 = M W(E) mod 4 where W(E) holds the bits of
    2/pi from weight 2^(1-E) on, stored as four exact 28-bit chunks (112 bits).
    """
    b = d.b
    ax = d.fabs(x)
    bexp = b.and_(b.lshr(d.bits(ax), d.i(52)), d.i(0x7FF))
    ex = b.sub(bexp, d.i(1023 + 23))
    ex = b.select(b.icmp_signed("<", ex, d.i(0)), d.i(0), ex)
    ex = b.select(b.icmp_signed(">", ex, d.i(_F32_MAX_E)), d.i(_F32_MAX_E), ex)
    mant = d.mul(ax, d.pow2(b.neg(ex)))  # the integer M, exactly
    table = _two_over_pi_chunks(d.module)
    zero = ir.Constant(_I32, 0)
    base = b.shl(ex, d.i(2))
    chunk = [
        b.load(b.gep(table, [zero, b.add(base, d.i(j))], inbounds=True)) for j in range(4)
    ]
    p0 = d.mul(mant, chunk[0])  # < 2^26, multiple of 2^-26: exact
    nf, _ = d.round_int(d.mul(p0, d.f(0.25)))
    p0 = d.sub(p0, d.mul(nf, d.f(4.0)))  # exact, in [-2, 2]
    p1 = d.mul(mant, chunk[1])
    kf, ki = d.round_int(d.add(p0, p1))
    f = d.add(d.add(d.add(d.sub(p0, kf), p1), d.mul(mant, chunk[2])), d.mul(mant, chunk[3]))
    r = d.add(d.mul(f, d.f(_PIO2)), d.mul(f, d.f(_PIO2_LO)))
    return b.trunc(ki, _I32), r


def _trig_reduce(d: _Emitter, x: ir.Value, single: bool) -> tuple[ir.Value, ir.Value]:
    """x (float64) = q pi/2 + r, |r| <= pi/4: returns (q as i32, r).

    ``single`` says x is a float32 value (cheaper reduction of huge arguments).
    """
    kf, ki = d.round_int(d.mul(x, d.f(_TWO_OVER_PI)))
    r = x
    for c in _PIO2_CW:
        r = d.sub(r, d.mul(kf, d.f(c)))
    q_med = d.b.trunc(ki, _I32)
    q_big, r_big = (_payne_hanek_f32 if single else _payne_hanek)(d, x)
    neg = d.lt(x, d.f(0.0))
    q_big = d.b.select(neg, d.b.neg(q_big), q_big)
    r_big = d.sel(neg, d.neg(r_big), r_big)
    big = d.ge(d.fabs(x), d.f(_TRIG_BIG))
    return d.b.select(big, q_big, q_med), d.sel(big, r_big, r)


def _sincos_value(e: _Emitter, x: ir.Value, cos: bool) -> ir.Value:
    """sin(x) or cos(x); float32 is computed in float64 and rounded once."""
    d = _Emitter(e.b, ir.DoubleType())
    xd = x if e.is64 else e.b.fpext(x, d.ty)
    q, r = _trig_reduce(d, xd, single=not e.is64)
    z = d.mul(r, r)
    s_c, c_c = (_SIN64, _COS64) if e.is64 else (_SIN_LO, _COS_LO)
    sin_r = d.fma(d.mul(r, z), d.poly(z, s_c), r)
    hz = d.mul(d.f(0.5), z)
    w = d.sub(d.f(1.0), hz)
    cos_r = d.add(w, d.add(d.sub(d.sub(d.f(1.0), w), hz), d.mul(d.mul(z, z), d.poly(z, c_c))))
    b = e.b
    if cos:
        q = b.add(q, ir.Constant(_I32, 1))
    odd = b.trunc(q, _I1)
    negate = b.icmp_unsigned("!=", b.and_(q, ir.Constant(_I32, 2)), ir.Constant(_I32, 0))
    v = d.sel(odd, cos_r, sin_r)
    v = d.sel(negate, d.neg(v), v)
    v = d.sel(d.eq(d.fabs(xd), d.f(float("inf"))), d.f(float("nan")), v)
    if not e.is64:
        v = b.fptrunc(v, e.ty)
    if not cos:
        v = e.sel(e.eq(x, e.f(0.0)), x, v)  # sin(-0) = -0
    return v


def _pow_core64(d: _Emitter, ax: ir.Value, y: ir.Value) -> ir.Value:
    """|x|**y for finite positive |x| (float64): exp(y log|x|) with log in double-double."""
    k, f = _log_reduce(d, ax, prescale=True)
    # s = f / (2 + f) as sh + sl
    dh, dl = d.fast_two_sum(d.f(2.0), f)
    sh = d.div(f, dh)
    ph, pl = d.two_prod(sh, dh)
    sl = d.div(d.sub(d.sub(d.sub(f, ph), pl), d.mul(sh, dl)), dh)
    z = d.mul(sh, sh)
    # (2/3) s^3 as t3h + t3l
    qh, ql = d.two_prod(sh, sh)
    s2l = d.add(ql, d.mul(d.mul(d.f(2.0), sh), sl))
    ch, cl = d.two_prod(qh, sh)
    s3l = d.add(d.add(cl, d.mul(s2l, sh)), d.mul(qh, sl))
    t3h, t3e = d.two_prod(ch, d.f(_TWO_THIRDS_HI))
    t3l = d.add(d.add(t3e, d.mul(ch, d.f(_TWO_THIRDS_LO))), d.mul(s3l, d.f(_TWO_THIRDS_HI)))
    t5 = d.mul(d.mul(d.mul(z, z), sh), d.poly(z, _LOGQ64))
    kf = d.int_to_float(k)
    h1, e1 = d.two_sum(d.mul(kf, d.f(_LN2_HI64)), d.add(sh, sh))
    h2, e2 = d.two_sum(h1, t3h)
    low = d.add(d.mul(kf, d.f(_LN2_LO64)), d.add(d.add(sl, sl), d.add(t3l, t5)))
    lh, ll = d.fast_two_sum(h2, d.add(d.add(e1, e2), low))
    # y * log|x| as zh + zl
    zh, zl = d.two_prod(y, lh)
    zl = d.add(zl, d.mul(y, ll))
    lo, hi = _exp_limits(d)
    out = d.or_(d.gt(zh, d.f(hi)), d.lt(zh, d.f(lo)))
    zl = d.sel(out, d.f(0.0), zl)
    zh = d.clamp(zh, lo, hi)
    kf2, ki2 = d.round_int(d.mul(zh, d.f(_LOG2E)))
    r = d.sub(d.sub(zh, d.mul(kf2, d.f(_LN2_HI64))), d.mul(kf2, d.f(_LN2_LO64)))
    r = d.add(r, zl)
    em = d.fma(d.mul(r, r), d.poly(r, _EXPM1_64), r)
    return d.scale(d.add(d.f(1.0), em), ki2)


def _pow_value(e: _Emitter, x: ir.Value, y: ir.Value) -> ir.Value:
    """x**y with C99 / NumPy semantics for zeros, infinities, NaN and negative bases."""
    b = e.b
    ax = e.fabs(x)
    ay = e.fabs(y)
    if e.is64:
        core = _pow_core64(e, ax, y)
    else:  # float32: float64 log and exp are accurate enough (error ~2^-45)
        d = _Emitter(b, ir.DoubleType())
        lg = _log_combine(d, *_log_reduce(d, b.fpext(ax, d.ty), prescale=False))
        core = b.fptrunc(_exp_value(d, d.mul(b.fpext(y, d.ty), lg)), e.ty)
    two_m = e.f(2.0**e.mant)
    t = e.add(ay, two_m)
    small_int = e.eq(e.sub(t, two_m), ay)
    is_int = e.or_(e.ge(ay, two_m), small_int)
    odd_small = e.and_(small_int, b.trunc(e.bits(t), _I1))
    odd_mid = e.and_(e.lt(ay, e.f(2.0 ** (e.mant + 1))), b.trunc(e.bits(ay), _I1))
    is_odd = e.sel(e.lt(ay, two_m), odd_small, e.and_(e.ge(ay, two_m), odd_mid))
    inf = e.f(float("inf"))
    zero = e.f(0.0)
    one = e.f(1.0)
    nan = e.f(float("nan"))
    neg_x = e.lt(x, zero)
    y_neg = e.lt(y, zero)
    res = e.sel(e.and_(neg_x, is_odd), e.neg(core), core)
    res = e.sel(e.and_(neg_x, b.not_(is_int)), nan, res)
    # x == +-0
    zr = e.sel(y_neg, inf, zero)
    zr = e.sel(is_odd, e.copysign(zr, x), zr)
    res = e.sel(e.eq(x, zero), zr, res)
    # x == +-inf
    ir_ = e.sel(y_neg, zero, inf)
    ir_ = e.sel(e.and_(is_odd, neg_x), e.neg(ir_), ir_)
    res = e.sel(e.eq(ax, inf), ir_, res)
    # y == +-inf
    yi = e.sel(b.xor(e.gt(ax, one), y_neg), inf, zero)
    yi = e.sel(e.eq(ax, one), one, yi)
    res = e.sel(e.eq(ay, inf), yi, res)
    res = e.sel(e.isnan(x, y), nan, res)
    return e.sel(e.or_(e.eq(y, zero), e.eq(x, one)), one, res)


def _sqrt_value(e: _Emitter, x: ir.Value) -> ir.Value:
    """Correctly rounded sqrt (NaN below zero, sqrt(-0) = -0)."""
    return e.sqrt(x)


_KERNELS: dict[str, Callable[..., ir.Value]] = {
    "exp": _exp_value,
    "expm1": _expm1_value,
    "log": _log_value,
    "log1p": _log1p_value,
    "tanh": _tanh_value,
    "sigmoid": _sigmoid_value,
    "softplus": _softplus_value,
    "erf": _erf_value,
    "sin": lambda e, x: _sincos_value(e, x, cos=False),
    "cos": lambda e, x: _sincos_value(e, x, cos=True),
    "sqrt": _sqrt_value,
    "pow": _pow_value,
}


def math_function(module: ir.Module, name: str, ty: FloatTy) -> ir.Function:
    """Return the IR function computing ``name`` on scalars of type ``ty`` in ``module``.

    The function is created on first use and then reused (it is looked up by its symbol
    name, ``graphc.math.<name>.<f32|f64>``).  It has ``internal`` linkage and the
    ``alwaysinline`` attribute, takes one argument of type ``ty`` (two for ``pow``) and
    returns ``ty``.  Its body has no branches and calls no library function, so loops
    calling it vectorise.

    Raises graphc.errors.InputError for an unknown name, graphc.errors.DTypeError for a
    type other than float or double.
    """
    from graphc.errors import DTypeError, InputError

    if name not in MATH_FUNCTIONS:
        raise InputError(
            f"unknown math function {name!r}; known: {', '.join(sorted(MATH_FUNCTIONS))}"
        )
    if isinstance(ty, ir.DoubleType):
        suffix = "f64"
    elif isinstance(ty, ir.FloatType):
        suffix = "f32"
    else:
        raise DTypeError(f"math function {name!r} needs float or double, got {ty}")
    symbol = f"graphc.math.{name}.{suffix}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    nargs = MATH_FUNCTIONS[name]
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * nargs), name=symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    result = _KERNELS[name](_Emitter(builder, ty), *fn.args)
    builder.ret(result)
    return fn
