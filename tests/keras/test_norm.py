"""BatchNormalization (moving statistics updated by fit, used by predict), LayerNormalization,
SpatialDropout and GaussianNoise: NumPy references, finite-difference gradients, training flag."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.keras as keras
from graphc.keras import config, layers as L
from graphc.keras.models import Model



@pytest.fixture(autouse=True)
def _keep_numpy_global_rng():
    """Leave NumPy's global generator as found: later tests draw initial weights from it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)

@pytest.fixture
def reference_mode():
    old = config.run_mode()
    config.set_run_mode("reference")
    yield
    config.set_run_mode(old)


def _bn_ref(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_batchnorm_training_and_inference_outputs(reference_mode):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 3, 4)).astype("float32")
    bn = L.BatchNormalization(momentum=0.9, epsilon=1e-3)
    inp = gc.placeholder((None, 3, 4))
    train_out = bn(inp, training=True)
    bn.set_weights([rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.uniform(1, 2, size=4)])
    gamma, beta, mm, mv = bn.get_weights()
    got = gc.function([inp], train_out, mode="reference")(x)
    np.testing.assert_allclose(got, _bn_ref(x, gamma, beta, x.mean((0, 1)), x.var((0, 1)), 1e-3), rtol=1e-4,
                               atol=1e-4)
    inf = gc.function([inp], bn(inp, training=False), mode="reference")(x)
    np.testing.assert_allclose(inf, _bn_ref(x, gamma, beta, mm, mv, 1e-3), rtol=1e-5, atol=1e-5)
    assert [w.shape for w in bn.get_weights()] == [(4,)] * 4
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_batchnorm_fit_updates_moving_statistics_and_predict_uses_them():
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    inp = L.Input((3,))
    bn = L.BatchNormalization(momentum=0.5, name="bn")
    m = Model(inp, L.Dense(1)(bn(inp)))
    m.compile(keras.optimizers.SGD(0.0), "mse")  # lr 0: only the moving statistics change
    m.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    _, _, mm, mv = bn.get_weights()
    np.testing.assert_allclose(mm, 0.5 * x.mean(0), rtol=1e-4)
    np.testing.assert_allclose(mv, 0.5 + 0.5 * x.var(0), rtol=1e-4)
    m.fit(x, y, batch_size=64, epochs=20, verbose=0)
    _, _, mm, mv = bn.get_weights()
    np.testing.assert_allclose(mm, x.mean(0), rtol=1e-3)
    np.testing.assert_allclose(mv, x.var(0), rtol=1e-3)
    # predict/evaluate use the moving statistics and change nothing
    before = bn.get_weights()
    pred = m.predict(x, verbose=0)
    m.evaluate(x, y, verbose=0)
    k, b = m.layers[-1].get_weights()
    normed = (x - mm) / np.sqrt(mv + 1e-3)
    np.testing.assert_allclose(pred, normed @ k + b, rtol=1e-4, atol=1e-4)
    for a, c in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("layer", ["bn_train", "layernorm"])
def test_normalisation_gradients_finite_differences(layer):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3))
    g = rng.normal(size=(3,))
    b = rng.normal(size=(3,))
    w = rng.normal(size=(4, 3))
    xp = gc.placeholder(x.shape, "float64")
    axis = 0 if layer == "bn_train" else 1
    lay = L.BatchNormalization(dtype="float64") if layer == "bn_train" else L.LayerNormalization(dtype="float64")
    out = lay(xp, training=True)
    lay.set_weights([g, b] + ([np.zeros(3), np.ones(3)] if layer == "bn_train" else []))
    ref = g * (x - x.mean(axis, keepdims=True)) / np.sqrt(x.var(axis, keepdims=True) + 1e-3) + b
    np.testing.assert_allclose(gc.function([xp], out, mode="reference")(x), ref, rtol=1e-10)
    cost = gc.ops.sum(out * gc.constant(w))
    grads = gc.function([xp], gc.grad(cost, [xp] + lay.trainable_weights), mode="reference")(x)
    f = gc.function([xp], cost, mode="reference")
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += eps
        lo[idx] -= eps
        num[idx] = (f(hi) - f(lo)) / (2 * eps)
    np.testing.assert_allclose(grads[0], num, rtol=1e-5, atol=1e-6)
    xn = (x - x.mean(axis, keepdims=True)) / np.sqrt(x.var(axis, keepdims=True) + 1e-3)
    np.testing.assert_allclose(grads[1], (w * xn).sum(0), rtol=1e-8)
    np.testing.assert_allclose(grads[2], w.sum(0), rtol=1e-8)


def test_layernorm_matches_numpy_over_several_axes(reference_mode):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    ln = L.LayerNormalization(axis=[1, 2], epsilon=1e-5)
    y = ln(x)
    ref = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    assert ln.gamma.shape == (3, 4)


def test_spatial_dropout_and_noise_training_flag():
    x = np.ones((4, 5, 6, 50), "float32")
    ph = gc.placeholder((None, 5, 6, 50))
    sd = L.SpatialDropout2D(0.5, seed=1)
    out = gc.function([ph], sd(ph, training=True), mode="reference")(x)
    per_channel = out.reshape(4, 30, 50)
    assert np.all(per_channel.min(1) == per_channel.max(1))  # whole feature maps kept or dropped
    assert 0.3 < np.mean(out == 0) < 0.7 and np.allclose(out[out != 0], 2.0)
    np.testing.assert_array_equal(gc.function([ph], sd(ph, training=False), mode="reference")(x), x)
    ph1 = gc.placeholder((None, 7, 40))
    out1 = gc.function([ph1], L.SpatialDropout1D(0.5, seed=2)(ph1, training=True), mode="reference")(
        np.ones((3, 7, 40), "float32"))
    assert np.all(out1.min(1) == out1.max(1))
    gn = L.GaussianNoise(0.5, seed=3)
    z = np.zeros((200, 50), "float32")
    ph2 = gc.placeholder((None, 50))
    noisy = gc.function([ph2], gn(ph2, training=True), mode="reference")(z)
    assert 0.45 < noisy.std() < 0.55
    np.testing.assert_array_equal(gc.function([ph2], gn(ph2), mode="reference")(z), z)
    with pytest.raises(gc.ShapeError, match="rank 4"):
        L.SpatialDropout2D(0.5)(L.Input((3, 3)))
