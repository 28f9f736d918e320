"""Compiling one program on several cores.

llvmlite serialises every LLVM call behind one lock, so threads cannot compile in parallel.
Instead the kernels are split into parts (``emit_module(..., part=(i, n))``): this process
emits and compiles part 0 (with the entry functions) while forked children emit and compile
the others and send back their object code; the parts are then linked into one JIT engine.
A child that fails, crashes or takes too long costs only time: its part is compiled here.
Forking is used only where it is safe: Linux (macOS system frameworks do not survive a fork),
more than one core, and no other Python thread (a lock another thread holds would stay
locked in the child; a Jupyter kernel, for one, has threads, so it compiles in one process).
"""
from __future__ import annotations

import os
import select
import sys
import threading
from typing import Callable

from graphc.backend.jit import jit_object

CHILD_TIMEOUT_S = 120.0
MIN_KERNELS = 12  # below this the fork costs more than it saves


def jobs_for(requested: int | None, n_kernels: int) -> int:
    """How many processes to compile with (1: this one only)."""
    if requested is not None:
        return max(1, int(requested)) if _can_fork() else 1
    if n_kernels < MIN_KERNELS or not _can_fork():
        return 1
    return min(2, os.cpu_count() or 1)


def _can_fork() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and (os.cpu_count() or 1) > 1
            and threading.active_count() == 1)


def compile_parts(make_ir: Callable[[int], str], jobs: int, opt_level: int) -> list[bytes]:
    """Object code of parts ``0..jobs-1``; ``make_ir(i)`` is the LLVM IR of part i."""
    children = [_fork(make_ir, i, opt_level) for i in range(1, jobs)]
    blobs = [jit_object(make_ir(0), opt_level)]
    for i, child in enumerate(children, start=1):
        blob = _collect(child) if child is not None else None
        blobs.append(blob if blob is not None else jit_object(make_ir(i), opt_level))
    return blobs


def _fork(make_ir: Callable[[int], str], part: int, opt_level: int):
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: compile, send, and leave without running any exit handler
        status = 1
        try:
            os.close(read_end)
            blob = jit_object(make_ir(part), opt_level)
            data = len(blob).to_bytes(8, "little") + blob
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _collect(child) -> bytes | None:
    """The child's object code, or None (and the child reaped) if it failed or timed out."""
    pid, fd = child
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], CHILD_TIMEOUT_S)
            if not ready:
                os.kill(pid, 9)
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if status != 0 or len(data) < 8 or int.from_bytes(data[:8], "little") != len(data) - 8:
        return None
    return data[8:]
