"""Reverse-mode differentiation: gradients of gradients, jacobians, hessians, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GradientError


def run(inputs, outputs, mode, *args):
    return gc.function(inputs, outputs, mode=mode)(*args)


def test_hessian_of_cubic_plus_cross_term(mode):
    x = gc.placeholder((3,), "float64", name="x")
    f = gc.ops.sum(x ** 3) + x[0] * x[1]
    h = gc.hessian(f, x)
    assert tuple(h.shape) == (3, 3)
    xv = np.array([0.5, -1.5, 2.0])
    expected = np.diag(6 * xv)
    expected[0, 1] = expected[1, 0] = 1.0
    np.testing.assert_allclose(run([x], h, mode, xv), expected, rtol=1e-12, atol=1e-12)


def test_hessian_of_quadratic_form(mode):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    x = gc.placeholder((4,), "float64", name="x")
    f = x @ (gc.constant(a) @ x)
    h = gc.hessian(f, x)
    np.testing.assert_allclose(run([x], h, mode, rng.standard_normal(4)), a + a.T, rtol=1e-12, atol=1e-12)


def test_hessian_of_logsumexp_is_softmax_covariance(mode):
    x = gc.placeholder((4,), "float64", name="x")
    xv = np.array([0.1, -1.0, 2.0, 0.5])
    p = np.exp(xv - xv.max())
    p /= p.sum()
    expected = np.diag(p) - np.outer(p, p)
    for f in (gc.ops.logsumexp(x), -gc.ops.log_softmax(x)[2], -gc.ops.log(gc.ops.softmax(x))[2]):
        np.testing.assert_allclose(run([x], gc.hessian(f, x), mode, xv), expected, rtol=1e-10, atol=1e-12)


def test_third_derivative(mode):
    x = gc.placeholder((), "float64", name="x")
    y = gc.ops.sin(x) * x
    d1 = gc.grad(y, x)
    d2 = gc.grad(d1, x)
    d3 = gc.grad(d2, x)
    v = 0.7
    got = run([x], [d1, d2, d3], mode, np.float64(v))
    expected = [np.cos(v) * v + np.sin(v), -np.sin(v) * v + 2 * np.cos(v), -np.cos(v) * v - 3 * np.sin(v)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_grad_of_gradient_norm(mode):
    """d/dw |d loss/dw|^2 for loss = sum(tanh(X w)) (the double-backprop of gradient penalties)."""
    rng = np.random.default_rng(1)
    xv, wv = rng.standard_normal((5, 3)), rng.standard_normal(3)
    w = gc.placeholder((3,), "float64", name="w")
    g = gc.grad(gc.ops.sum(gc.ops.tanh(gc.constant(xv) @ w)), w)
    penalty = gc.ops.sum(g * g)
    got = run([w], gc.grad(penalty, w), mode, wv)

    def pen(wn):
        t = np.tanh(xv @ wn)
        gg = xv.T @ (1 - t * t)
        return np.sum(gg * gg)

    eps = 1e-6
    fd = np.array([(pen(wv + eps * e) - pen(wv - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_jacobian_values_and_shapes(mode):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3))
    x = gc.placeholder((3,), "float64", name="x")
    j = gc.jacobian(gc.constant(a) @ x, x)
    assert tuple(j.shape) == (2, 3)
    np.testing.assert_allclose(run([x], j, mode, rng.standard_normal(3)), a, rtol=1e-12)

    jt = gc.jacobian(gc.ops.tanh(x), x)
    xv = np.array([0.3, -0.2, 1.1])
    np.testing.assert_allclose(run([x], jt, mode, xv), np.diag(1 - np.tanh(xv) ** 2), rtol=1e-12, atol=1e-15)

    m = gc.placeholder((2, 2), "float64", name="m")
    jm = gc.jacobian(m * x[0], x)  # (2, 2) output, (3,) input
    assert tuple(jm.shape) == (2, 2, 3)
    mv = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.zeros((2, 2, 3))
    expected[:, :, 0] = mv
    np.testing.assert_allclose(run([m, x], jm, mode, mv, xv), expected, rtol=1e-12)

    jmm = gc.jacobian(m @ m, m)  # d(M M)[i,j] / d M[k,l] = d_ik M[l,j] + M[i,k] d_jl
    assert tuple(jmm.shape) == (2, 2, 2, 2)
    eye = np.eye(2)
    expected = np.einsum("ik,lj->ijkl", eye, mv) + np.einsum("ik,jl->ijkl", mv, eye)
    np.testing.assert_allclose(run([m], jmm, mode, mv), expected, rtol=1e-12)


def test_jacobian_disconnected(mode):
    x = gc.placeholder((2,), "float64", name="x")
    z = gc.placeholder((3,), "float64", name="z")
    y = gc.ops.stack([x[0] * 3.0, gc.constant(np.float64(1.0))])
    with pytest.raises(GradientError):
        gc.jacobian(y, z)
    j = gc.jacobian(y, z, disconnected="zero")
    assert tuple(j.shape) == (2, 3)
    got = gc.function([x, z], j, mode=mode)(np.array([1.0, 2.0]), np.zeros(3))
    np.testing.assert_array_equal(got, np.zeros((2, 3)))
    # a row that is structurally connected but constant gets zeros, not an error
    jx = gc.jacobian(y, x)
    np.testing.assert_allclose(gc.function([x], jx, mode=mode)(np.array([1.0, 2.0])), [[3.0, 0.0], [0.0, 0.0]])


def test_jacobian_needs_static_size():
    x = gc.placeholder((None,), "float64", name="x")
    with pytest.raises(GradientError, match="static"):
        gc.jacobian(x * 2, x)


def test_grad_single_and_list(mode):
    x = gc.placeholder((3,), "float64", name="x")
    y = gc.placeholder((3,), "float64", name="y")
    cost = gc.ops.sum(x * y)
    gx = gc.grad(cost, x)
    assert isinstance(gx, gc.Node)
    gs = gc.grad(cost, [x, y])
    assert isinstance(gs, list) and len(gs) == 2
    xv, yv = np.arange(3.0), np.ones(3) * 2
    gxv, gyv = run([x, y], gs, mode, xv, yv)
    np.testing.assert_array_equal(gxv, yv)
    np.testing.assert_array_equal(gyv, xv)


def test_grad_with_respect_to_shared_and_intermediate(mode):
    w = gc.shared(np.array([1.0, -2.0, 0.5]), name="w_ad")
    x = gc.placeholder((3,), "float64", name="x")
    h = x * w
    cost = gc.ops.sum(h * h)
    gw, gh = gc.grad(cost, [w, h])
    xv = np.array([2.0, 1.0, -1.0])
    gwv, ghv = run([x], [gw, gh], mode, xv)
    hv = xv * w.get_value()
    np.testing.assert_allclose(ghv, 2 * hv)
    np.testing.assert_allclose(gwv, 2 * hv * xv)


def test_disconnected_raises_by_default():
    x = gc.placeholder((3,), "float32", name="x")
    y = gc.placeholder((2,), "float32", name="y_unused")
    cost = gc.ops.sum(x * x)
    with pytest.raises(GradientError, match="does not depend"):
        gc.grad(cost, y)
    with pytest.raises(GradientError):
        gc.grad(cost, [x, y])


def test_disconnected_zero(mode):
    x = gc.placeholder((3,), "float32", name="x")
    y = gc.placeholder((2, 2), "float32", name="y_unused")
    cost = gc.ops.sum(x * x)
    gx, gy = gc.grad(cost, [x, y], disconnected="zero")
    assert tuple(gy.shape) == (2, 2) and gy.dtype == "float32"
    gxv, gyv = gc.function([x, y], [gx, gy], mode=mode)(np.ones(3, np.float32), np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(gxv, 2 * np.ones(3, np.float32))
    np.testing.assert_array_equal(gyv, np.zeros((2, 2), np.float32))


def test_gradient_through_integer_path_is_disconnected():
    """Only float paths carry gradients: argmax or a comparison blocks them."""
    x = gc.placeholder((3,), "float64", name="x")
    cost = gc.ops.cast(gc.ops.argmax(x), "float64") + gc.ops.sum(gc.ops.cast(x > 0, "float64"))
    with pytest.raises(GradientError):
        gc.grad(cost, x)


def test_grad_of_non_scalar_raises():
    x = gc.placeholder((3,), "float32", name="x")
    with pytest.raises(GradientError, match="scalar"):
        gc.grad(x * 2, x)
    with pytest.raises(GradientError, match="scalar"):
        gc.grad(gc.ops.sum(x, keepdims=True), x)  # shape (1,) is not a scalar


def test_grad_of_integer_cost_raises():
    x = gc.placeholder((3,), "int64", name="k")
    with pytest.raises(GradientError, match="float"):
        gc.grad(gc.ops.sum(x), x)


def test_max_gradient_splits_ties(mode):
    x = gc.placeholder((3,), "float64", name="x")
    g = gc.grad(gc.ops.max(x), x)
    np.testing.assert_allclose(run([x], g, mode, np.array([1.0, 3.0, 3.0])), [0.0, 0.5, 0.5])


def test_gradient_with_symbolic_batch(mode):
    """A gradient over a None batch dimension: the mean's divisor is the runtime size."""
    x = gc.placeholder((None, 3), "float64", name="x")
    w = gc.shared(np.array([0.5, -1.0, 2.0]), name="w_batch")
    cost = gc.ops.mean((x @ w) ** 2)
    gw = gc.grad(cost, w)
    fn = gc.function([x], gw, mode=mode)
    for n in (1, 4, 9):
        xv = np.random.default_rng(n).standard_normal((n, 3))
        np.testing.assert_allclose(fn(xv), 2 * xv.T @ (xv @ w.get_value()) / n, rtol=1e-12)
