"""Train a small MLP on the scikit-learn digits and export it as an artifact that runs without
Python (or from Python with only numpy + graphc_runtime).

    python examples/export_digits.py digits_artifact    # train, export, write test inputs
    make -C examples/c ARTIFACT=../../digits_artifact run   # the C program prints predictions

Writes into the artifact directory's parent nothing; into ``OUT``: the artifact files, plus
``x_test.f32`` (raw little-endian float32, n x 64) and ``x_test.npy`` / ``expected.npy``
(model.predict on those inputs) for the C example and the tests.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc.keras as keras  # noqa: E402
from graphc.keras.layers import Dense, Input  # noqa: E402
from graphc.keras.models import Sequential  # noqa: E402


def train(epochs: int = 20, seed: int = 0):
    """A trained digits MLP and the test split ``(model, x_test, y_test)``."""
    from graphc.keras.datasets import digits
    np.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = digits.load_data(flatten=True)
    model = Sequential([Input(shape=(64,)), Dense(64, activation="relu"), Dense(10, activation="softmax")],
                       name="digits_mlp")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    return model, x_test.astype("float32"), y_test


def export_digits(out: str, epochs: int = 20, seed: int = 0, n_test: int = 16):
    """Train, export to ``out`` and write test inputs and expected outputs; returns the model."""
    model, x_test, y_test = train(epochs, seed)
    model.export(out, name="digits")
    x = np.ascontiguousarray(x_test[:n_test])
    x.astype("<f4").tofile(os.path.join(out, "x_test.f32"))
    np.save(os.path.join(out, "x_test.npy"), x)
    np.save(os.path.join(out, "expected.npy"), model.predict(x, verbose=0))
    return model, x_test, y_test


def main(out: str = "digits_artifact") -> int:
    t = time.perf_counter()
    model, x_test, y_test = export_digits(out)
    acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
    print(f"trained and exported in {time.perf_counter() - t:.1f} s; test accuracy {acc:.4f}")
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    for f, n in sizes.items():
        print(f"  {f:24s} {n:8d} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
