"""Convolution and pooling (graphc.frontend.nn and the Keras layers on it): outputs against
NumPy references, gradients against finite differences (float64), clear errors.

Most checks run the reference interpreter (fast); one case per helper also compiles natively.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphc as gc
import graphc.keras as keras
from graphc.frontend import nn
from graphc.keras import config, layers as L



@pytest.fixture(autouse=True)
def _keep_numpy_global_rng():
    """Leave NumPy's global generator as found: later tests draw initial weights from it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)

@pytest.fixture
def reference_mode():
    """Eager layer calls through the interpreter (native compiles of conv graphs take seconds)."""
    old = config.run_mode()
    config.set_run_mode("reference")
    yield
    config.set_run_mode(old)


def np_conv(x, k, s, pad, d=(1, 1), groups=1):
    """Direct 2-D cross-correlation, channels-last, Keras kernel layout."""
    b, h, w, _ = x.shape
    kh, kw, cg, co = k.shape
    if pad == "same":
        x = np.pad(x, [(0, 0), nn.same_padding(h, kh, s[0], d[0]), nn.same_padding(w, kw, s[1], d[1]), (0, 0)])
    oh = nn.conv_output_length(h, kh, s[0], pad, d[0])
    ow = nn.conv_output_length(w, kw, s[1], pad, d[1])
    out = np.zeros((b, oh, ow, co))
    og = co // groups
    for g, i, j in itertools.product(range(groups), range(oh), range(ow)):
        patch = x[:, i * s[0]:i * s[0] + (kh - 1) * d[0] + 1:d[0], j * s[1]:j * s[1] + (kw - 1) * d[1] + 1:d[1],
                  g * cg:(g + 1) * cg]
        out[:, i, j, g * og:(g + 1) * og] = np.einsum("bijc,ijco->bo", patch, k[..., g * og:(g + 1) * og])
    return out


def np_pool(x, p, s, pad, kind):
    b, h, w, c = x.shape
    if pad == "same":
        x = np.pad(x, [(0, 0), nn.same_padding(h, p[0], s[0]), nn.same_padding(w, p[1], s[1]), (0, 0)],
                   constant_values=np.nan)
    oh, ow = nn.conv_output_length(h, p[0], s[0], pad), nn.conv_output_length(w, p[1], s[1], pad)
    out = np.zeros((b, oh, ow, c))
    for i, j in itertools.product(range(oh), range(ow)):
        win = x[:, i * s[0]:i * s[0] + p[0], j * s[1]:j * s[1] + p[1], :]
        out[:, i, j] = np.nanmax(win, axis=(1, 2)) if kind == "max" else np.nanmean(win, axis=(1, 2))
    return out


def fd_check(f_graph, inputs, rng, eps=1e-6, tol=1e-5):
    """grad(sum(f * w)) of each input against central finite differences (reference mode)."""
    phs = [gc.placeholder(a.shape, "float64") for a in inputs]
    out = f_graph(*phs)
    w = rng.normal(size=tuple(out.shape))
    cost = gc.ops.sum(out * gc.constant(w))
    grads = gc.function(phs, gc.grad(cost, phs), mode="reference")(*inputs)
    fcost = gc.function(phs, cost, mode="reference")
    for i, a in enumerate(inputs):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            hi = [x.copy() for x in inputs]
            lo = [x.copy() for x in inputs]
            hi[i][idx] += eps
            lo[i][idx] -= eps
            num[idx] = (fcost(*hi) - fcost(*lo)) / (2 * eps)
        np.testing.assert_allclose(grads[i], num, rtol=tol, atol=tol)


CONV_CASES = [("valid", (1, 1), (1, 1), 1), ("same", (1, 1), (1, 1), 1), ("valid", (2, 2), (1, 1), 1),
              ("same", (2, 2), (1, 1), 1), ("same", (2, 1), (1, 1), 2), ("valid", (1, 1), (2, 1), 1),
              ("same", (1, 1), (1, 2), 2)]


@pytest.mark.parametrize("pad,strides,dil,groups", CONV_CASES)
def test_conv2d_matches_numpy(pad, strides, dil, groups):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 4))
    k = rng.normal(size=(3, 2, 4 // groups, 6))
    xp, kp = gc.placeholder((None, 7, 6, 4), "float64"), gc.placeholder(k.shape, "float64")
    f = gc.function([xp, kp], nn.conv(xp, kp, strides, pad, dil, groups), mode="reference")
    np.testing.assert_allclose(f(x, k), np_conv(x, k, strides, pad, dil, groups), rtol=1e-10, atol=1e-10)


def test_conv_and_pool_native_match_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 5, 2)).astype("float32")
    k = rng.normal(size=(2, 2, 2, 3)).astype("float32")
    xp, kp = gc.placeholder((None, 6, 5, 2)), gc.placeholder(k.shape)
    # "same" pooling takes the windows (im2col); valid pooling whose windows tile the input
    # (the 5 columns cropped to 4) reduces a view of the input instead
    outs = [nn.conv(xp, kp, (2, 1), "same"), nn.max_pool(xp, 2, None, "same"), nn.max_pool(xp, 2),
            nn.avg_pool(xp, (3, 2))]
    cost = sum(gc.ops.sum(o * o) for o in outs)
    g = gc.grad(cost, [xp, kp])
    ref = gc.function([xp, kp], outs + g, mode="reference")(x, k)
    nat = gc.function([xp, kp], outs + g, mode="native")(x, k)
    for a, b in zip(ref, nat):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_tiling_pools_copy_no_windows():
    """Valid pooling with strides equal to the pool size (Keras's default) needs neither im2col
    forward nor col2im backward."""
    from graphc.ir.graph import toposort
    xp = gc.placeholder((None, 6, 5, 2))
    for pool in (nn.max_pool, nn.avg_pool):
        y = pool(xp, 2)
        nodes = toposort([y, gc.grad(gc.ops.sum(y * y), xp)])
        assert not [n for n in nodes if n.op.value in ("patches", "patches_adjoint")]
        assert tuple(y.shape[1:]) == (3, 2, 2)


@pytest.mark.parametrize("pad,strides,dil,groups", [CONV_CASES[1], CONV_CASES[3], CONV_CASES[5], CONV_CASES[6]])
def test_conv_gradient_finite_differences(pad, strides, dil, groups):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 4, 5, 2))
    k = rng.normal(size=(2, 3, 2 // groups, 2))
    fd_check(lambda a, b: nn.conv(a, b, strides, pad, dil, groups), [x, k], rng)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pad,pool,strides", [("valid", (2, 2), (2, 2)), ("same", (2, 2), (2, 2)),
                                              ("same", (3, 2), (1, 2)), ("valid", (3, 3), (1, 1))])
def test_pool_matches_numpy_and_gradient(kind, pad, pool, strides):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 5, 3))
    fn = nn.max_pool if kind == "max" else nn.avg_pool
    xp = gc.placeholder((None, 5, 5, 3), "float64")
    got = gc.function([xp], fn(xp, pool, strides, pad), mode="reference")(x)
    np.testing.assert_allclose(got, np_pool(x, pool, strides, pad, kind), rtol=1e-12)
    fd_check(lambda a: fn(a, pool, strides, pad), [x[:1, :, :, :1].copy()], rng)


def test_1d_layers_and_reshaping_layers_match_numpy(reference_mode):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    conv = L.Conv1D(4, 3, strides=2, padding="same", use_bias=False)
    y = conv(x)
    k = conv.get_weights()[0]
    ref = np_conv(x[:, :, None, :], k[:, None], (2, 1), "same")[:, :, 0]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(L.MaxPooling1D(2)(x), x[:, :6].reshape(2, 3, 2, 3).max(2), rtol=1e-6)
    np.testing.assert_allclose(L.GlobalAveragePooling1D()(x), x.mean(1), rtol=1e-6)
    img = rng.normal(size=(2, 3, 4, 2)).astype("float32")
    np.testing.assert_allclose(L.GlobalMaxPooling2D()(img), img.max((1, 2)))
    np.testing.assert_allclose(L.ZeroPadding2D(((1, 2), (0, 1)))(img), np.pad(img, [(0, 0), (1, 2), (0, 1), (0, 0)]))
    np.testing.assert_allclose(L.Cropping2D(((1, 0), (1, 2)))(img), img[:, 1:, 1:2])
    np.testing.assert_allclose(L.UpSampling2D((2, 3))(img), img.repeat(2, 1).repeat(3, 2))
    cf = np.transpose(img, (0, 3, 1, 2))
    np.testing.assert_allclose(L.UpSampling2D(2, data_format="channels_first")(cf),
                               np.transpose(img.repeat(2, 1).repeat(2, 2), (0, 3, 1, 2)))


def test_conv2d_layer_channels_first_equals_channels_last(reference_mode):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    a = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")
    b = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", data_format="channels_first")
    ya = a(x)
    b(np.transpose(x, (0, 3, 1, 2)))
    b.set_weights(a.get_weights())
    yb = b(np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_allclose(np.transpose(yb, (0, 2, 3, 1)), ya, rtol=1e-5, atol=1e-6)
    assert a.kernel.shape == (3, 3, 3, 4)


def test_conv_errors_name_layer_and_shapes():
    with pytest.raises(gc.ShapeError, match=r"conv_big.*kernel size \(5, 5\).*\(4, 4\)"):
        L.Conv2D(2, 5, name="conv_big")(L.Input((4, 4, 1)))
    c = L.Conv2D(2, 3, name="conv_ch")
    c(L.Input((6, 6, 3)))
    with pytest.raises(gc.ShapeError, match=r"conv_ch.*axis -1 of size 3.*\(None, 6, 6, 2\)"):
        c(L.Input((6, 6, 2)))
    with pytest.raises(gc.ShapeError, match=r"conv_rank.*rank 4"):
        L.Conv2D(2, 3, name="conv_rank")(L.Input((6, 6)))
    with pytest.raises(gc.ShapeError, match=r"pool_big.*\(3, 3\).*\(2, 2\)"):
        L.MaxPooling2D(3, name="pool_big")(L.Input((2, 2, 1)))
    with pytest.raises(gc.InputError, match="groups"):
        L.Conv2D(3, 3, groups=2)
    with pytest.raises(gc.ShapeError, match="divisible by groups"):
        L.Conv2D(4, 3, groups=2)(L.Input((6, 6, 3)))
    with pytest.raises(gc.InputError, match="padding"):
        L.Conv2D(4, 3, padding="full")


def test_small_convnet_learns(reference_mode):
    """A Conv2D/MaxPooling2D model fits a task that needs spatial structure (through the
    interpreter; the native path is compared with it above and trained in examples/digits_convnet.py)."""
    rng = np.random.default_rng(6)
    n = 160
    x = rng.normal(scale=0.3, size=(n, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 2, n)
    x[y == 1, 1:5, 3, 0] += 1.5   # vertical bar
    x[y == 0, 3, 1:5, 0] += 1.5   # horizontal bar
    keras.utils.set_random_seed(0) if hasattr(keras.utils, "set_random_seed") else np.random.seed(0)
    m = keras.Sequential([L.Input((6, 6, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                          L.Flatten(), L.Dense(2, activation="softmax")])
    m.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert m.evaluate(x, y, verbose=0)[1] >= 0.95


@pytest.mark.parametrize("pad,k,s", [("valid", 3, 2), ("same", 3, 2), ("same", 2, 3), ("valid", 2, 1)])
def test_conv_transpose_matches_scatter_reference_and_gradient(pad, k, s, reference_mode):
    rng = np.random.default_rng(7)
    h = 4
    x = rng.normal(size=(2, h, h, 3))
    kern = rng.normal(size=(k, k, 2, 3))  # Keras layout (kh, kw, filters, in)
    xp, kp = gc.placeholder(x.shape, "float64"), gc.placeholder(kern.shape, "float64")
    got = gc.function([xp, kp], nn.conv_transpose(xp, kp, s, pad), mode="reference")(x, kern)
    n = nn.deconv_output_length(h, k, s, pad)
    full = np.zeros((2, (h - 1) * s + k, (h - 1) * s + k, 2))
    for i, j in itertools.product(range(h), range(h)):
        full[:, i * s:i * s + k, j * s:j * s + k] += np.einsum("bc,hwfc->bhwf", x[:, i, j], kern)
    before = max(k - s, 0) // 2 if pad == "same" else 0
    ref = np.zeros((2, n, n, 2))
    m = min(n, full.shape[1] - before)
    ref[:, :m, :m] = full[:, before:before + m, before:before + m]
    np.testing.assert_allclose(got, ref, atol=1e-10)
    fd_check(lambda a, b: nn.conv_transpose(a, b, s, pad), [x[:1, :3, :3].copy(), kern], rng)
    layer = L.Conv2DTranspose(2, k, strides=s, padding=pad)
    assert layer(x.astype("float32")).shape == (2, n, n, 2) and layer.kernel.shape == (k, k, 2, 3)


def test_depthwise_and_separable_conv(reference_mode):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 5, 5, 3))
    dw = rng.normal(size=(3, 3, 3, 2))
    xp, kp = gc.placeholder(x.shape, "float64"), gc.placeholder(dw.shape, "float64")
    got = gc.function([xp, kp], nn.depthwise_conv(xp, kp, 2, "same"), mode="reference")(x, dw)
    np.testing.assert_allclose(got, np_conv(x, dw.reshape(3, 3, 1, 6), (2, 2), "same", groups=3), atol=1e-10)
    fd_check(lambda a, b: nn.depthwise_conv(a, b, 1, "valid"), [x[:1, :4, :4].copy(), dw], rng)
    sep = L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, use_bias=False)
    y = sep(x.astype("float32"))
    d, p = sep.get_weights()
    assert d.shape == (3, 3, 3, 2) and p.shape == (1, 1, 6, 4)
    ref = np_conv(np_conv(x, d.reshape(3, 3, 1, 6), (1, 1), "same", groups=3), p, (1, 1), "valid")
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    dlayer = L.DepthwiseConv2D(3, name="dw_ch")
    dlayer(L.Input((5, 5, 3)))
    with pytest.raises(gc.ShapeError, match=r"dw_ch.*axis -1 of size 3"):
        dlayer(L.Input((5, 5, 4)))
