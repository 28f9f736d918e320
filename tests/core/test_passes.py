"""Rewrite passes: values are preserved on random graphs, and each rewrite does what it says.

The property test builds random small graphs (elementwise ops, reductions, reshapes and
transposes, matmul, softmax, constants that invite folding and simplification) over 1-3
placeholders with broadcasting shapes, and checks the interpreter before optimisation
(opt_level 0) == after (opt_level 2) == native code (when the backend exists).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.errors import DTypeError, ShapeError
from graphc.ir import Op
from graphc.ir.ops import ELEMENTWISE

O0 = gc.CompileOptions(opt_level=0)
O1 = gc.CompileOptions(opt_level=1)
O2 = gc.CompileOptions(opt_level=2)
RTOL = {"float32": 2e-4, "float64": 1e-9}  # rewrites reorder float arithmetic (log1p, folding)


def ops_of(fn) -> list[Op]:
    return [n.op for n in fn.graph.nodes()]


# ----------------------------------------------------------------------------- random graphs
UNARY = {
    "neg": lambda x: -x,
    "abs": gc.ops.abs,
    "exp_tanh": lambda x: gc.ops.exp(gc.ops.tanh(x)),
    "tanh": gc.ops.tanh,
    "sigmoid": gc.ops.sigmoid,
    "softplus": gc.ops.softplus,
    "relu": gc.ops.relu,
    "sin": gc.ops.sin,
    "square": gc.ops.square,
    "log_1p_sq": lambda x: gc.ops.log(1.0 + x * x),  # stability: log1p
    "log_sigmoid": lambda x: gc.ops.log(gc.ops.sigmoid(x)),  # stability: -softplus(-x)
    "expm1_form": lambda x: gc.ops.exp(gc.ops.tanh(x)) - 1.0,  # stability: expm1
    "sqrt_safe": lambda x: gc.ops.sqrt(x * x + 0.5),
    "times_one_plus_zero": lambda x: x * 1.0 + 0.0,  # simplify
    "neg_neg": lambda x: -(-x),  # simplify
    "const_fold": lambda x: x * (gc.constant(np.float32(2.0)) * 1.5 - 1.0),  # folding
    "cast_roundtrip": lambda x: gc.ops.cast(gc.ops.cast(x, "float64"), x.dtype),
    "clip": lambda x: gc.ops.clip(x, -1.0, 1.5),
    "scale": lambda x: 0.5 * x + 0.25,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div_safe": lambda a, b: a / (gc.ops.abs(b) + 1.0),
    "maximum": gc.ops.maximum,
    "minimum": gc.ops.minimum,
    "where_gt": lambda a, b: gc.ops.where(a > b, a, b * 0.5),
}


def _reduce(kind: str, x, axis, keepdims):
    return getattr(gc.ops, kind)(x, axis=axis, keepdims=keepdims)


@st.composite
def graphs(draw):
    """(placeholders, arrays, outputs, description) for a random small graph."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    ndim = draw(st.integers(1, 3))
    base = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    n_inputs = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_inputs):
        k = draw(st.integers(0, ndim))  # drop k leading axes, then set some axes to 1
        shp = [d if not draw(st.booleans()) or d == 1 else (1 if draw(st.integers(0, 3)) == 0 else d)
               for d in base[k:]]
        shapes.append(tuple(shp))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    xs = [gc.placeholder(s, dtype, name=f"x{i}") for i, s in enumerate(shapes)]
    arrays = [rng.uniform(-2, 2, s).astype(dtype) for s in shapes]
    pool = list(xs)
    log = [f"{x.name}: {x.shape}" for x in xs]
    for _ in range(draw(st.integers(2, 8))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "chain_reduce", "shape",
                                     "matmul", "softmax"]))
        a = draw(st.sampled_from(pool))
        try:
            if kind == "unary":
                name = draw(st.sampled_from(sorted(UNARY)))
                new = UNARY[name](a)
            elif kind == "binary":
                name = draw(st.sampled_from(sorted(BINARY)))
                b = draw(st.sampled_from(pool))
                new = BINARY[name](a, b)
            elif kind == "reduce":
                if a.ndim == 0:
                    continue
                red = draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]))
                axis = draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
                keep = draw(st.booleans())
                name = f"{red}(axis={axis}, keepdims={keep})"
                new = _reduce(red, a, axis, keep)
            elif kind == "chain_reduce":
                # an elementwise chain used only by a sum or mean: fusion closes the loop with it
                if a.ndim == 0:
                    continue
                u, bname = draw(st.sampled_from(sorted(UNARY))), draw(st.sampled_from(sorted(BINARY)))
                b = draw(st.sampled_from(pool))
                red = draw(st.sampled_from(["sum", "mean"]))
                axis = draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
                keep = draw(st.booleans())
                name = f"{red}({bname}({u}(a), b), axis={axis}, keepdims={keep})"
                new = _reduce(red, BINARY[bname](UNARY[u](a), b), axis, keep)
            elif kind == "shape":
                which = draw(st.sampled_from(["T", "flatten", "expand", "reshape_last", "slice", "flip"]))
                name = which
                if which == "T":
                    new = a.T
                elif which == "flatten":
                    new = gc.ops.reshape(a, (-1,))
                elif which == "expand":
                    new = gc.ops.expand_dims(a, 0)
                elif which == "reshape_last":
                    if a.ndim == 0:
                        continue
                    new = gc.ops.reshape(a, (-1, a.shape[-1]))
                elif which == "slice":
                    if a.ndim == 0:
                        continue
                    new = a[..., 1:] if a.shape[-1] > 1 else a[..., :1]
                else:
                    if a.ndim == 0:
                        continue
                    new = a[::-1]
            elif kind == "matmul":
                b = draw(st.sampled_from(pool))
                if a.ndim == 0 or b.ndim == 0:
                    continue
                name = "matmul"
                fits = a.shape[-1] == (b.shape[-2] if b.ndim >= 2 else b.shape[0])
                if not fits and b.ndim >= 2 and b.shape[-1] == a.shape[-1]:
                    b, name = gc.ops.swapaxes(b, -1, -2), "matmul(a, b^T)"
                elif not fits:  # a with itself always fits
                    b, name = (gc.ops.swapaxes(a, -1, -2), "matmul(a, a^T)") if a.ndim >= 2 else (a, "matmul(a, a)")
                new = a @ b
            else:
                if a.ndim == 0:
                    continue
                axis = draw(st.integers(-a.ndim, a.ndim - 1))
                log_it = draw(st.booleans())
                name = f"{'log_' if log_it else ''}softmax(axis={axis})"
                new = gc.ops.softmax(a, axis=axis)
                if log_it:
                    new = gc.ops.log(new)  # stability: log_softmax
        except (ShapeError, DTypeError):
            continue
        if new.dtype != dtype or int(np.prod([d for d in new.shape])) > 4096:
            continue
        log.append(f"{name} -> {new.shape}")
        pool.append(new)
    n_out = draw(st.integers(1, 2))
    outs = pool[-n_out:]
    return xs, arrays, outs, log


def _close(a, b, dtype, what):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=RTOL[dtype],
                               atol=RTOL[dtype], equal_nan=True, err_msg=what)


@settings(max_examples=60)
@given(graphs())
def test_passes_preserve_values(mode, g):
    xs, arrays, outs, log = g
    note("\n".join(log))
    dtype = xs[0].dtype
    before = gc.function(xs, outs, mode="reference", options=O0)(*arrays)
    assume(all(np.all(np.isfinite(v)) for v in before))
    after = gc.function(xs, outs, mode="reference", options=O2)
    for v0, v2, o in zip(before, after(*arrays), outs):
        assert np.shape(v2) == np.shape(v0) == tuple(o.shape)
        assert np.asarray(v2).dtype == np.asarray(v0).dtype
        _close(v2, v0, dtype, "opt_level 2 vs opt_level 0 (reference)")
    if mode == "native":
        for level in (O0, O2):
            native = gc.function(xs, outs, mode="native", options=level)(*arrays)
            for v0, vn in zip(before, native):
                assert np.asarray(vn).dtype == np.asarray(v0).dtype
                _close(vn, v0, dtype, f"native opt_level {level.opt_level} vs reference opt_level 0")


@given(graphs())
def test_opt_level_1_preserves_values(g):
    xs, arrays, outs, log = g
    note("\n".join(log))
    before = gc.function(xs, outs, mode="reference", options=O0)(*arrays)
    assume(all(np.all(np.isfinite(v)) for v in before))
    for v0, v1 in zip(before, gc.function(xs, outs, mode="reference", options=O1)(*arrays)):
        _close(v1, v0, xs[0].dtype, "opt_level 1 vs opt_level 0")


# ----------------------------------------------------------------------------- stability
def test_log_softmax_rewrite_is_stable(mode):
    x = gc.placeholder((None, 3), "float32", name="x")
    out = gc.ops.log(gc.ops.softmax(x, axis=-1))
    fn = gc.function([x], out, mode=mode, options=O2)
    ops = ops_of(fn)
    assert Op.LOG_SOFTMAX in ops and Op.SOFTMAX not in ops and Op.LOG not in ops, ops
    xv = np.array([[0.0, -1000.0, 5.0], [1.0, 2.0, 3.0]], np.float32)
    naive = gc.function([x], out, mode="reference", options=O0)(xv)
    assert np.isneginf(naive[0, 1]), "the naive graph should underflow (else this test tests nothing)"
    got = fn(xv)
    assert np.all(np.isfinite(got))
    ref = xv - xv.max(1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(1, keepdims=True))
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_log1p_rewrite(mode):
    x = gc.placeholder((4,), "float32", name="x")
    fn = gc.function([x], gc.ops.log(1 + x), mode=mode, options=O1)
    ops = ops_of(fn)
    assert Op.LOG1P in ops and Op.LOG not in ops and Op.ADD not in ops, ops
    fn_xplus1 = gc.function([x], gc.ops.log(x + 1.0), mode="reference", options=O1)
    assert Op.LOG1P in ops_of(fn_xplus1)
    xv = np.array([1e-10, 1e-6, 0.5, 3.0], np.float32)
    naive = gc.function([x], gc.ops.log(1 + x), mode="reference", options=O0)(xv)
    assert naive[0] == 0.0  # 1 + 1e-10 rounds to 1 in float32
    np.testing.assert_allclose(fn(xv), np.log1p(xv.astype(np.float64)), rtol=1e-6)


def test_log_sigmoid_rewrite(mode):
    x = gc.placeholder((4,), "float32", name="x")
    out = gc.ops.log(gc.ops.sigmoid(x))
    fn = gc.function([x], out, mode=mode, options=O1)
    ops = ops_of(fn)
    assert Op.SOFTPLUS in ops and Op.SIGMOID not in ops and Op.LOG not in ops, ops
    xv = np.array([-200.0, -5.0, 0.0, 30.0], np.float32)
    naive = gc.function([x], out, mode="reference", options=O0)(xv)
    assert np.isneginf(naive[0])
    expected = -np.logaddexp(0, -xv.astype(np.float64))
    np.testing.assert_allclose(fn(xv), expected, rtol=1e-6)


def test_log_one_minus_sigmoid_rewrite(mode):
    x = gc.placeholder((3,), "float64", name="x")
    out = gc.ops.log(1 - gc.ops.sigmoid(x))
    fn = gc.function([x], out, mode=mode, options=O1)
    ops = ops_of(fn)
    assert Op.SOFTPLUS in ops and Op.SIGMOID not in ops, ops
    xv = np.array([800.0, 0.0, -3.0])
    np.testing.assert_allclose(fn(xv), -np.logaddexp(0, xv), rtol=1e-12)


def test_expm1_rewrite(mode):
    x = gc.placeholder((3,), "float32", name="x")
    fn = gc.function([x], gc.ops.exp(x) - 1, mode=mode, options=O1)
    ops = ops_of(fn)
    assert Op.EXPM1 in ops and Op.EXP not in ops, ops
    xv = np.array([1e-9, 0.1, -2.0], np.float32)
    np.testing.assert_allclose(fn(xv), np.expm1(xv.astype(np.float64)), rtol=1e-6)


def test_gradient_of_cross_entropy_uses_stable_form():
    """grad stabilises first: d/dx of -log(softmax(x))[k] stays finite where softmax underflows."""
    x = gc.placeholder((1, 3), "float64", name="x")
    loss = -gc.ops.sum(gc.ops.log(gc.ops.softmax(x)) * gc.constant(np.array([[0.0, 1.0, 0.0]])))
    g = gc.grad(loss, x)
    fn = gc.function([x], g, mode="reference", options=O0)
    got = fn(np.array([[0.0, -1000.0, 0.0]]))
    np.testing.assert_allclose(got, [[0.5, -1.0, 0.5]], rtol=1e-12)


# ----------------------------------------------------------------------------- simplification, folding
def test_identities_disappear(mode):
    x = gc.placeholder((3, 4), "float32", name="x")
    for expr in (x * 1, 1 * x, x + 0, 0.0 + x, x - 0, x / 1, -(-x), gc.ops.maximum(x, x),
                 gc.ops.cast(x, "float32"), gc.ops.transpose(gc.ops.transpose(x))):
        fn = gc.function([x], expr, mode=mode, options=O1)
        assert fn.graph.outputs[0] is x, gc.debugprint(fn.graph.outputs, file=False)
    # x * 1 with broadcasting to a bigger shape is not an identity and must stay
    big = x * gc.constant(np.ones((2, 3, 4), np.float32))
    fn = gc.function([x], big, mode=mode, options=O1)
    assert fn(np.ones((3, 4), np.float32)).shape == (2, 3, 4)


def test_reshape_of_reshape_collapses():
    x = gc.placeholder((2, 3, 4), "float32", name="x")
    out = gc.ops.reshape(gc.ops.reshape(x, (6, 4)), (4, 6))
    fn = gc.function([x], out, mode="reference", options=O1)
    assert [n.op for n in fn.graph.nodes()] == [Op.PLACEHOLDER, Op.RESHAPE]
    xv = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(fn(xv), xv.reshape(4, 6))


def test_constant_folding(mode):
    x = gc.placeholder((3,), "float32", name="x")
    c = gc.constant(np.array([1.0, 2.0, 3.0], np.float32))
    out = x + (gc.ops.exp(c * 0.0) * 2.0 + gc.ops.sum(c))  # = x + 8
    fn = gc.function([x], out, mode=mode, options=O1)
    nodes = fn.graph.nodes()
    assert sorted(n.op.name for n in nodes) == ["ADD", "CONSTANT", "PLACEHOLDER"], gc.debugprint(nodes[-1], file=False)
    (const,) = [n for n in nodes if n.op is Op.CONSTANT]
    np.testing.assert_array_equal(const.attrs["value"].array, np.full(3, 8.0, np.float32))
    np.testing.assert_array_equal(fn(np.zeros(3, np.float32)), np.full(3, 8.0, np.float32))


def test_folding_a_whole_graph():
    x = gc.placeholder((2,), "float64", name="x")
    out = gc.ops.sum(gc.ops.softmax(gc.constant(np.array([1.0, 2.0]))))
    fn = gc.function([x], [out, x], mode="reference", options=O1)
    assert fn.graph.outputs[0].op is Op.CONSTANT
    np.testing.assert_allclose(fn(np.zeros(2))[0], 1.0, rtol=1e-15)


def test_common_subexpressions_merge():
    x = gc.placeholder((3,), "float32", name="x")
    a = gc.ops.exp(x) * 2
    b = gc.ops.exp(x) * 2
    assert a is b  # interned nodes: equal expressions are one node
    fn = gc.function([x], [a + b], mode="reference", options=O0)
    assert sum(1 for n in fn.graph.nodes() if n.op is Op.EXP) == 1


# ----------------------------------------------------------------------------- fusion
def test_fusion_relu_chain_is_one_kernel(mode):
    x = gc.placeholder((8, 5), "float32", name="x")
    y = gc.placeholder((8, 5), "float32", name="y")
    out = gc.ops.relu(x * 2 + 1) * y
    fn = gc.function([x, y], out, mode=mode)  # default options: opt_level 2 fuses
    nodes = fn.graph.nodes()
    fused = [n for n in nodes if n.op is Op.FUSED]
    other_elementwise = [n for n in nodes if n.op in ELEMENTWISE]
    # the test says so by counting: one fused kernel, no other elementwise node
    assert len(fused) == 1, gc.debugprint(fn.graph.outputs, file=False)
    assert len(other_elementwise) == 0, gc.debugprint(fn.graph.outputs, file=False)
    assert set(fused[0].inputs) == {x, y}
    assert fused[0].attrs["reduce_axes"] is None
    assert fn.graph.outputs == (fused[0],)
    rng = np.random.default_rng(0)
    xv, yv = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((8, 5)).astype(np.float32)
    np.testing.assert_allclose(fn(xv, yv), np.maximum(xv * 2 + 1, 0) * yv, rtol=1e-6)


def test_fusion_with_broadcast_inputs_is_one_kernel(mode):
    x = gc.placeholder((None, 5), "float32", name="x")
    b = gc.placeholder((5,), "float32", name="b")
    out = gc.ops.tanh(x + b) * 0.5 - x
    fn = gc.function([x, b], out, mode=mode)
    nodes = fn.graph.nodes()
    assert sum(n.op is Op.FUSED for n in nodes) == 1
    assert not any(n.op in ELEMENTWISE for n in nodes)
    xv = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    bv = np.linspace(-1, 1, 5).astype(np.float32)
    np.testing.assert_allclose(fn(xv, bv), np.tanh(xv + bv) * 0.5 - xv, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [1, None])
def test_sum_closes_fused_chain(mode, axis):
    x = gc.placeholder((4, 6), "float64", name="x")
    y = gc.placeholder((4, 6), "float64", name="y")
    out = gc.ops.sum(gc.ops.relu(x * 2 + 1) * y, axis=axis)
    fn = gc.function([x, y], out, mode=mode)
    nodes = fn.graph.nodes()
    fused = [n for n in nodes if n.op is Op.FUSED]
    assert len(fused) == 1, gc.debugprint(fn.graph.outputs, file=False)
    assert fused[0].attrs["reduce_axes"] == ((1,) if axis == 1 else (0, 1))
    assert not any(n.op in ELEMENTWISE or n.op is Op.SUM for n in nodes)
    rng = np.random.default_rng(2)
    xv, yv = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    np.testing.assert_allclose(fn(xv, yv), np.sum(np.maximum(xv * 2 + 1, 0) * yv, axis=axis), rtol=1e-12)


def test_fusion_does_not_duplicate_shared_producers(mode):
    """A producer with two consumers is computed once, not inlined into both."""
    x = gc.placeholder((6,), "float64", name="x")
    e = gc.ops.exp(x) * 3
    out = [gc.ops.sum(e), e + 1]
    fn = gc.function([x], out, mode=mode)
    exprs = [n.attrs["expr"] for n in fn.graph.nodes() if n.op is Op.FUSED]
    assert sum(repr(ex).count("Op.EXP") for ex in exprs) == 1, exprs
    xv = np.linspace(-1, 1, 6)
    s, e1 = fn(xv)
    np.testing.assert_allclose(s, np.sum(np.exp(xv) * 3), rtol=1e-12)
    np.testing.assert_allclose(e1, np.exp(xv) * 3 + 1, rtol=1e-12)


def test_no_fusion_below_opt_level_2():
    x = gc.placeholder((3,), "float32", name="x")
    fn = gc.function([x], gc.ops.relu(x * 2 + 1), mode="reference", options=O1)
    assert Op.FUSED not in ops_of(fn)
    fn0 = gc.function([x], gc.ops.log(1 + x), mode="reference", options=O0)
    assert Op.LOG in ops_of(fn0) and Op.LOG1P not in ops_of(fn0)  # level 0: the graph as built


def test_cheap_shared_producer_is_recomputed_in_each_reader():
    """relu(x @ w + b) and the backward where(x @ w + b > 0, g, 0) both read the bias add:
    it is cheap, so it is inlined into both fused loops and never stored."""
    x = gc.placeholder((None, 5), name="x")
    w = gc.shared(np.ones((5, 4), "float32"), name="w")
    b = gc.shared(np.zeros(4, "float32"), name="b")
    loss = gc.ops.sum(gc.ops.relu(x @ w + b) ** 2)
    gw = gc.grad(loss, w)
    fn = gc.function([x], [loss, gw])
    nodes = fn.graph.nodes()
    fused = [n for n in nodes if n.op is gc.ir.Op.FUSED]
    assert not any(n.op is gc.ir.Op.ADD for n in nodes)
    assert sum("add($0, $1)" in gc.ir.printer.format_expr(n.attrs["expr"]) for n in fused) >= 2
    xv = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    ref = gc.function([x], [loss, gw], mode="reference", options=gc.CompileOptions(opt_level=0))
    for got, want in zip(fn(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
