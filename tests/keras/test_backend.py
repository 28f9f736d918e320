"""graphc.keras.backend (K) against NumPy, through compiled functions."""
import numpy as np
import pytest

from graphc.errors import InputError, ShapeError
from graphc.keras import backend as K
from graphc.keras import config


@pytest.fixture(autouse=True)
def _run_mode(mode):
    """Every test runs in each execution mode (conftest parametrizes ``mode``)."""
    old = config._state["run_mode"]
    config.set_run_mode(mode)
    yield
    config.set_run_mode(old)

rng = np.random.default_rng(0)
A = rng.normal(size=(4, 5)).astype("float32")
B = rng.normal(size=(4, 5)).astype("float32")


def run(fn, *arrays):
    """Build fn(*placeholders) and run it on arrays."""
    phs = [K.placeholder(a.shape, dtype=a.dtype.name) for a in arrays]
    return K.function(phs, fn(*phs))(list(arrays))


@pytest.mark.parametrize("name, ref", [
    ("abs", np.abs), ("square", np.square), ("exp", np.exp), ("sign", np.sign),
    ("tanh", np.tanh), ("sigmoid", lambda x: 1 / (1 + np.exp(-x))), ("softplus", lambda x: np.log1p(np.exp(x))),
    ("sqrt", lambda x: np.sqrt(np.maximum(x, 0))), ("log", np.log),
    ("elu", lambda x: np.where(x > 0, x, np.expm1(x))), ("relu", lambda x: np.maximum(x, 0)),
    ("softsign", lambda x: x / (1 + np.abs(x))), ("hard_sigmoid", lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
])
def test_unary(name, ref):
    x = np.abs(A) + 1 if name == "log" else A
    np.testing.assert_allclose(run(getattr(K, name), x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "std", "var"])
@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), ((0, 1), False)])
def test_reductions(name, axis, keepdims):
    got = run(lambda x: getattr(K, name)(x, axis=axis, keepdims=keepdims), A)
    np.testing.assert_allclose(got, getattr(np, name)(A, axis=axis, keepdims=keepdims), rtol=1e-4, atol=1e-5)


def test_arg_and_compare():
    np.testing.assert_array_equal(run(K.argmax, A), A.argmax(-1))
    np.testing.assert_array_equal(run(lambda x: K.argmin(x, axis=0), A), A.argmin(0))
    for name, ref in [("equal", np.equal), ("not_equal", np.not_equal), ("greater", np.greater),
                      ("greater_equal", np.greater_equal), ("less", np.less), ("less_equal", np.less_equal),
                      ("maximum", np.maximum), ("minimum", np.minimum)]:
        b = B.copy()
        b[0] = A[0]
        np.testing.assert_array_equal(run(getattr(K, name), A, b), ref(A, b))
    assert run(lambda x: K.any(K.greater(x, 2.0)), A) == (A > 2).any()
    assert run(lambda x: K.all(K.greater(x, -10.0)), A) == True  # noqa: E712


def test_pow_clip_cast():
    np.testing.assert_allclose(run(lambda x: K.pow(x, 2), A), A ** 2, rtol=1e-6)
    np.testing.assert_allclose(run(lambda x: K.clip(x, -0.5, 0.5), A), np.clip(A, -0.5, 0.5))
    np.testing.assert_allclose(run(lambda x: K.clip(x, 0.5, 0.1), A), np.full_like(A, 0.5))  # max < min -> min
    out = run(lambda x: K.cast(x, "int32"), A)
    assert out.dtype == np.int32
    np.testing.assert_allclose(run(lambda x: K.l2_normalize(x, axis=1), A),
                               A / np.linalg.norm(A, axis=1, keepdims=True), rtol=1e-5)


def test_linear_algebra():
    w = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(run(K.dot, A, w), A @ w, rtol=1e-5)
    x3 = rng.normal(size=(2, 3, 4)).astype("float32")
    y3 = rng.normal(size=(5, 4, 6)).astype("float32")
    np.testing.assert_allclose(run(K.dot, x3, y3), np.tensordot(x3, y3, axes=([2], [1])), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(K.batch_dot, A, B), (A * B).sum(1, keepdims=True), rtol=1e-5)
    p = rng.normal(size=(4, 2, 3)).astype("float32")
    q = rng.normal(size=(4, 3, 5)).astype("float32")
    np.testing.assert_allclose(run(K.batch_dot, p, q), p @ q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(lambda a, b: K.batch_dot(a, b, axes=(1, 1)), p, rng.normal(size=(4, 2)).astype("float32")).shape, (4, 3))
    with pytest.raises(ShapeError):
        K.batch_dot(K.placeholder((None, 3)), K.placeholder((None, 4)))


def test_shapes():
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    np.testing.assert_array_equal(run(K.transpose, x), x.T)
    np.testing.assert_array_equal(run(lambda t: K.transpose(t, (0, 2, 1)), x), x.transpose(0, 2, 1))
    np.testing.assert_array_equal(run(lambda t: K.reshape(t, (6, 4)), x), x.reshape(6, 4))
    np.testing.assert_array_equal(run(K.flatten, x), x.ravel())
    np.testing.assert_array_equal(run(lambda t: K.expand_dims(t), A), A[..., None])
    np.testing.assert_array_equal(run(lambda t: K.squeeze(t, 1), A[:, None]), A)
    np.testing.assert_array_equal(run(lambda a, b: K.concatenate([a, b]), A, B), np.concatenate([A, B], -1))
    np.testing.assert_array_equal(run(lambda a, b: K.stack([a, b], 1), A, B), np.stack([A, B], 1))
    np.testing.assert_array_equal(run(lambda t: K.tile(t, (2, 1)), A), np.tile(A, (2, 1)))
    ph = K.placeholder((None, 3, 4))
    out = K.function([ph], K.batch_flatten(ph))([x])
    np.testing.assert_array_equal(out, x.reshape(2, 12))
    assert K.int_shape(ph) == (None, 3, 4) and K.ndim(ph) == 3 and K.dtype(ph) == "float32"
    np.testing.assert_array_equal(K.function([ph], K.shape(ph))([x]), [2, 3, 4])
    assert K.int_shape(np.zeros((2, 3))) == (2, 3)


def test_gather_one_hot():
    idx = np.array([2, 0, 3], dtype="int64")
    np.testing.assert_array_equal(run(K.gather, A, idx), A[idx])
    oh = run(lambda i: K.one_hot(i, 5), idx)
    np.testing.assert_array_equal(oh, np.eye(5, dtype="float32")[idx])
    assert oh.dtype == np.float32


def test_softmax_relu_variants():
    e = np.exp(A - A.max(-1, keepdims=True))
    np.testing.assert_allclose(run(K.softmax, A), e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(run(lambda x: K.relu(x, alpha=0.1), A), np.where(A > 0, A, 0.1 * A), rtol=1e-6)
    np.testing.assert_allclose(run(lambda x: K.relu(x, max_value=0.5), A), np.clip(A, 0, 0.5))
    np.testing.assert_allclose(run(lambda x: K.relu(x, threshold=0.3), A), np.where(A > 0.3, A, 0))
    np.testing.assert_allclose(run(lambda x: K.elu(x, alpha=2.0), A), np.where(A > 0, A, 2 * np.expm1(A)), rtol=1e-5)


def _probs(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_categorical_crossentropy():
    t = np.eye(5, dtype="float32")[[0, 2, 4, 1]]
    p = _probs(A)
    ref = -(t * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum(-1)
    np.testing.assert_allclose(run(K.categorical_crossentropy, t, p), ref, rtol=1e-5)
    ref_logits = -(t * (A - np.log(np.exp(A).sum(-1, keepdims=True)))).sum(-1)
    np.testing.assert_allclose(run(lambda a, b: K.categorical_crossentropy(a, b, from_logits=True), t, A),
                               ref_logits, rtol=1e-5)
    # unnormalised probabilities are rescaled, as in Keras
    np.testing.assert_allclose(run(K.categorical_crossentropy, t, 3 * p), ref, rtol=1e-5)
    # a softmax output is differentiated through its logits
    np.testing.assert_allclose(run(lambda a, b: K.categorical_crossentropy(a, K.softmax(b)), t, A), ref_logits, rtol=1e-5)


def test_sparse_categorical_crossentropy():
    y = np.array([0, 2, 4, 1], dtype="int64")
    p = _probs(A)
    ref = -np.log(p[np.arange(4), y])
    np.testing.assert_allclose(run(K.sparse_categorical_crossentropy, y, p), ref, rtol=1e-5)
    np.testing.assert_allclose(run(K.sparse_categorical_crossentropy, y[:, None], p), ref, rtol=1e-5)
    np.testing.assert_allclose(run(lambda a, b: K.sparse_categorical_crossentropy(a, b, from_logits=True), y, A),
                               ref, rtol=1e-5)
    with pytest.raises(ShapeError, match="labels of shape"):
        K.sparse_categorical_crossentropy(K.placeholder((4, 5)), K.placeholder((4, 5)))


def test_binary_crossentropy():
    t = (rng.random((4, 5)) > 0.5).astype("float32")
    p = 1 / (1 + np.exp(-A))
    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    ref = -(t * np.log(pc + eps) + (1 - t) * np.log(1 - pc + eps))
    np.testing.assert_allclose(run(K.binary_crossentropy, t, p), ref, rtol=1e-4)
    ref_logits = np.maximum(A, 0) - A * t + np.log1p(np.exp(-np.abs(A)))
    np.testing.assert_allclose(run(lambda a, b: K.binary_crossentropy(a, b, from_logits=True), t, A), ref_logits,
                               rtol=1e-5, atol=1e-6)


def test_variables_and_updates():
    v = K.variable(np.ones((2, 2)), name="v")
    assert v.dtype == "float32" and K.count_params(v) == 4
    np.testing.assert_array_equal(K.get_value(v), np.ones((2, 2)))
    K.set_value(v, np.full((2, 2), 3.0))
    assert K.batch_get_value([v])[0][0, 0] == 3.0
    x = K.placeholder((2, 2))
    f = K.function([x], [K.sum(x * v)], updates=[(v, v + x)])
    out = f([np.ones((2, 2), "float32")])
    assert isinstance(out, list) and out[0] == 12.0
    np.testing.assert_array_equal(K.get_value(v), np.full((2, 2), 4.0))
    K.batch_set_value([(v, np.zeros((2, 2)))])
    assert K.eval(v).sum() == 0
    z, o = K.zeros((2, 3)), K.ones((3,), dtype="int32")
    assert K.eval(z).shape == (2, 3) and o.dtype == "int32"
    c = K.constant(2.0, shape=(2, 2))
    assert K.eval(c).tolist() == [[2, 2], [2, 2]]
    np.testing.assert_array_equal(run(K.zeros_like, A), np.zeros_like(A))
    np.testing.assert_array_equal(run(K.ones_like, A), np.ones_like(A))
    with pytest.raises(InputError):
        K.set_value(x, np.zeros((2, 2)))
    with pytest.raises(InputError, match="expects 1 inputs"):
        f([])


def test_gradients():
    w = K.variable(np.array([1.0, -2.0, 3.0]))
    x = K.placeholder((None, 3))
    loss = K.mean(K.square(K.dot(x, w)))
    (g,) = K.gradients(loss, [w])
    xs = rng.normal(size=(6, 3)).astype("float32")
    wv = K.get_value(w)
    ref = 2 * xs.T @ (xs @ wv) / 6
    np.testing.assert_allclose(K.function([x], g)([xs]), ref, rtol=1e-4)
    # one SGD step through updates
    step = K.function([x], loss, updates=[(w, w - 0.1 * g)])
    step([xs])
    np.testing.assert_allclose(K.get_value(w), wv - 0.1 * ref, rtol=1e-4)


def test_random():
    u = K.random_uniform((1000,), -1.0, 1.0, seed=1)
    n = K.random_normal((2000,), 1.0, 2.0, seed=2)
    f = K.function([], [u, n])
    a, b = f([])
    assert a.dtype == np.float32 and -1 <= a.min() and a.max() < 1
    assert abs(b.mean() - 1) < 0.2 and abs(b.std() - 2) < 0.2
    a2, _ = f([])
    assert not np.array_equal(a, a2)  # fresh samples at every call


def test_config_and_session():
    assert K.floatx() == "float32" and K.epsilon() == 1e-7
    K.set_epsilon(1e-5)
    try:
        assert K.epsilon() == 1e-5
    finally:
        K.set_epsilon(1e-7)
    K.set_floatx("float64")
    try:
        assert K.variable(1.0).dtype == "float64" and K.placeholder((2,)).dtype == "float64"
    finally:
        K.set_floatx("float32")
    K.clear_session()  # uids are per session: earlier tests may have taken some
    assert K.get_uid("dense") == 1 and K.get_uid("dense") == 2
    K.set_learning_phase(1)
    assert K.learning_phase() == 1
    K.clear_session()
    assert K.get_uid("dense") == 1 and K.learning_phase() == 0
    with pytest.raises(InputError):
        K.set_learning_phase(3)
    assert K.is_tensor(K.placeholder((1,))) and not K.is_tensor(np.zeros(1))
