"""The persistent thread pool (graphc/lower/threadpool.py): every task runs exactly once,
whatever the number of tasks and workers; a busy pool runs on the caller; a forked child
makes workers of its own; and the threaded GEMM gives the same products through it."""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import pytest
from llvmlite import ir

import graphc as gc
from graphc.backend.jit import compile_ir
from graphc.lower import runtime_library, threadpool
from graphc.lower.irutil import I8P, I64, for_range

pytestmark = pytest.mark.skipif(not threadpool.available(), reason="the pool needs Linux futexes")


def _pool_entry(name: str, stride: int, task_body) -> ctypes._CFuncPtr:
    """``name(n, args)``: the runtime library's pool (the only one: workers wait in its code,
    which is never freed) runs ``task(args + t * stride)`` for t < n; ``task_body(b, p)``
    emits the task's body, ``p`` its argument as an i64 pointer."""
    runtime_library.load()
    module = ir.Module(name=f"pool_{name}_test")
    run = threadpool.pool_run_function(module)
    task = ir.Function(module, threadpool.TASK, "task")
    b = ir.IRBuilder(task.append_basic_block("entry"))
    task_body(b, b.bitcast(task.args[0], I64.as_pointer()))
    b.ret_void()
    go = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64, I8P]), name)
    b = ir.IRBuilder(go.append_basic_block("entry"))
    b.call(run, [go.args[0], task, go.args[1], ir.Constant(I64, stride)])
    b.ret_void()
    native = compile_ir(str(module), 2)
    fn = native.cfunc(name, None, ctypes.c_int64, ctypes.c_void_p)
    fn._keep = native
    return fn


@pytest.fixture(scope="module")
def pool_go():
    """``go(n, counters)``: task t adds 1 to counters[t] (an int64 array)."""
    def body(b, p):
        b.store(b.add(b.load(p), ir.Constant(I64, 1)), p)
    return _pool_entry("go", 8, body)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 70])
def test_every_task_runs_once_per_call(pool_go, n):
    counters = np.zeros(max(n, 1), np.int64)
    for _ in range(200):
        pool_go(n, counters.ctypes.data)
    assert counters[:n].tolist() == [200] * n


@pytest.fixture(scope="module")
def pool_who():
    """``who(n, slots)``: task t busies itself for some microseconds (atomic stores into
    slots[2t + 1]: long enough for a spinning worker to claim its task first), adds 1 to
    slots[2t] and stores the thread that ran it (pthread_self) in slots[2t + 1]."""
    def body(b, p):
        self_fn = b.module.globals.get("pthread_self") or ir.Function(b.module, ir.FunctionType(I64, []),
                                                                     "pthread_self")
        scratch = b.gep(p, [ir.Constant(I64, 1)])
        with for_range(b, ir.Constant(I64, 20000), "busy") as i:
            b.store_atomic(i, scratch, "monotonic", 8)
        b.store(b.add(b.load(p), ir.Constant(I64, 1)), p)
        b.store(b.call(self_fn, []), scratch)
    return _pool_entry("who", 16, body)


def test_a_late_worker_task_runs_on_the_caller_once(pool_who):
    """After a pause the worker sleeps on its futex: the caller, done with its own task, claims
    the worker's and runs it (the worker, woken late, skips it). Back to back, the spinning
    worker claims it. Either way every task runs exactly once."""
    import time
    slots = np.zeros(4, np.int64)
    ran_here = 0
    for i in range(30):
        time.sleep(0.002)  # longer than the workers spin
        pool_who(2, slots.ctypes.data)
        ran_here += int(slots[1] == slots[3])
        assert slots[0::2].tolist() == [i + 1, i + 1]
    assert ran_here > 0, ran_here  # the claim path was taken
    ran_there = 0
    for i in range(5000):
        pool_who(2, slots.ctypes.data)
        ran_there += int(slots[1] != slots[3])
    assert slots[0::2].tolist() == [5030, 5030]
    if (os.cpu_count() or 1) >= 2:
        assert ran_there > 0, ran_there  # and the worker ran some


def test_callers_on_several_threads_share_the_pool(pool_go):
    """ctypes releases the GIL: a caller that finds the pool busy runs its tasks itself."""
    counters = [np.zeros(4, np.int64) for _ in range(4)]

    def hammer(c):
        for _ in range(300):
            pool_go(4, c.ctypes.data)
    threads = [threading.Thread(target=hammer, args=(c,)) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c.tolist() == [300] * 4 for c in counters)


def test_forked_child_makes_its_own_workers(pool_go):
    counters = np.zeros(3, np.int64)
    pool_go(3, counters.ctypes.data)  # the parent's workers exist now
    pid = os.fork()
    if pid == 0:  # the child: its parent's workers are not here
        try:
            child = np.zeros(3, np.int64)
            for _ in range(50):
                pool_go(3, child.ctypes.data)
            os._exit(0 if child.tolist() == [50, 50, 50] else 1)
        except BaseException:  # noqa: BLE001 - never return into pytest in the child
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    pool_go(3, counters.ctypes.data)  # and the parent's pool still works
    assert counters.tolist() == [2, 2, 2]


def test_threaded_matmul_through_the_pool_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 300)).astype("float32")
    b = rng.standard_normal((300, 263)).astype("float32")
    x, y = gc.placeholder((None, 300), "float32"), gc.placeholder((300, 263), "float32")
    f = gc.function([x, y], x @ y, options=gc.CompileOptions(threads=3))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for _ in range(20):
        assert np.allclose(f(a, b), ref, rtol=1e-4, atol=1e-3)


def test_only_the_runtime_library_defines_the_pool():
    """A worker waits in the pool's code: a module that can be freed (a compiled function)
    only declares it."""
    from graphc.lower.gemm import gemm_parallel_function
    module = ir.Module(name="uses_pool")
    gemm_parallel_function(module, "float32")
    text = str(module)
    assert f'declare void @"{threadpool.NAME}"' in text and "graphc_pool_worker" not in text
    assert threadpool.NAME in runtime_library.exported_names()
