"""Train an MLP on the scikit-learn digits (real 8x8 handwritten digits, no download) with
the Keras-style API, written exactly as Keras code with only the imports changed.

    python examples/digits_mlp.py            # prints the test accuracy (>= 0.96)

The whole training step (forward, loss, gradients, Adam update) is one compiled graphc
function; ``fit`` calls it once per batch.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc.keras as keras  # noqa: E402  (was: from tensorflow import keras)
from graphc.keras.callbacks import ModelCheckpoint  # noqa: E402
from graphc.keras.layers import Dense, Dropout, Input  # noqa: E402
from graphc.keras.models import Sequential, load_model  # noqa: E402


def load_digits_data():
    """(x_train, y_train), (x_test, y_test) with flattened float32 images and integer labels."""
    try:
        from graphc.keras.datasets import digits
        return digits.load_data(flatten=True)
    except ImportError:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        d = load_digits()
        x = (d.data / 16.0).astype("float32")
        xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.2, random_state=113, stratify=d.target)
        return (xtr, ytr), (xte, yte)


def main(epochs: int = 40, seed: int = 0) -> float:
    np.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits_data()
    y_train_1h = keras.utils.to_categorical(y_train, 10)
    y_test_1h = keras.utils.to_categorical(y_test, 10)

    model = Sequential([
        Input(shape=(64,)),
        Dense(128, activation="relu"),
        Dropout(0.2),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  metrics=["accuracy"])
    model.summary()
    best = os.path.join(tempfile.mkdtemp(), "digits_best.keras")
    model.fit(x_train, y_train_1h, batch_size=32, epochs=epochs, validation_split=0.1, verbose=2,
              callbacks=[ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True)])
    loss, acc = model.evaluate(x_test, y_test_1h, verbose=0)
    reloaded = load_model(best)
    _, best_acc = reloaded.evaluate(x_test, y_test_1h, verbose=0)
    pred = np.argmax(model.predict(x_test, verbose=0), axis=1)
    print(f"test loss {loss:.4f}  test accuracy {acc:.4f}  (best checkpoint: {best_acc:.4f}; "
          f"argmax agreement {np.mean(pred == y_test):.4f})")
    print(f"compiled functions for this model: {model.compiled_functions} (train, test, predict)")
    return float(acc)


if __name__ == "__main__":
    accuracy = main()
    sys.exit(0 if accuracy >= 0.96 else 1)
