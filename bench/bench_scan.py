"""Recurrent benchmarks: the loop op keeps compile time flat in the sequence length.

    python bench/bench_scan.py [--steps 10 100] [--reps 3]

- compile: cold compile (trace, grad, optimise, lower, LLVM) of an LSTM(64) training step,
  batch 32, 16 features, for each sequence length. The recurrence is one SCAN node, so the
  compile time should not depend on the length (issue 4).
- train: one SGD step of the same model, graphc vs PyTorch eager (torch.nn.LSTM, 1 thread).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from common import fmt, machine, median_time, peer, report, versions

import graphc as gc
from graphc.keras import layers as L

BATCH, FEATURES, UNITS = 32, 16, 64


def graphc_step(steps: int, cache_dir: str | None = None):
    x = gc.placeholder((BATCH, steps, FEATURES), name="x")
    lstm = L.LSTM(UNITS, name="lstm")
    dense = L.Dense(1, name="head")
    out = dense(lstm(x))
    loss = gc.ops.mean(out * out)
    weights = lstm.trainable_weights + dense.trainable_weights
    grads = gc.grad(loss, weights)
    return gc.function([x], loss, updates=[(w, w - 0.01 * g) for w, g in zip(weights, grads)], name="lstm_step",
                       options=gc.CompileOptions(cache_dir=cache_dir))


def torch_step(steps: int):
    torch = peer("torch")
    if torch is None:
        return None
    torch.set_num_threads(1)
    lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    head = torch.nn.Linear(UNITS, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((BATCH, steps, FEATURES), dtype=np.float32))

    def step():
        for p in params:
            p.grad = None
        _, (h, _) = lstm(x)
        loss = (head(h[-1]) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.01 * p.grad
    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print(versions())
    compile_times = {}
    graphc_step(args.steps[0])  # the runtime library (GEMMs), compiled once per machine, is not counted
    for steps in args.steps:
        times = []
        for _ in range(args.reps):
            cache = tempfile.mkdtemp(prefix="graphc-bench-scan-")  # cold: an empty disk cache
            t0 = time.perf_counter()
            graphc_step(steps, cache)
            times.append(time.perf_counter() - t0)
        compile_times[steps] = float(np.median(times))
    print("\n== cold compile of the LSTM training step (median of %d)" % args.reps)
    for steps, t in compile_times.items():
        print(f"  {steps:4d} steps  {fmt(t)}   ratio to {args.steps[0]} steps: "
              f"{t / compile_times[args.steps[0]]:5.2f}")
    for steps in args.steps:
        fn = graphc_step(steps)
        x = np.random.default_rng(0).standard_normal((BATCH, steps, FEATURES), dtype=np.float32)
        results = {"graphc": median_time(lambda: fn(x))}
        step = torch_step(steps)
        if step is not None:
            results["torch (1 thread)"] = median_time(step)
        report(f"LSTM({UNITS}) SGD step, batch {BATCH}, {steps} steps", results)


if __name__ == "__main__":
    main()
