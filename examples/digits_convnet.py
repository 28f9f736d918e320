"""The Keras MNIST convnet on the scikit-learn digits (real 8x8 handwritten digits, no
download), written as the Keras example with only the imports changed.

    python examples/digits_convnet.py        # prints the test accuracy (beats digits_mlp.py)

Conv2D is im2col (strided slices of the input) + one matmul, MaxPooling2D a max over strided
slices (graphc/frontend/nn.py), so the whole training step -- forward, loss, gradients, Adam --
is still one compiled graphc function, called once per batch.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc.keras as keras  # noqa: E402  (was: from tensorflow import keras)
from graphc.keras import layers  # noqa: E402
from graphc.keras.datasets import digits  # noqa: E402


def main(epochs: int = 30, seed: int = 0) -> float:
    np.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train.reshape(-1, 8, 8, 1)
    x_test = x_test.reshape(-1, 8, 8, 1)
    num_classes = 10
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=2e-3),
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_split=0.1, verbose=2)
    train_s = time.perf_counter() - t0
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}  test accuracy {acc:.4f}  (fit took {train_s:.1f}s incl. compiling)")
    return float(acc)


if __name__ == "__main__":
    accuracy = main()
    sys.exit(0 if accuracy >= 0.975 else 1)
