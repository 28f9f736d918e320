"""A persistent thread pool in LLVM IR, for the runtime library's threaded GEMM (Linux only).

Creating a thread per product cost more than it saved: ``pthread_create`` plus the page
faults of a fresh stack (the GEMM packs about 650 KB on it) came to 100-300 us per call on
the 2-vCPU VMs, so a 128x512x256 product ran slower on two threads than on one. The pool's
workers are made once per process, keep their stacks, and wait for work by spinning for
about 0.1 ms (so back-to-back calls hand over in well under a microsecond) and then
sleeping on a futex.

``void graphc_pool_run(i64 n, void (*task)(i8*), i8* args, i64 stride)`` runs
``task(args + t * stride)`` for ``t`` in ``[0, n)``: ``t = 0`` on the caller, the others on
workers 1..n-1, and returns when all are done. It never blocks on another caller: if the
pool is busy (two Python threads calling compiled code at once: ctypes releases the GIL), or
a worker cannot be made, the tasks run on the caller. A forked child has none of its parent's
workers: the pool remembers the process id that made them and starts afresh in another
(``pthread_atfork`` is not a symbol glibc exports).

Each worker's slot is one cache line of i32 words: ``seq`` (bumped by the caller per job, the
worker's futex), ``done`` (set to ``seq`` by the worker, the caller's futex), two flags
saying who is asleep, so that a futex wake is a system call only when someone sleeps, and
``claim``. The flag and the word it guards are written and read sequentially consistent (the
Dekker pattern): either the waker sees the flag or the sleeper sees the new word.

A worker's task goes to whoever claims it first: the worker when it wakes, or the caller once
its own task is done. A worker that is asleep, or whose vCPU the hypervisor has taken away,
so costs the caller no more than running the task itself; the caller waits only for a task
a worker has started. ``claim`` holds the last job whose task was claimed: claiming job ``s``
moves it from an older job to ``s`` (compare-and-swap), and a worker that wakes late, for a
job whose task the caller ran, finds it at ``s`` or newer and skips it.
"""
from __future__ import annotations

import platform
import sys

from llvmlite import ir

from graphc.lower.irutil import I8P, I32, I64, const_i64, for_range

MAX_WORKERS = 63
SPIN = 4096  # pause iterations before sleeping: about 0.1 ms
#: a spinning thread yields its CPU every this many pauses (see wait_until_changed)
YIELD_EVERY = 64
SEQ, DONE, WORKER_ASLEEP, CALLER_ASLEEP, CLAIM = 0, 1, 2, 3, 4
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
TASK = ir.FunctionType(ir.VoidType(), [I8P])
RUN = ir.FunctionType(ir.VoidType(), [I64, TASK.as_pointer(), I8P, I64])
NAME = "graphc_pool_run"


def available() -> bool:
    """The pool needs Linux futexes; elsewhere the threaded GEMM makes a thread per call."""
    return sys.platform.startswith("linux") and platform.machine() in _SYS_FUTEX


def _i32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _global(module: ir.Module, name: str, ty: ir.Type) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, ty, name)
    g.linkage = "internal"
    g.initializer = ir.Constant(ty, None)
    g.align = 64
    return g


class _Pool:
    """The pool's globals and the libc functions it calls, in one module."""

    def __init__(self, module: ir.Module):
        self.module = module
        slot_ty = ir.ArrayType(I32, 16)  # one 64-byte line per worker
        self.slots = _global(module, "graphc_pool_slots", ir.ArrayType(slot_ty, MAX_WORKERS + 1))
        self.tasks = _global(module, "graphc_pool_tasks", ir.ArrayType(TASK.as_pointer(), MAX_WORKERS + 1))
        self.args = _global(module, "graphc_pool_args", ir.ArrayType(I8P, MAX_WORKERS + 1))
        self.busy = _global(module, "graphc_pool_busy", I32)
        self.started = _global(module, "graphc_pool_started", I64)
        self.pid = _global(module, "graphc_pool_pid", I32)

        def libc(name: str, ret: ir.Type, args: list, var_arg: bool = False) -> ir.Function:
            return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args, var_arg=var_arg), name)
        self.syscall = libc("syscall", I64, [I64], var_arg=True)
        worker_ty = ir.FunctionType(I8P, [I8P])
        self.create = libc("pthread_create", I32, [I64.as_pointer(), I8P, worker_ty.as_pointer(), I8P])
        self.detach = libc("pthread_detach", I32, [I64])
        self.sigmask = libc("pthread_sigmask", I32, [I32, I8P, I8P])
        self.getpid = libc("getpid", I32, [])
        self.sched_yield = libc("sched_yield", I32, [])
        self.nr_futex = _SYS_FUTEX.get(platform.machine(), 202)
        self.x86 = platform.machine() == "x86_64"

    def word(self, b: ir.IRBuilder, t: ir.Value, field: int) -> ir.Value:
        return b.gep(self.slots, [_i32(0), t, _i32(field)], inbounds=True)

    def pause(self, b: ir.IRBuilder) -> None:
        if self.x86:  # tells the core (and its SMT sibling) that this is a spin loop
            pause = self.module.globals.get("llvm.x86.sse2.pause") or ir.Function(
                self.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            b.call(pause, [])

    def futex(self, b: ir.IRBuilder, addr: ir.Value, op: int, val: ir.Value) -> None:
        # variadic: every argument as a full register (the kernel reads the low 32 bits)
        b.call(self.syscall, [const_i64(self.nr_futex), addr, const_i64(op), b.zext(val, I64),
                              ir.Constant(I8P, None)])

    def wait_until_changed(self, b: ir.IRBuilder, fn: ir.Function, word: ir.Value, asleep: ir.Value,
                           old: ir.Value) -> ir.Value:
        """Spin, then sleep, until ``*word != old``; returns the new value (acquire)."""
        head = fn.append_basic_block("wait.head")
        spin = fn.append_basic_block("wait.spin")
        sleep = fn.append_basic_block("wait.sleep")
        out = fn.append_basic_block("wait.out")
        with b.goto_entry_block():
            b.position_at_start(fn.entry_basic_block)
            count = b.alloca(I64)
        b.store(const_i64(0), count)
        b.branch(head)
        b.position_at_end(head)
        v = b.load_atomic(word, "acquire", 4)
        changed = b.icmp_unsigned("!=", v, old)
        b.cbranch(changed, out, spin)
        b.position_at_end(spin)
        n = b.load(count)
        b.store(b.add(n, const_i64(1)), count)
        # Every YIELD_EVERY pauses, give the CPU to whatever else wants it. When the caller
        # and a worker share one CPU (the scheduler put them there, or the hypervisor took
        # the other vCPU away) a thread spinning for the other held it up for whole time
        # slices: the small MLP step took 130 us instead of 80 us pinned to one CPU. On an
        # idle CPU sched_yield returns at once.
        yield_now = b.icmp_unsigned("==", b.and_(n, const_i64(YIELD_EVERY - 1)), const_i64(YIELD_EVERY - 1))
        with b.if_else(yield_now) as (give, keep):
            with give:
                b.call(self.sched_yield, [])
            with keep:
                self.pause(b)
        b.cbranch(b.icmp_signed("<", n, const_i64(SPIN)), head, sleep)
        b.position_at_end(sleep)
        b.store_atomic(_i32(1), asleep, "seq_cst", 4)
        again = b.load_atomic(word, "seq_cst", 4)
        with b.if_then(b.icmp_unsigned("==", again, old)):
            self.futex(b, word, FUTEX_WAIT_PRIVATE, old)  # returns at once if *word != old
        b.store_atomic(_i32(0), asleep, "seq_cst", 4)
        b.store(const_i64(0), count)
        b.branch(head)
        b.position_at_end(out)
        return v

    def claim(self, b: ir.IRBuilder, fn: ir.Function, t: ir.Value, seq: ir.Value) -> ir.Value:
        """Claim worker ``t``'s task of job ``seq``: true for the first to ask (acq_rel)."""
        word = self.word(b, t, CLAIM)
        pre = b.block
        head = fn.append_basic_block("claim.head")
        swap = fn.append_basic_block("claim.swap")
        out = fn.append_basic_block("claim.out")
        first = b.load_atomic(word, "acquire", 4)
        b.branch(head)
        b.position_at_end(head)
        cur = b.phi(I32)
        cur.add_incoming(first, pre)
        # claimed already when the word holds this job or a newer one (wrapping i32 order)
        older = b.icmp_signed(">", b.sub(seq, cur), _i32(0))
        b.cbranch(older, swap, out)
        b.position_at_end(swap)
        got = b.cmpxchg(word, cur, seq, "acq_rel", "acquire")
        won = b.extract_value(got, 1)
        cur.add_incoming(b.extract_value(got, 0), swap)
        b.cbranch(won, out, head)
        b.position_at_end(out)
        result = b.phi(ir.IntType(1))
        result.add_incoming(ir.Constant(ir.IntType(1), 0), head)
        result.add_incoming(ir.Constant(ir.IntType(1), 1), swap)
        return result

    def publish(self, b: ir.IRBuilder, word: ir.Value, asleep: ir.Value, value: ir.Value) -> None:
        """``*word = value`` and wake whoever sleeps on it."""
        b.store_atomic(value, word, "seq_cst", 4)
        with b.if_then(b.icmp_unsigned("!=", b.load_atomic(asleep, "seq_cst", 4), _i32(0))):
            self.futex(b, word, FUTEX_WAKE_PRIVATE, _i32(1))


def _worker(pool: _Pool) -> ir.Function:
    module = pool.module
    fn = ir.Function(module, ir.FunctionType(I8P, [I8P]), "graphc_pool_worker")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    # Signals go to Python's main thread, never to a worker.
    mask = b.alloca(ir.ArrayType(I64, 16))
    for i in range(16):
        b.store(const_i64(-1), b.gep(mask, [_i32(0), _i32(i)], inbounds=True))
    b.call(pool.sigmask, [_i32(0), b.bitcast(mask, I8P), ir.Constant(I8P, None)])  # SIG_BLOCK
    t = b.trunc(b.ptrtoint(fn.args[0], I64), I32)
    last = b.alloca(I32)
    b.store(_i32(0), last)
    loop = fn.append_basic_block("loop")
    b.branch(loop)
    b.position_at_end(loop)
    seq = pool.wait_until_changed(b, fn, pool.word(b, t, SEQ), pool.word(b, t, WORKER_ASLEEP), b.load(last))
    b.store(seq, last)
    with b.if_then(pool.claim(b, fn, t, seq)):  # else the caller ran it: nothing to read
        task = b.load(b.gep(pool.tasks, [_i32(0), t], inbounds=True))
        arg = b.load(b.gep(pool.args, [_i32(0), t], inbounds=True))
        b.call(task, [arg])
    pool.publish(b, pool.word(b, t, DONE), pool.word(b, t, CALLER_ASLEEP), seq)
    b.branch(loop)
    return fn


def pool_run_function(module: ir.Module, define: bool = False) -> ir.Function:
    """``graphc_pool_run`` in ``module``: declared, to be linked from the runtime library
    (graphc/lower/runtime_library.py, which is never unloaded), or, with ``define``, defined
    with the pool itself. Only the runtime library defines it: a worker waits inside the
    pool's code, so that code must outlive every worker, i.e. the process."""
    fn = module.globals.get(NAME)
    if fn is not None:
        return fn
    if not define:
        return ir.Function(module, RUN, NAME)
    pool = _Pool(module)
    worker = _worker(pool)
    fn = ir.Function(module, RUN, NAME)
    fn.linkage = "internal"
    n, task, args, stride = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tid = b.alloca(I64)

    def task_arg(t: ir.Value) -> ir.Value:
        return b.gep(args, [b.mul(t, stride)])

    def inline(start: ir.Value) -> None:
        with for_range(b, b.sub(n, start), "inline") as i:
            b.call(task, [task_arg(b.add(start, i))])

    got = b.cmpxchg(pool.busy, _i32(0), _i32(1), "acquire", "monotonic")
    free = b.extract_value(got, 1)
    use_pool = b.and_(free, b.icmp_signed(">", n, const_i64(1)))
    with b.if_else(use_pool) as (pooled, alone):
        with alone:
            with b.if_then(free):
                b.store_atomic(_i32(0), pool.busy, "release", 4)
            inline(const_i64(0))
        with pooled:
            pid = b.call(pool.getpid, [])
            with b.if_then(b.icmp_unsigned("!=", b.load(pool.pid), pid)):
                # a new process (the first call, or a forked child): no worker exists here
                b.store(ir.Constant(pool.slots.type.pointee, None), pool.slots)
                b.store(const_i64(0), pool.started)
                b.store(pid, pool.pid)
            want = b.select(b.icmp_signed("<", b.sub(n, const_i64(1)), const_i64(MAX_WORKERS)),
                            b.sub(n, const_i64(1)), const_i64(MAX_WORKERS))
            # make the workers still missing (a failure leaves their tasks to this thread)
            grow = fn.append_basic_block("grow")
            made = fn.append_basic_block("made")
            ready = fn.append_basic_block("ready")
            b.branch(grow)
            b.position_at_end(grow)
            have = b.load(pool.started)
            b.cbranch(b.icmp_signed("<", have, want), made, ready)
            b.position_at_end(made)
            index = b.add(have, const_i64(1))
            rc = b.call(pool.create, [tid, ir.Constant(I8P, None), worker, b.inttoptr(index, I8P)])
            ok = b.icmp_signed("==", rc, _i32(0))
            with b.if_then(ok):
                b.call(pool.detach, [b.load(tid)])
                b.store(index, pool.started)
            b.cbranch(ok, grow, ready)
            b.position_at_end(ready)
            have = b.load(pool.started)
            use = b.select(b.icmp_signed("<", have, want), have, want)
            with for_range(b, use, "hand") as i:
                t = b.trunc(b.add(i, const_i64(1)), I32)
                b.store(task, b.gep(pool.tasks, [_i32(0), t], inbounds=True))
                b.store(task_arg(b.add(i, const_i64(1))), b.gep(pool.args, [_i32(0), t], inbounds=True))
                seq = b.add(b.load(pool.word(b, t, SEQ)), _i32(1))  # only this caller writes seq
                seq = b.select(b.icmp_unsigned("==", seq, _i32(0)), _i32(1), seq)  # 0 is "never run"
                pool.publish(b, pool.word(b, t, SEQ), pool.word(b, t, WORKER_ASLEEP), seq)
            b.call(task, [task_arg(const_i64(0))])
            inline(b.add(use, const_i64(1)))
            with for_range(b, use, "join") as i:
                t = b.trunc(b.add(i, const_i64(1)), I32)
                seq = b.load(pool.word(b, t, SEQ))
                done = pool.word(b, t, DONE)
                mine = pool.claim(b, fn, t, seq)  # the worker has not started it: run it here
                run_here = fn.append_basic_block("join.here")
                check = fn.append_basic_block("join.check")
                wait = fn.append_basic_block("join.wait")
                end = fn.append_basic_block("join.end")
                b.cbranch(mine, run_here, check)
                b.position_at_end(run_here)
                b.call(task, [task_arg(b.add(i, const_i64(1)))])
                b.branch(end)
                # the worker runs it: wait until done == seq. done only moves to seq, so
                # "changed from its value when it differs from seq" is waited for until it
                # equals seq
                b.position_at_end(check)
                now = b.load_atomic(done, "acquire", 4)
                b.cbranch(b.icmp_unsigned("==", now, seq), end, wait)
                b.position_at_end(wait)
                pool.wait_until_changed(b, fn, done, pool.word(b, t, CALLER_ASLEEP), now)
                b.branch(check)
                b.position_at_end(end)
            b.store_atomic(_i32(0), pool.busy, "release", 4)
    b.ret_void()
    return fn
