"""Losses, metrics and activations against NumPy transcriptions of Keras 3's definitions."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.keras import activations, losses, metrics

EPS = 1e-7
rng = np.random.default_rng(0)
YT = rng.random((6, 4)).astype("float32")
YP = rng.random((6, 4)).astype("float32") + 0.05
ONEHOT = np.eye(4, dtype="float32")[[0, 1, 2, 3, 1, 2]]
PROBS = (YP / YP.sum(-1, keepdims=True)).astype("float32")
BIN = (YT > 0.5).astype("float32")
SIGNED = np.where(YT > 0.5, 1.0, -1.0).astype("float32")


def _np(name, t, p):
    if name == "mse":
        return np.mean((p - t) ** 2, -1)
    if name == "mae":
        return np.mean(np.abs(p - t), -1)
    if name == "mape":
        return 100 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)), -1)
    if name == "msle":
        return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, -1)
    if name == "huber":
        e = p - t
        return np.mean(np.where(np.abs(e) <= 1, 0.5 * e * e, np.abs(e) - 0.5), -1)
    if name == "hinge":
        return np.mean(np.maximum(1 - t * p, 0), -1)
    if name == "squared_hinge":
        return np.mean(np.maximum(1 - t * p, 0) ** 2, -1)
    if name == "binary_crossentropy":
        q = np.clip(p, EPS, 1 - EPS)
        return np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q)), -1)
    if name == "categorical_crossentropy":
        q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
        return -np.sum(t * np.log(q), -1)
    if name == "kl_divergence":
        a, b = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
        return np.sum(a * np.log(a / b), -1)
    if name == "poisson":
        return np.mean(p - t * np.log(p + EPS), -1)
    if name == "cosine_similarity":
        a = t / np.sqrt(np.sum(t * t, -1, keepdims=True))
        b = p / np.sqrt(np.sum(p * p, -1, keepdims=True))
        return -np.sum(a * b, -1)
    raise KeyError(name)


LOSS_INPUTS = {"hinge": (SIGNED, YP - 0.5), "squared_hinge": (SIGNED, YP - 0.5), "binary_crossentropy": (BIN, PROBS),
               "categorical_crossentropy": (ONEHOT, PROBS), "kl_divergence": (PROBS[::-1].copy(), PROBS)}


@pytest.mark.parametrize("name", ["mse", "mae", "mape", "msle", "huber", "hinge", "squared_hinge",
                                  "binary_crossentropy", "categorical_crossentropy", "kl_divergence", "poisson",
                                  "cosine_similarity"])
def test_loss_functions(name):
    t, p = LOSS_INPUTS.get(name, (YT, YP))
    obj = losses.to_loss_object(name)
    np.testing.assert_allclose(obj(t, p), np.mean(_np(name, t, p)), rtol=1e-5)
    sw = np.linspace(0.5, 1.5, 6).astype("float32")
    np.testing.assert_allclose(obj(t, p, sample_weight=sw), np.sum(_np(name, t, p) * sw) / 6, rtol=1e-5)


def test_loss_classes_and_options():
    logits = (YP * 4 - 2).astype("float32")
    labels = np.array([0, 1, 2, 3, 1, 2])
    ls = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits),
                               np.mean(-ls[np.arange(6), labels]), rtol=1e-5)
    np.testing.assert_allclose(losses.CategoricalCrossentropy(from_logits=True)(ONEHOT, logits),
                               np.mean(-np.sum(ONEHOT * ls, -1)), rtol=1e-5)
    smooth = ONEHOT * 0.9 + 0.1 / 4
    np.testing.assert_allclose(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(ONEHOT, logits),
                               np.mean(-np.sum(smooth * ls, -1)), rtol=1e-5)
    z = logits[:, :1]
    bce_logits = np.maximum(z, 0) - z * BIN[:, :1] + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True)(BIN[:, :1], z), np.mean(bce_logits),
                               rtol=1e-5)
    np.testing.assert_allclose(losses.Huber(delta=0.3)(YT, YP * 3), np.mean(np.mean(np.where(
        np.abs(YP * 3 - YT) <= 0.3, 0.5 * (YP * 3 - YT) ** 2, 0.3 * np.abs(YP * 3 - YT) - 0.045), -1)), rtol=1e-5)
    assert losses.MeanSquaredError(reduction="none")(YT, YP).shape == (6,)
    assert losses.get("kld") is losses.kl_divergence
    with pytest.raises(Exception, match="valid names"):
        losses.get("nope")


def test_accuracy_metrics():
    labels = np.array([0, 1, 2, 3, 1, 2])
    hits = np.argmax(PROBS, -1) == labels
    assert metrics.CategoricalAccuracy()(ONEHOT, PROBS) == pytest.approx(hits.mean())
    assert metrics.SparseCategoricalAccuracy()(labels[:, None], PROBS) == pytest.approx(hits.mean())
    assert metrics.BinaryAccuracy()(BIN, PROBS) == pytest.approx(np.mean(BIN == (PROBS > 0.5)))
    top2 = np.array([labels[i] in np.argsort(-PROBS[i])[:2] for i in range(6)])
    assert metrics.TopKCategoricalAccuracy(k=2)(ONEHOT, PROBS) == pytest.approx(top2.mean())
    assert metrics.SparseTopKCategoricalAccuracy(k=2)(labels, PROBS) == pytest.approx(top2.mean())
    m = metrics.CategoricalAccuracy()
    m.update_state(ONEHOT[:2], PROBS[:2])
    m.update_state(ONEHOT[2:], PROBS[2:], sample_weight=np.array([1, 2, 0, 1], "float32"))
    w = np.array([1, 1, 1, 2, 0, 1])
    assert m.result() == pytest.approx(np.sum(hits * w) / w.sum())
    m.reset_state()
    assert m.result() == 0.0
    # "accuracy" resolves from label/prediction shapes like Keras 3
    assert isinstance(metrics.get("accuracy", (None, 1), (None, 1)), metrics.BinaryAccuracy)
    assert isinstance(metrics.get("accuracy", (None,), (None, 4)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("accuracy", (None, 4), (None, 4)), metrics.CategoricalAccuracy)


def test_precision_recall_auc():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0], "float32")
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2, 0.55, 0.3], "float32")
    tp = np.sum((p > 0.5) & (y == 1))
    fp = np.sum((p > 0.5) & (y == 0))
    fn = np.sum((p <= 0.5) & (y == 1))
    assert metrics.Precision()(y, p) == pytest.approx(tp / (tp + fp))
    assert metrics.Recall()(y, p) == pytest.approx(tp / (tp + fn))
    # ROC AUC with Keras's thresholds approximates the exact pairwise AUC closely
    pos, neg = p[y == 1], p[y == 0]
    exact = np.mean([[1.0 if a > b else 0.5 if a == b else 0.0 for b in neg] for a in pos])
    assert metrics.AUC()(y, p) == pytest.approx(exact, abs=0.02)
    assert 0 <= metrics.AUC(curve="PR")(y, p) <= 1
    for m in (metrics.MeanSquaredError(), metrics.get("mae")):
        v = m(YT, YP)
        ref = np.mean((YT - YP) ** 2) if "squared" in m.name else np.mean(np.abs(YT - YP))
        assert v == pytest.approx(ref, rel=1e-5)
    with pytest.raises(Exception, match="valid names"):
        metrics.get("acuracy")


ACTS = {
    "linear": lambda x: x, "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh, "softplus": lambda x: np.log1p(np.exp(x)), "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2))),
    "swish": lambda x: x / (1 + np.exp(-x)), "silu": lambda x: x / (1 + np.exp(-x)),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x), "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
}


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activations(name):
    x = np.linspace(-4, 4, 24).reshape(3, 8).astype("float32")
    ph = gc.placeholder((None, 8))
    f = gc.function([ph], activations.get(name)(ph), mode="reference")
    np.testing.assert_allclose(f(x), ACTS[name](x.astype("float64")), rtol=1e-5, atol=1e-6)
    assert activations.get(activations.serialize(activations.get(name))) is activations.get(name)


def test_sympy_activation_derivative_agrees_with_autodiff():
    z = sympy.Symbol("z")
    formula = z * sympy.tanh(sympy.log(1 + sympy.exp(z))) + sympy.Rational(1, 10) * z ** 3
    act = activations.from_sympy(formula)
    assert act.derivative == sympy.diff(formula, z)
    ph = gc.placeholder((7,), "float64")
    y = act(ph)
    (auto,) = gc.grad(gc.ops.sum(y), [ph])
    f = gc.function([ph], [y, auto, act.derivative_fn(ph)], mode="reference")
    x = np.linspace(-3, 3, 7)
    val, d_auto, d_sym = f(x)
    np.testing.assert_allclose(val, act.numpy(x), rtol=1e-10)
    np.testing.assert_allclose(d_auto, d_sym, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_sym, sympy.lambdify(z, act.derivative)(x), rtol=1e-10)
    clone = activations.deserialize(activations.serialize(act))
    assert sympy.simplify(clone.formula - formula) == 0


def test_sympy_activation_errors():
    a, b = sympy.symbols("a b")
    with pytest.raises(Exception, match="exactly one free symbol"):
        activations.from_sympy(a * b)
    with pytest.raises(Exception, match="not supported|cannot store"):
        activations.from_sympy(sympy.gamma(a))


def test_mean_of_unweighted_per_sample_values_matches_the_general_path():
    """A batch of per-sample values without weights (fit's case) takes a shortcut; it sums
    as the general path does (weights of one, or 2-D values of one column)."""
    from graphc.keras import metrics as M
    rng = np.random.default_rng(3)
    batches = [rng.random(n).astype(np.float32) for n in (32, 32, 7, 1000)]
    fast, weighted, column = M.Mean(), M.Mean(), M.Mean()
    for v in batches:
        fast.update_state(v)
        weighted.update_state(v, np.ones(v.shape[0]))
        column.update_state(v[:, None])
    want = np.concatenate(batches).astype(np.float64).mean()
    assert fast.result() == pytest.approx(want, rel=1e-12)
    assert fast.result() == pytest.approx(weighted.result(), rel=1e-12)
    assert fast.result() == pytest.approx(column.result(), rel=1e-12)
    assert fast.count == weighted.count == column.count == 1071
    acc = M.SparseCategoricalAccuracy()
    acc.update_state(np.array([1, 2, 3]), np.eye(4, dtype=np.float32)[[1, 0, 3]])
    acc.update_state(np.array([[0], [1]]), np.eye(4, dtype=np.float32)[[0, 1]])
    assert acc.result() == pytest.approx(4 / 5)
