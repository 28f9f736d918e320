"""The loop op (graphc.scan): semantics, gradients, errors, and that a loop stays one node.

Values and gradients of simple loops are also in tests/core/test_op_table.py (the "scan:"
cases, with finite differences, in both modes and with a symbolic length).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.frontend.variables import storage
from graphc.ir import Op, toposort
from graphc.keras import layers as L


def _finite_difference(fn, arrays, i, eps=1e-6):
    out = np.zeros_like(arrays[i])
    for j in np.ndindex(arrays[i].shape):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[i][j] += eps
        minus[i][j] -= eps
        out[j] = (fn(*plus) - fn(*minus)) / (2 * eps)
    return out


def test_nested_loops_and_their_gradient(mode):
    """A loop inside a loop body: values equal NumPy, gradients equal finite differences."""
    rng = np.random.default_rng(0)
    x = gc.placeholder((4, 3, 2), "float64", name="x")
    w = gc.placeholder((2, 2), "float64", name="w")

    def outer(h, row):  # row: (3, 2); an inner loop over its 3 entries
        inner, _ = gc.scan(lambda g, r: (gc.ops.tanh(g @ w + r), None), h, row)
        return inner * 0.5 + h, gc.ops.sum(inner)

    final, ys = gc.scan(outer, gc.ops.zeros((2,), "float64"), x)
    cost = gc.ops.sum(final * final) + gc.ops.sum(ys)
    fn = gc.function([x, w], [cost] + gc.grad(cost, [x, w]), mode=mode)

    def reference(xv, wv):
        h, total = np.zeros(2), 0.0
        for row in xv:
            g = h
            for r in row:
                g = np.tanh(g @ wv + r)
            total += g.sum()
            h = g * 0.5 + h
        return float(np.sum(h * h) + total)

    xv, wv = rng.normal(size=(4, 3, 2)), rng.normal(size=(2, 2)) * 0.7
    c, gx, gw = fn(xv, wv)
    assert c == pytest.approx(reference(xv, wv), rel=1e-12)
    np.testing.assert_allclose(gx, _finite_difference(reference, [xv, wv], 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gw, _finite_difference(reference, [xv, wv], 1), rtol=1e-5, atol=1e-7)


def test_integer_carry_and_captured_shared_variable(mode):
    """An int64 step counter beside a float carry; a shared variable read inside the body is
    captured, and its gradient sums over the steps."""
    w = gc.shared(np.array([0.5, -1.0, 2.0]), name="w")
    x = gc.placeholder((None, 3), "float64", name="x")
    (count, acc), ys = gc.scan(lambda c, xt: ([c[0] + 1, c[1] + xt * w * gc.ops.cast(c[0], "float64")], c[0]),
                               [gc.ops.zeros((), "int64"), gc.ops.zeros((3,), "float64")], x)
    gw = gc.grad(gc.ops.sum(acc), w)
    fn = gc.function([x], [count, acc, ys, gw], mode=mode)
    xv = np.arange(12.0).reshape(4, 3)
    n, a, steps, g = fn(xv)
    assert n == 4 and steps.tolist() == [0, 1, 2, 3] and steps.dtype == np.int64
    t = np.arange(4.0)[:, None]
    np.testing.assert_allclose(a, np.sum(xv * t, 0) * storage(w).array)
    np.testing.assert_allclose(g, np.sum(xv * t, 0))


def test_zero_steps_give_the_initial_carry(mode):
    x = gc.placeholder((None, 2), name="x")
    h0 = gc.placeholder((2,), name="h0")
    final, ys = gc.scan(lambda h, xt: (h * 2 + xt, h), h0, x)
    fn = gc.function([x, h0], [final, ys], mode=mode)
    f, y = fn(np.zeros((0, 2), "float32"), np.array([1.0, 2.0], "float32"))
    np.testing.assert_array_equal(f, [1.0, 2.0])
    assert y.shape == (0, 2)
    f, y = fn(np.ones((3, 2), "float32"), np.array([1.0, 2.0], "float32"))
    np.testing.assert_array_equal(f, [15.0, 23.0])
    np.testing.assert_array_equal(y, [[1, 2], [3, 5], [7, 11]])


def test_training_graph_has_one_forward_and_one_backward_loop():
    """Differentiating a loop adds a copy keeping every step's carries; the loop pass merges
    it with the original, so the forward runs once. Inference keeps only the final carry."""
    model_in = gc.placeholder((None, 7, 3), name="x")
    lstm = L.LSTM(4)
    y = lstm(model_in)
    loss = gc.ops.sum(y * y)
    train = gc.function([model_in], loss, updates=[(w, w - 0.1 * g) for w, g in
                                                   zip(lstm.trainable_weights, gc.grad(loss, lstm.trainable_weights))],
                        mode="reference")
    scans = [n for n in toposort(train.graph.outputs) if n.op is Op.SCAN]
    assert len(scans) == 2
    assert sorted(n.attrs["reverse"] for n in scans) == [False, True]
    forward = next(n for n in scans if not n.attrs["reverse"])
    assert forward.attrs["keep"] == (True, True)  # h and c of every step, for the backward loop
    predict = gc.function([model_in], y, mode="reference")
    (loop,) = [n for n in toposort(predict.graph.outputs) if n.op is Op.SCAN]
    assert loop.attrs["keep"] == (False, False)


def _lstm_step_function(steps: int) -> gc.Function:
    x = gc.placeholder((8, steps, 4), name="x")
    lstm = L.LSTM(16, name="lstm")
    out = L.Dense(1)(lstm(x))
    loss = gc.ops.mean(out * out)
    weights = lstm.trainable_weights
    return gc.function([x], loss, updates=[(w, w - 0.01 * g) for w, g in zip(weights, gc.grad(loss, weights))])


def test_loop_code_does_not_grow_with_the_length():
    """An LSTM training step over 100 steps compiles to the same kernels as over 10: the code
    differs only in the constant trip count (bench/bench_scan.py times the compiles)."""
    short, long = _lstm_step_function(10), _lstm_step_function(100)
    ir_short, ir_long = short.llvm_ir, long.llvm_ir
    assert ir_short.count("define ") == ir_long.count("define ")
    assert abs(len(ir_long) - len(ir_short)) < 0.01 * len(ir_short)
    # Beyond the names of symbols and the sizes, the text is the same (a loop with a tiny
    # constant trip count, e.g. 10, carries metadata that keeps it scalar: see irutil.for_range).
    def normalise(text):
        text = re.sub(r", !llvm\.loop !\d+", "", text)
        text = "\n".join(line for line in text.splitlines() if not line.startswith("!"))
        return re.sub(r"\b\d+\b", "N", text)
    assert normalise(ir_short) == normalise(ir_long)


def test_backward_memory_grows_linearly_with_the_length():
    """The workspace of a training step is a + b * length (the stacked carries and the
    cotangent sequences); inference keeps no carries per step."""
    x = gc.placeholder((8, None, 4), name="x")
    lstm = L.LSTM(16)
    out = lstm(x)
    loss = gc.ops.mean(out * out)
    weights = lstm.trainable_weights
    train = gc.function([x], loss, updates=[(w, w - 0.01 * g) for w, g in zip(weights, gc.grad(loss, weights))])
    predict = gc.function([x], out)

    def workspace(fn, steps):
        native = fn._native
        syms = np.zeros(len(native._symbols), np.int64)
        for i, s in enumerate(native._symbols):
            syms[i] = steps if s.name.startswith("x_d1") else 0
        return int(native._ws_size(syms.ctypes.data))

    lengths = [10, 20, 40, 80]
    sizes = [workspace(train, t) for t in lengths]
    slope = (sizes[1] - sizes[0]) / 10
    assert slope > 0
    for t, s in zip(lengths, sizes):
        assert s == sizes[0] + slope * (t - 10), (lengths, sizes)
    # Inference stores no carries per step: what grows is the input projection x @ kernel for
    # all steps (and its time-major copy), 2 * 8 * 64 float32 per step.
    inference = [workspace(predict, t) for t in lengths]
    per_step = (inference[1] - inference[0]) / 10
    assert per_step <= 2 * 8 * 64 * 4 < slope
    for t, s in zip(lengths, inference):
        assert s == inference[0] + per_step * (t - 10), (lengths, inference)
    # and the compiled step runs at every length
    rng = np.random.default_rng(0)
    for t in (3, 12):
        assert np.isfinite(train(rng.normal(size=(8, t, 4)).astype("float32")))


def test_debugprint_shows_the_body():
    x = gc.placeholder((5, 2), name="x")
    final, _ = gc.scan(lambda h, xt: (gc.ops.tanh(h + xt), None), gc.ops.zeros((2,)), x)
    text = gc.debugprint(final, file=False)
    assert "scan{" in text and re.search(r"^    %1\.\d+ = tanh", text, re.M)


def test_scan_errors_name_the_problem():
    x = gc.placeholder((5, 2), name="x")
    with pytest.raises(gc.ShapeError, match=r"carry 0 is \(2,\) float32 but the step function returns \(3,\)"):
        gc.scan(lambda h, xt: (gc.ops.concatenate([h, xt[:1]]), None), gc.ops.zeros((2,)), x)
    with pytest.raises(gc.ShapeError, match="differ in length"):
        gc.scan(lambda h, xs: (h, None), gc.ops.zeros((2,)), [x, gc.placeholder((4, 2))])
    with pytest.raises(gc.InputError, match="give xs or length"):
        gc.scan(lambda h, _: (h, None), gc.ops.zeros((2,)))
    with pytest.raises(gc.InputError, match=r"must return \(new_carry, y\)"):
        gc.scan(lambda h, xt: h, gc.ops.zeros((2,)), x)
    with pytest.raises(gc.ShapeError, match="leading axis"):
        gc.scan(lambda h, xt: (h, None), gc.ops.zeros((2,)), gc.ops.zeros(()))


def test_second_order_through_a_loop(mode):
    """grad of a grad through a loop (the backward loop is differentiated in turn) equals
    finite differences of the first gradient."""
    x = gc.placeholder((4, 2), "float64", name="x")
    w = gc.placeholder((2,), "float64", name="w")
    final, _ = gc.scan(lambda h, xt: (gc.ops.tanh(h * w + xt), None), gc.ops.zeros((2,), "float64"), x)
    gw = gc.grad(gc.ops.sum(final ** 2), w)
    v = np.array([1.0, -2.0])
    hv = gc.grad(gc.ops.sum(gw * gc.constant(v)), w)
    first = gc.function([x, w], gw, mode="reference")
    second = gc.function([x, w], hv, mode=mode)
    xv, wv = np.random.default_rng(0).normal(size=(4, 2)), np.array([0.3, -0.7])
    eps, num = 1e-6, np.zeros(2)
    for i in range(2):
        plus, minus = wv.copy(), wv.copy()
        plus[i] += eps
        minus[i] -= eps
        num[i] = (first(xv, plus) - first(xv, minus)) @ v / (2 * eps)
    np.testing.assert_allclose(second(xv, wv), num, rtol=1e-6, atol=1e-8)
