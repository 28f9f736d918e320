"""Shared helpers for the benchmarks: timing, peer discovery, a result table.

Every script measures graphc and its peers in the same process and prints the median time of
each, and the ratio graphc / peer (lower is better). Peers that are not installed are skipped.
"""
from __future__ import annotations

import importlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the graphc checkout, without installing it


def peer(name: str):
    """The module ``name``, or None when it is not installed (the peer is skipped)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "skip this peer"
        return None


def isolated(fn, *args, isolate: bool = True):
    """``fn(*args)`` in a fresh child process (spawned), so that one framework's thread pools
    (OpenBLAS, OpenMP, XLA) never compete with another's; the script itself is still one run.
    ``fn`` must be a module-level function; returns its result, or None if it raised."""
    if not isolate:
        return fn(*args)
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        try:
            return ex.submit(fn, *args).result()
        except Exception as exc:  # noqa: BLE001 - a peer that fails is reported and skipped
            print(f"  ({getattr(fn, '__name__', fn)}{args[:1]} failed: {type(exc).__name__}: {exc})")
            return None


def median_time(fn, min_time: float = 0.4, min_reps: int = 7, max_reps: int = 2000, warmup: int = 2) -> float:
    """Median seconds of one call of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fmt(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:8.3f} s "
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.3f} ms"
    return f"{seconds * 1e6:8.1f} us"


def report(title: str, results: dict[str, float], extra: dict[str, str] | None = None) -> None:
    """Print one benchmark's medians and the graphc/peer ratios."""
    print(f"\n== {title}   [{load()}]")
    g = results.get("graphc")
    for name, t in results.items():
        ratio = "" if name == "graphc" or g is None else f"   graphc/{name} = {g / t:6.3f}"
        note = f"   ({extra[name]})" if extra and name in extra else ""
        print(f"  {name:<22}{fmt(t)}{ratio}{note}")
    sys.stdout.flush()


def versions() -> str:
    out = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}"]
    for name in ("torch", "jax", "pytensor", "onnxruntime", "llvmlite"):
        m = peer(name)
        if m is not None:
            out.append(f"{name} {getattr(m, '__version__', '?')}")
    return ", ".join(out)


def load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "load average " + " ".join(f.read().split()[:3])
    except OSError:
        return "load average ?"


def machine() -> str:
    try:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        cpu = llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001
        cpu = "?"
    return f"{os.cpu_count()} CPUs, LLVM CPU {cpu}, {load()}"
