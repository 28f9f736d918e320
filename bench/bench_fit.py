"""Keras ``fit`` on a small MLP: the time of one epoch, per batch, graphc vs peers.

    python bench/bench_fit.py [--rounds N]

Model: the issue's small MLP 64-128-64-10 (ReLU, softmax), sparse categorical cross-entropy,
SGD (lr 0.01), accuracy metric, batch 32, shuffled, on 1792 samples shaped like the
scikit-learn digits (56 batches an epoch). For a model this small the step itself takes tens
of microseconds, so the training loop around it (slicing batches, calls, metrics, callbacks)
decides the time. graphc runs ``model.fit`` with ``steps_per_execution`` 1 (a native call per
batch) and 56 (the whole epoch in one native loop); Keras 3 on JAX the same two settings;
PyTorch the loop a user writes by hand (index a shuffled permutation, forward, backward, step,
count correct predictions). Each framework runs in its own child process.
"""
from __future__ import annotations

import os
import time

import numpy as np

from common import isolated, machine, peer, report, versions

SIZES = (64, 128, 64, 10)
BATCH = 32
N = 1792
EPOCHS = 7  # the first is a warm-up (compilation); the median of the others is reported


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], N)
    return x, y


def _keras_epochs(keras, spe: int) -> float:
    layers = [keras.Input(shape=(SIZES[0],))]
    layers += [keras.layers.Dense(n, activation="relu") for n in SIZES[1:-1]]
    layers += [keras.layers.Dense(SIZES[-1], activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=spe)
    x, y = data()
    times = []
    for _ in range(EPOCHS):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def measure_graphc(spe: int):
    import graphc.keras as keras
    return _keras_epochs(keras, spe)


def measure_keras_jax(spe: int):
    os.environ["KERAS_BACKEND"] = "jax"
    keras = peer("keras")
    if keras is None:
        return None
    return _keras_epochs(keras, spe)


def measure_torch(_=None):
    torch = peer("torch")
    if torch is None:
        return None
    nn = torch.nn
    mods = []
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*mods, nn.Linear(SIZES[-2], SIZES[-1]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for _ in range(EPOCHS):
        t0 = time.perf_counter()
        perm = torch.randperm(N)
        correct = 0
        total = 0.0
        for i in range(0, N, BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = tx[idx], ty[idx]
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


# "graphc" (the reference of the ratios) is fit with steps_per_execution=56 ("spe 56"), the
# whole epoch per native call; "spe 1" is a call per batch
PEERS = [("graphc", measure_graphc, 56), ("graphc spe 1", measure_graphc, 1),
         ("keras-jax spe 56", measure_keras_jax, 56), ("keras-jax spe 1", measure_keras_jax, 1),
         ("torch loop", measure_torch, None)]
#: like for like, printed per round: (graphc run, peer run)
PAIRS = [("graphc", "keras-jax spe 56"), ("graphc spe 1", "keras-jax spe 1"), ("graphc", "torch loop"),
         ("graphc spe 1", "torch loop"), ("graphc", "graphc spe 1")]


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every framework N times in turn; report medians and per-round ratios")
    rounds = max(1, ap.parse_args().rounds)
    print(f"# fit benchmark -- {machine()}; {versions()}")
    runs: dict[str, list] = {}
    for _ in range(rounds):
        for name, fn, arg in PEERS:
            out = isolated(fn, arg)
            if out is not None:
                runs.setdefault(name, []).append(out)
    for mine, theirs in PAIRS:
        if mine in runs and theirs in runs and len(runs[mine]) == len(runs[theirs]):
            ratios = [g / t for g, t in zip(runs[mine], runs[theirs])]
            print(f"  {mine} / {theirs} per round: {', '.join(f'{r:.3f}' for r in ratios)}"
                  f" (median {np.median(ratios):.3f})")
    results = {name: float(np.median(ts)) for name, ts in runs.items()}
    per_batch = {name: f"{t / (N // BATCH) * 1e6:.0f} us a batch" for name, t in results.items()}
    report(f"Keras fit, MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, one epoch of {N // BATCH} batches",
           results, per_batch)


if __name__ == "__main__":
    main()
