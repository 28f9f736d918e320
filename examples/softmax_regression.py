"""Softmax regression on scikit-learn's 8x8 digits, written Theano-style with graphc.

    python examples/softmax_regression.py [--mode native|reference] [--epochs 30]

One compiled function does a whole training step: it computes the loss, its gradient, and
updates the weights in place (``updates``), so a step is a single call.
"""
from __future__ import annotations

import argparse
from typing import Iterator

import numpy as np

import graphc as gc

N_TRAIN = 1400


def load_data(seed: int = 0):
    """Digits shuffled with ``seed``: 1400 training and 397 test images, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype(np.float32)
    y = digits.target[order].astype(np.int64)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def one_hot(labels: np.ndarray, n: int = 10) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[labels]


def batches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Index arrays of the mini-batches, a fresh shuffle per epoch (the last batch may be short)."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def initial_weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    w = np.random.default_rng(seed).standard_normal((64, 10)).astype(np.float32) * 0.01
    return w, np.zeros(10, np.float32)


def train(mode: str = "native", epochs: int = 30, batch_size: int = 64, lr: float = 0.5, seed: int = 0) -> dict:
    """Train the model; returns the per-step losses, the test accuracy and the final weights."""
    (x_train, y_train), (x_test, y_test) = load_data(seed)
    w0, b0 = initial_weights(seed)

    # the model, as in the issue
    x = gc.placeholder((None, 64), "float32", name="x")
    y = gc.placeholder((None, 10), "float32", name="y")
    W = gc.shared(w0, name="W")
    b = gc.shared(b0, name="b")
    p = gc.ops.softmax(x @ W + b, axis=-1)
    loss = -gc.ops.mean(gc.ops.sum(y * gc.ops.log(p), axis=-1))
    gW, gb = gc.grad(loss, [W, b])
    step = gc.function([x, y], loss, updates=[(W, W - lr * gW), (b, b - lr * gb)], mode=mode, name="step")
    predict = gc.function([x], gc.ops.argmax(p, axis=-1), mode=mode, name="predict")

    losses = []
    for idx in batches(len(x_train), batch_size, epochs, seed):
        losses.append(float(step(x_train[idx], one_hot(y_train[idx]))))
    accuracy = float(np.mean(predict(x_test) == y_test))
    train_accuracy = float(np.mean(predict(x_train) == y_train))
    return {"losses": losses, "test_accuracy": accuracy, "train_accuracy": train_accuracy,
            "W": W.get_value(), "b": b.get_value(), "step": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="native", choices=["native", "reference"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    result = train(args.mode, args.epochs, args.batch_size, args.lr)
    losses = result["losses"]
    print(f"{len(losses)} steps ({args.mode}): loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"train accuracy {result['train_accuracy']:.4f}")
    print(f"test accuracy {result['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
