"""Updates written in place (schedule._update_in_place): an elementwise update writes its
shared variable directly, and every update pattern still gives what the reference
interpreter gives (old values read, swaps, updates that read other updated variables)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _pair(build):
    """The same graph compiled natively and in reference mode, each on its own variables."""
    fns = []
    for mode in ("native", "reference"):
        inputs, outputs, updates, shared = build()
        fns.append((gc.function(inputs, outputs, updates=updates, mode=mode), shared))
    return fns


def _check(build, feeds, calls=4):
    (native, n_shared), (ref, r_shared) = _pair(build)
    for _ in range(calls):
        got, want = native(*feeds), ref(*feeds)
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            assert np.allclose(g, w, rtol=1e-5, atol=1e-6)
        for a, b in zip(n_shared, r_shared):
            assert np.allclose(a.get_value(), b.get_value(), rtol=1e-5, atol=1e-6)
    return native


def _sgd():
    x = gc.placeholder((None, 5), "float32", name="x")
    w = gc.shared(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), name="w")
    b = gc.shared(np.zeros(3, np.float32), name="b")
    loss = gc.ops.mean((x @ w + b) ** 2)
    gw, gb = gc.grad(loss, [w, b])
    return [x], loss, [(w, w - 0.1 * gw), (b, b - 0.1 * gb)], [w, b]


X = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)


def _writers(native):
    return [s for s in native._native.program.steps if s.out.kind == "shared"]


def test_sgd_updates_write_the_weights_without_copies():
    native = _check(_sgd, [X])
    assert not [s for s in native._native.program.steps if s.kind == "copy"]
    b_step, w_step = sorted(_writers(native), key=lambda s: s.node.op.value)  # fused, matmul
    # w - 0.1 * (x.T @ g): the GEMM accumulates into w; b - 0.1 * sum(g): elementwise, in place
    assert w_step.node.op.value == "matmul" and w_step.accumulate == (-1.0, pytest.approx(0.1))
    assert b_step.in_place


@pytest.mark.parametrize("rows", [2, 5, 37])  # 2: the plain loop; 5, 37: the packed GEMM
@pytest.mark.parametrize("form", ["w - lr * g", "w - g * lr_var", "w + g", "g * 0.5 + w", "w - g"])
def test_update_folded_into_the_matmul(rows, form):
    def build():
        a = gc.placeholder((None, rows), "float32", name="a")
        b = gc.placeholder((None, 3), "float32", name="b")
        w = gc.shared(np.linspace(-1, 1, rows * 3, dtype=np.float32).reshape(rows, 3), name="w")
        lr_var = gc.shared(np.float32(0.05), name="lr")
        g = gc.ops.transpose(a) @ b
        new = {"w - lr * g": w - 0.1 * g, "w - g * lr_var": w - g * lr_var, "w + g": w + g,
               "g * 0.5 + w": g * 0.5 + w, "w - g": w - g}[form]
        return [a, b], gc.ops.sum(w), [(w, new)], [w]
    rng = np.random.default_rng(1)
    native = _check(build, [rng.standard_normal((6, rows)).astype(np.float32),
                            rng.standard_normal((6, 3)).astype(np.float32)])
    (step,) = _writers(native)
    assert step.node.op.value == "matmul" and step.accumulate is not None


def test_no_fold_when_the_product_or_the_factor_is_needed_elsewhere():
    def build():
        a = gc.placeholder((4, 5), "float32", name="a")
        w = gc.shared(np.ones((5, 5), np.float32), name="w")
        lr = gc.shared(np.float32(0.5), name="lr")
        g = gc.ops.transpose(a) @ a
        # the product is also an output; lr is updated in the same call
        return [a], [g], [(w, w - lr * g), (lr, lr * 0.5)], [w, lr]
    native = _check(build, [np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)])
    assert all(s.accumulate is None for s in native._native.program.steps)


def test_momentum_updates():
    def build():
        x = gc.placeholder((None, 5), "float32", name="x")
        w = gc.shared(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), name="w")
        v = gc.shared(np.zeros((5, 3), np.float32), name="v")
        loss = gc.ops.mean((x @ w) ** 2)
        new_v = 0.9 * v - 0.1 * gc.grad(loss, w)
        return [x], loss, [(v, new_v), (w, w + new_v)], [w, v]
    _check(build, [X])


def test_swapped_and_cross_reading_updates():
    def build():
        a = gc.shared(np.arange(6, dtype=np.float32).reshape(2, 3), name="a")
        b = gc.shared(np.ones((2, 3), np.float32), name="b")
        c = gc.shared(np.full((2, 3), 2.0, np.float32), name="c")
        x = gc.placeholder((2, 3), "float32", name="x")
        # a <- b * 2 reads b, which is updated too; b <- a + x reads a; c <- c * a reads a
        return [x], gc.ops.sum(a), [(a, b * 2.0), (b, a + x), (c, c * a + 1.0)], [a, b, c]
    _check(build, [np.full((2, 3), 0.5, np.float32)])


def test_an_updated_variable_returned_as_an_output_is_its_old_value():
    def build():
        w = gc.shared(np.arange(4, dtype=np.float32), name="w")
        x = gc.placeholder((4,), "float32", name="x")
        new = w * 0.5 + x
        return [x], [w, new], [(w, new)], [w]
    _check(build, [np.ones(4, np.float32)])


@pytest.mark.parametrize("keep_value_read", [False, True])
def test_update_value_read_elsewhere(keep_value_read):
    def build():
        w = gc.shared(np.arange(4, dtype=np.float32), name="w")
        x = gc.placeholder((4,), "float32", name="x")
        new = w - x
        out = gc.ops.sum(new * new) if keep_value_read else gc.ops.sum(w)
        return [x], out, [(w, new)], [w]
    _check(build, [np.full(4, 0.25, np.float32)])


def test_adam_like_slots_are_written_in_place_and_read_by_the_weight_update():
    """m and v are updated in place and the weight update reads the new m and v from them: no
    weight-sized copy is left."""
    def build():
        x = gc.placeholder((None, 5), "float32", name="x")
        w = gc.shared(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), name="w")
        m = gc.shared(np.zeros((5, 3), np.float32), name="m")
        v = gc.shared(np.zeros((5, 3), np.float32), name="v")
        loss = gc.ops.mean((x @ w) ** 2)
        g = gc.grad(loss, w)
        m_new = 0.9 * m + 0.1 * g
        v_new = 0.99 * v + 0.01 * g * g
        w_new = w - 0.01 * m_new / (gc.ops.sqrt(v_new) + 1e-7)
        return [x], loss, [(m, m_new), (v, v_new), (w, w_new)], [w, m, v]
    native = _check(build, [X], calls=5)
    steps = native._native.program.steps
    assert not [s for s in steps if s.kind == "copy" and s.out.kind == "shared"]
    assert len(_writers(native)) == 3


def test_cyclic_updates_keep_a_copy():
    """a <- 2a + b and b <- b + a each read the other's old value: one of them must keep its
    copy (and the results stay right)."""
    def build():
        a = gc.shared(np.arange(4, dtype=np.float32), name="a")
        b = gc.shared(np.ones(4, np.float32), name="b")
        x = gc.placeholder((4,), "float32", name="x")
        return [x], gc.ops.sum(a), [(a, a * 2.0 + b + x), (b, b + a)], [a, b]
    native = _check(build, [np.full(4, 0.5, np.float32)])
    assert len([s for s in native._native.program.steps if s.kind == "copy" and s.out.kind == "shared"]) == 1
