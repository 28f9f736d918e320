"""Train a small MLP and a small convnet on the scikit-learn digits and export both as
artifacts that run without Python (or from Python with only numpy + graphc_runtime).

    python examples/export_digits.py digits_out      # train, export, write test inputs
    make -C examples/c OUT=$PWD/digits_out run       # the C program prints both models' predictions
    make -C examples/c OUT=$PWD/digits_out finetune  # training steps from C (train-step artifact)

Writes into ``OUT``: ``mlp/`` (artifact "digits", input (batch, 64)) and ``cnn/`` (artifact
"digits_cnn", input (batch, 64) reshaped to 8x8x1 inside), each with ``expected.npy`` (model.predict on the test
inputs), ``train/`` (artifact "digits_train": the MLP's training step), plus ``x_test.f32``
(raw little-endian float32, n x 64), ``y_test.f32`` (labels as float32) and ``x_test.npy``.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc.keras as keras  # noqa: E402
from graphc.keras.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D, Reshape  # noqa: E402
from graphc.keras.models import Sequential  # noqa: E402


def train(kind: str = "mlp", epochs: int = 20, seed: int = 0):
    """A trained digits model ("mlp" or "cnn") and the test split ``(model, x_test, y_test)``."""
    from graphc.keras.datasets import digits
    np.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = digits.load_data(flatten=True)
    if kind == "mlp":
        layers = [Input(shape=(64,)), Dense(64, activation="relu"), Dense(10, activation="softmax")]
    else:
        layers = [Input(shape=(64,)), Reshape((8, 8, 1)), Conv2D(8, 3, activation="relu"), MaxPooling2D(2),
                  Flatten(), Dense(10, activation="softmax")]
    model = Sequential(layers, name=f"digits_{kind}")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  metrics=["accuracy"])
    if epochs:
        model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    return model, x_test.astype("float32"), y_test


def export_digits(out: str, epochs=20, seed: int = 0, n_test: int = 16, kinds=("mlp", "cnn", "train")):
    """Train (``epochs``: a number, or {kind: number}), export to ``out/<kind>`` and write test
    inputs and expected outputs; returns ``{kind: model}`` and the test split."""
    models = {}
    for kind in kinds:
        n_epochs = epochs.get(kind, 20) if isinstance(epochs, dict) else epochs
        model, x_test, y_test = train("mlp" if kind == "train" else kind, n_epochs, seed)
        art = os.path.join(out, kind)
        # "train": the MLP's training step, for fine-tuning from C (examples/c/finetune.c)
        model.export(art, name={"mlp": "digits", "cnn": "digits_cnn", "train": "digits_train"}[kind],
                     train=kind == "train")
        x = np.ascontiguousarray(x_test[:n_test])
        np.save(os.path.join(art, "expected.npy"), model.predict(x, verbose=0))
        models[kind] = model
    x.astype("<f4").tofile(os.path.join(out, "x_test.f32"))
    y_test[:n_test].astype("<f4").tofile(os.path.join(out, "y_test.f32"))
    np.save(os.path.join(out, "x_test.npy"), x)
    return models, x_test, y_test


def main(out: str = "digits_out") -> int:
    t = time.perf_counter()
    models, x_test, y_test = export_digits(out)
    print(f"trained and exported in {time.perf_counter() - t:.1f} s")
    for kind, model in models.items():
        if kind == "train":
            continue
        acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
        print(f"{kind}: test accuracy {acc:.4f}")
        art = os.path.join(out, kind)
        for f in sorted(os.listdir(art)):
            print(f"  {f:24s} {os.path.getsize(os.path.join(art, f)):8d} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
