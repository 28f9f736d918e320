"""The closed set of primitive ops.

An op is an enum member; what it means lives in tables keyed by op: shape and dtype
inference (``graphc.ir.infer``), the NumPy reference (``graphc.interp``), the VJP
(``graphc.autodiff.vjp``) and the native lowering (``graphc.lower``). Compound operations
(mean, softmax cross-entropy, conv as matmul, ...) are built from these in the frontend.
"""
from __future__ import annotations

import enum


class Op(enum.Enum):
    """A primitive operation of the IR."""

    # leaves
    PLACEHOLDER = "placeholder"  # attrs: name, uid
    SHARED = "shared"  # attrs: name, uid (the value lives in a SharedVariable)
    CONSTANT = "constant"  # attrs: value (ConstValue)
    DIM = "dim"  # attrs: expr -- the runtime value of a symbolic size, int64 scalar
    RANDOM = "random"  # attrs: dist, seed, uid; reads the per-call rng step

    # elementwise, one input
    NEG = "neg"
    ABS = "abs"
    SIGN = "sign"
    EXP = "exp"
    EXPM1 = "expm1"
    LOG = "log"
    LOG1P = "log1p"
    SQRT = "sqrt"
    SIN = "sin"
    COS = "cos"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    SOFTPLUS = "softplus"
    ERF = "erf"
    RELU = "relu"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    NOT = "logical_not"
    CAST = "cast"  # attrs: dtype

    # elementwise, two inputs (NumPy broadcasting)
    ADD = "add"
    SUB = "subtract"
    MUL = "multiply"
    DIV = "divide"
    POW = "power"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    EQ = "equal"
    NE = "not_equal"
    LT = "less"
    LE = "less_equal"
    GT = "greater"
    GE = "greater_equal"
    AND = "logical_and"
    OR = "logical_or"
    XOR = "logical_xor"

    # elementwise, three inputs
    WHERE = "where"

    # reductions: attrs axes (sorted tuple); the reduced axes are removed
    SUM = "sum"
    PROD = "prod"
    MAX = "max"
    MIN = "min"
    ARGMAX = "argmax"  # attrs: axis
    ARGMIN = "argmin"  # attrs: axis

    # linear algebra
    MATMUL = "matmul"  # (..., m, k) @ (..., k, n), batch dims broadcast

    # data movement
    RESHAPE = "reshape"  # attrs: shape
    TRANSPOSE = "transpose"  # attrs: perm
    BROADCAST = "broadcast_to"  # attrs: shape
    CONCAT = "concatenate"  # attrs: axis
    SLICE = "slice"  # attrs: begin, end, step (step > 0)
    PAD = "pad"  # attrs: lo, hi, interior, value
    TAKE = "take"  # inputs: x, indices; attrs: axis
    SCATTER_ADD = "scatter_add"  # inputs: updates, indices; attrs: axis, size

    # convolution windows (im2col and its adjoint), channels-last: x (batch, *spatial, channels)
    PATCHES = "patches"  # attrs: ksize, strides, dilation -> (batch, *outs, prod(ksize) * channels)
    PATCHES_ADJOINT = "patches_adjoint"  # attrs: ksize, strides, dilation, size: sums windows back

    # normalisers with a fused kernel of their own
    SOFTMAX = "softmax"  # attrs: axis
    LOG_SOFTMAX = "log_softmax"  # attrs: axis

    # loops (Theano's scan): one node whose body is a graph; see graphc/ir/scan.py
    SCAN = "scan"  # inputs: init carries, sequences, invariants; attrs: body, length, reverse, keep
    SCAN_OUTPUT = "scan_output"  # input: a SCAN; attrs: index (a carry, stacked or final, or a y)

    # made by the fusion pass: a chain of elementwise ops in one loop, maybe closed by a sum
    FUSED = "fused"  # attrs: expr, reduce_axes (None or tuple), dtype


UNARY = frozenset({
    Op.NEG, Op.ABS, Op.SIGN, Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.SQRT, Op.SIN, Op.COS,
    Op.TANH, Op.SIGMOID, Op.SOFTPLUS, Op.ERF, Op.RELU, Op.FLOOR, Op.CEIL, Op.ROUND, Op.NOT,
    Op.CAST,
})
FLOAT_UNARY = frozenset({
    Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.SQRT, Op.SIN, Op.COS, Op.TANH, Op.SIGMOID,
    Op.SOFTPLUS, Op.ERF,
})
ARITHMETIC = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAXIMUM, Op.MINIMUM})
COMPARISON = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})
LOGICAL = frozenset({Op.AND, Op.OR, Op.XOR})
BINARY = ARITHMETIC | COMPARISON | LOGICAL
ELEMENTWISE = UNARY | BINARY | {Op.WHERE}
REDUCTIONS = frozenset({Op.SUM, Op.PROD, Op.MAX, Op.MIN})
ARG_REDUCTIONS = frozenset({Op.ARGMAX, Op.ARGMIN})
LEAVES = frozenset({Op.PLACEHOLDER, Op.SHARED, Op.CONSTANT, Op.DIM, Op.RANDOM})
