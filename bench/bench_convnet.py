"""The Keras MNIST convnet: one SGD training step at batch 32 on 28x28x1 images, graphc vs peers.

    python bench/bench_convnet.py [--rounds N]

Model (keras.io's "Simple MNIST convnet"): Conv2D 32 3x3 relu, Conv2D 64 3x3 relu,
MaxPooling2D 2x2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5, Dense 10 softmax;
categorical cross-entropy, SGD (lr 0.01). graphc runs it through its Keras API
(``model.train_on_batch``, one compiled native call per step) and also as the bare compiled
step; PyTorch runs the same model eagerly (its default threads, and 1 thread). Each framework
runs in its own child process.
"""
from __future__ import annotations

import time

import numpy as np

from common import isolated, machine, median_time, peer, report, versions

BATCH = 32


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    return x, y


def measure_graphc(kind: str):
    import graphc.keras as keras
    from graphc.keras import layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01))
    x, y = data()
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    compile_s = time.perf_counter() - t0
    if kind == "keras":
        step = median_time(lambda: model.train_on_batch(x, y), min_time=1.0)
    else:  # the compiled step alone, as the Keras layer calls it
        xs, ys = model._std_x(x), model._std_y(y)
        sws = model._std_sw(None, ys, None)
        fn = model._get_fn("train", ys, sws)
        args = [*xs, *ys, *sws]
        step = median_time(lambda: fn(*args), min_time=1.0)
    return step, compile_s


def measure_torch(threads: int | None):
    torch = peer("torch")
    if torch is None:
        return None
    if threads:
        torch.set_num_threads(threads)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data()
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ty = torch.from_numpy(y.argmax(1))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(tx), ty)
        loss.backward()
        opt.step()
    return median_time(step, min_time=1.0), None


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every framework N times in turn; report medians and per-round ratios")
    rounds = max(1, ap.parse_args().rounds)
    print(f"# convnet benchmark -- {machine()}; {versions()}")
    runs: dict[str, list] = {}
    notes = {}
    for _ in range(rounds):
        for name, fn, arg in (("graphc", measure_graphc, "keras"), ("graphc compiled step", measure_graphc, "step"),
                              ("torch", measure_torch, None), ("torch (1 thread)", measure_torch, 1)):
            out = isolated(fn, arg)
            if out is not None:
                runs.setdefault(name, []).append(out[0])
                if out[1] is not None:
                    notes[name] = f"first call, compile included: {out[1]:.2f} s"
    results = {name: float(np.median(ts)) for name, ts in runs.items()}
    if rounds > 1 and "graphc" in runs:
        for name, ts in runs.items():
            if name != "graphc" and len(ts) == len(runs["graphc"]):
                ratios = [g / t for g, t in zip(runs["graphc"], ts)]
                print(f"  graphc/{name} per round: {', '.join(f'{r:.3f}' for r in ratios)}"
                      f" (median {np.median(ratios):.3f})")
    report(f"Keras MNIST convnet, batch {BATCH}, SGD training step", results, notes)


if __name__ == "__main__":
    main()
