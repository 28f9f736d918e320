"""examples/softmax_regression.py trains to >= 0.93 test accuracy on load_digits, and its loss
matches a plain NumPy implementation of the same model (same init, batches and learning rate)
step for step within 1e-4."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS, BATCH, LR, SEED = 30, 64, 0.5, 0


def _load_example():
    path = os.path.join(ROOT, "examples", "softmax_regression.py")
    spec = importlib.util.spec_from_file_location("softmax_regression_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


def train_numpy(epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    """The same model by hand in float32 NumPy: analytic gradient (p - y) / n."""
    (x_train, y_train), (x_test, y_test) = example.load_data(seed)
    W, b = example.initial_weights(seed)
    lr32 = np.float32(lr)
    losses = []
    for idx in example.batches(len(x_train), batch_size, epochs, seed):
        xb, yb = x_train[idx], example.one_hot(y_train[idx])
        z = xb @ W + b
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        losses.append(float(-np.mean(np.sum(yb * log_p, axis=1))))
        delta = (np.exp(log_p) - yb) / np.float32(len(idx))
        W = W - lr32 * (xb.T @ delta)
        b = b - lr32 * delta.sum(axis=0)
    accuracy = float(np.mean(np.argmax(x_test @ W + b, axis=1) == y_test))
    return {"losses": losses, "test_accuracy": accuracy, "W": W, "b": b}


@pytest.fixture(scope="module")
def trained(train_mode):
    return example.train(train_mode, epochs=EPOCHS, batch_size=BATCH, lr=LR, seed=SEED)


@pytest.fixture(scope="module")
def reference():
    return train_numpy(EPOCHS, BATCH, LR, SEED)


def test_data_split():
    (xt, yt), (xs, ys) = example.load_data(SEED)
    assert xt.shape == (1400, 64) and xs.shape == (397, 64) and xt.dtype == np.float32
    assert 0.0 <= xt.min() and xt.max() <= 1.0
    assert set(np.unique(yt)) == set(range(10))


def test_reaches_accuracy(trained):
    assert trained["test_accuracy"] >= 0.93, trained["test_accuracy"]


def test_loss_matches_numpy_step_for_step(trained, reference):
    ours, theirs = np.array(trained["losses"]), np.array(reference["losses"])
    assert len(ours) == len(theirs) == EPOCHS * int(np.ceil(1400 / BATCH))
    assert theirs[-1] < 0.5 * theirs[0]  # it did learn
    worst = int(np.argmax(np.abs(ours - theirs)))
    assert np.max(np.abs(ours - theirs)) <= 1e-4, (worst, ours[worst], theirs[worst])
    np.testing.assert_allclose(trained["W"], reference["W"], atol=1e-4)
    np.testing.assert_allclose(trained["b"], reference["b"], atol=1e-4)
    assert abs(trained["test_accuracy"] - reference["test_accuracy"]) <= 2 / 397


def test_step_is_one_fused_training_function(trained):
    """The training step exposes its optimised graph; the weights are updated in place."""
    step = trained["step"]
    assert len(step.updates) == 2
    assert [t.name for t, _ in step.updates] == ["W", "b"]
    from graphc.ir import Op
    ops = {n.op for n in step.graph.nodes()}
    assert Op.LOG_SOFTMAX in ops and Op.SOFTMAX not in ops  # the stable cross-entropy
    assert Op.FUSED in ops
