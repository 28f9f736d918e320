"""The main job, end to end: train a small MLP on real handwritten digits (scikit-learn's
bundled 8x8 digits), compile it, export it as an artifact, and run the artifact in a process
that cannot import graphc or llvmlite.

    python examples/digits_end_to_end.py [--out build/digits] [--epochs 30]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import graphc  # noqa: E402
import graphc.keras as keras  # noqa: E402
from graphc.keras import layers  # noqa: E402
from graphc.keras.datasets import digits  # noqa: E402

# Runs in a child process: graphc and llvmlite are made unimportable, only numpy and the
# small graphc_runtime package (runtime/) are used.
RUN_ARTIFACT = r"""
import sys
sys.modules["graphc"] = None; sys.modules["llvmlite"] = None
sys.path.insert(0, sys.argv[1])
import time, numpy as np, graphc_runtime
t0 = time.perf_counter()
fn = graphc_runtime.load(sys.argv[2])
load_ms = 1e3 * (time.perf_counter() - t0)
x = np.load(sys.argv[3])
np.save(sys.argv[4], fn(x))
print(f"artifact loaded in {load_ms:.1f} ms and ran on {len(x)} images without graphc")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "digits"))
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = digits.load_data(flatten=True)
    model = keras.Sequential([
        layers.Input(shape=(64,)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(10, activation="softmax"),
    ], name="digits")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1, verbose=0)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - t0:.1f} s (one native call per step)")
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {acc:.4f}, loss {loss:.4f}")

    manifest = graphc.export(model, args.out)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"exported to {args.out}: {', '.join(sorted(os.listdir(args.out)))} ({size / 1024:.0f} KiB), "
          f"target {manifest.get('target', {}).get('triple', '?')}")

    x = x_test.astype(np.float32)
    x_path, y_path = os.path.join(args.out, "x_test.npy"), os.path.join(args.out, "artifact_out.npy")
    np.save(x_path, x)
    subprocess.run([sys.executable, "-c", RUN_ARTIFACT, os.path.join(ROOT, "runtime"), args.out, x_path, y_path],
                   check=True)
    from_artifact = np.load(y_path)
    expected = model.predict(x, verbose=0)
    err = float(np.max(np.abs(from_artifact - expected)))
    acc_artifact = float(np.mean(np.argmax(from_artifact, axis=1) == y_test))
    print(f"artifact vs model.predict: max abs difference {err:.2e}; artifact accuracy {acc_artifact:.4f}")
    if err > 1e-5:
        raise SystemExit("the artifact disagrees with model.predict")


if __name__ == "__main__":
    main()
