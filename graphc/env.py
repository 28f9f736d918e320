"""The one reader of the environment. Nothing else in graphc looks at environment variables.

- ``GRAPHC_HOME``: where datasets are cached (default ``~/.graphc``).
- ``GRAPHC_CACHE_DIR``: the disk cache for compiled code (default: ``$XDG_CACHE_HOME/graphc``
  or ``~/.cache/graphc``; ``off`` disables it).
- ``GRAPHC_CACHE_MAX_MB``: the disk cache's size limit (default 1024); the entries used
  longest ago are deleted when a new one would exceed it.
- ``GRAPHC_DUMP_DIR``: write every compiled function's stages (graph before/after
  optimisation, LLVM IR) into this folder, for debugging.
- ``GRAPHC_TIMINGS=1``: print how long each compile stage took.
- ``GRAPHC_PROFILE=1``: native code times each kernel (``fn.profile()``).
- ``GRAPHC_PTX_COMPILER``: ``llvm`` (default) or ``libnvvm``, what turns CUDA kernels into PTX.
- ``GRAPHC_LIBNVVM``: the path of libnvvm.so (else found under ``CUDA_HOME``, ``CUDA_PATH``
  or ``/usr/local/cuda*``).
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator


def graphc_home() -> str:
    """The folder for downloaded data sets."""
    return os.path.expanduser(os.environ.get("GRAPHC_HOME") or os.path.join("~", ".graphc"))


def default_cache_dir() -> str | None:
    """The disk cache for compiled code (None when ``GRAPHC_CACHE_DIR=off``)."""
    value = os.environ.get("GRAPHC_CACHE_DIR")
    if value is not None and value.strip().lower() in ("off", "0", "none", ""):
        return None
    if value:
        return os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.expanduser(os.path.join(base, "graphc"))


DEFAULT_CACHE_MAX_MB = 1024


def cache_max_bytes() -> int:
    """The size the disk cache is trimmed to (``GRAPHC_CACHE_MAX_MB``, default 1024 MB);
    the entries used longest ago go first."""
    value = os.environ.get("GRAPHC_CACHE_MAX_MB", "").strip()
    try:
        mb = float(value) if value else DEFAULT_CACHE_MAX_MB
    except ValueError:
        mb = DEFAULT_CACHE_MAX_MB
    return max(0, int(mb * 1024 * 1024))


def ptx_compiler() -> str:
    """``GRAPHC_PTX_COMPILER``, lower case (``llvm`` when unset)."""
    return os.environ.get("GRAPHC_PTX_COMPILER", "").strip().lower() or "llvm"


def cuda_search_paths() -> tuple[str | None, list[str]]:
    """``GRAPHC_LIBNVVM`` (or None), and the CUDA toolkit folders to look in:
    ``CUDA_HOME``, ``CUDA_PATH``."""
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    return os.environ.get("GRAPHC_LIBNVVM") or None, [r for r in roots if r]


def profile_enabled() -> bool:
    """True when ``GRAPHC_PROFILE`` asks for every native function to time its kernels."""
    return os.environ.get("GRAPHC_PROFILE", "") not in ("", "0")


def dump_enabled() -> bool:
    """True when ``GRAPHC_DUMP_DIR`` asks for compile stages to be written."""
    return bool(os.environ.get("GRAPHC_DUMP_DIR"))


def dump(name: str, stage: str, text: str) -> None:
    """Write one stage of a compiled function to ``$GRAPHC_DUMP_DIR/<name>.<stage>`` if set."""
    folder = os.environ.get("GRAPHC_DUMP_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.{stage}"), "w") as f:
        f.write(text)


@contextmanager
def stage_timer(name: str, stage: str) -> Iterator[None]:
    """Print the duration of a compile stage when ``GRAPHC_TIMINGS`` is set."""
    if not os.environ.get("GRAPHC_TIMINGS"):
        yield
        return
    t0 = time.perf_counter()
    yield
    print(f"[graphc] {name}: {stage} {1e3 * (time.perf_counter() - t0):.1f} ms", file=sys.stderr)
