"""Scheduling: an optimised graph becomes a Program, kernels in order plus a buffer plan.

Every value lives in a buffer. Inputs, shared variables, constants and outputs are buffers
the caller passes in; intermediates live in one workspace, where buffers whose lifetimes do
not overlap share a slot (a slot is reused only by a buffer of the same symbolic size).
A reshape is a view: it aliases its input's buffer. So is a transpose of the last two axes
whose only readers are matmuls (on the CPU): the GEMM reads the source with swapped strides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import sympy

from graphc.ir.graph import toposort
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import RNG_STEP, Dim, size_of

ITEMSIZE = {"bool": 1, "int32": 4, "int64": 8, "float32": 4, "float64": 8}


@dataclass(eq=False)
class Buffer:
    """Where one value lives. ``kind`` is input/shared/const/output (an argument of the
    entry function, at ``index`` among its kind) or workspace (at ``slot``)."""

    kind: str
    dtype: str
    shape: tuple[Dim, ...]
    index: int = -1
    slot: int = -1
    alias_of: Optional["Buffer"] = None
    transposed: bool = False  # a view of alias_of with its last two axes swapped (matmul operands only)

    @property
    def nbytes(self) -> Dim:
        # computed once: a sympy product per call was most of the slot assignment's time
        cached = self.__dict__.get("_nbytes")
        if cached is None:
            cached = self.__dict__["_nbytes"] = size_of(self.shape) * ITEMSIZE[self.dtype]
        return cached

    def root(self) -> "Buffer":
        return self.alias_of.root() if self.alias_of is not None else self


@dataclass(eq=False)
class Step:
    """One kernel: compute ``node`` into ``out`` from ``ins`` (or copy, for kind "copy").

    A loop (kind "scan") runs ``body``, a Program of its own, once per step. It writes all
    its outputs (``out`` and ``extra_outs``, in SCAN_OUTPUT order) and uses ``temps`` (the
    second buffer of each carry kept as its final value only) while it runs; the body's
    workspace slots start at ``slot_base`` in the enclosing program's workspace."""

    node: Optional[Node]
    out: Buffer
    ins: list[Buffer]
    kind: str = "node"  # "node", "copy" or "scan"
    extra_outs: list[Buffer] = field(default_factory=list)
    temps: list[Buffer] = field(default_factory=list)
    body: Optional["Program"] = None
    slot_base: int = 0
    in_place: bool = False  # an elementwise update writing the shared variable it reads
    # a matmul that adds ``sign * factor * product`` to its output (a shared variable): factor
    # is the constant, or (None) the one element of ins[2]; see _fold_update_into_matmul
    accumulate: Optional[tuple[float, Optional[float]]] = None

    @property
    def outs(self) -> list[Buffer]:
        return [self.out] + self.extra_outs


@dataclass
class Program:
    """Kernels in order and the buffer plan; the input to code emission."""

    steps: list[Step]
    inputs: list[Buffer]
    shared: list[Buffer]
    consts: list[tuple[Buffer, np.ndarray]]
    outputs: list[Buffer]
    slots: list[Dim]  # byte size of each workspace slot
    symbols: list[sympy.Symbol]
    buffers: dict[int, Buffer] = field(default_factory=dict)  # id(node) -> buffer


def _symbols(nodes: list[Node]) -> list[sympy.Symbol]:
    syms: set = {RNG_STEP}
    for n in nodes:
        if n.op is Op.SCAN:  # a loop body shares the enclosing program's symbols
            syms |= set(_symbols(toposort(n.attrs["body"].outputs)))
        for d in n.shape:
            if isinstance(d, sympy.Expr):
                syms |= d.free_symbols
        for v in n.attrs.values():
            if isinstance(v, sympy.Expr):
                syms |= v.free_symbols
            elif isinstance(v, tuple):
                for d in v:
                    if isinstance(d, sympy.Expr):
                        syms |= d.free_symbols
    return sorted(syms, key=lambda s: s.name)


def _folds_into_matmul(node: Node, readers: dict[int, list[Node]], kept: set[int]) -> bool:
    """A transpose of the last two axes that only matmuls read (as operands) need not be
    materialised: the GEMM reads its source in place with swapped strides."""
    if node.op is not Op.TRANSPOSE or id(node) in kept or node.ndim < 2:
        return False
    perm = node.attrs["perm"]
    n = node.ndim
    if tuple(perm) != tuple(range(n - 2)) + (n - 1, n - 2):
        return False
    users = readers.get(id(node), [])
    return bool(users) and all(u.op is Op.MATMUL for u in users)


def schedule(outputs: list[Node], inputs: list[Node], shared: list[Node], n_user_outputs: int,
             update_targets: list[Node], fold_transposes: bool = True, in_place: bool = True) -> Program:
    """Plan the kernels and buffers computing ``outputs``; the outputs after the first
    ``n_user_outputs`` are new values for ``update_targets`` (written back in place, after
    everything else has read the old values). ``fold_transposes`` lets matmuls read
    transposed operands in place (the CPU GEMM can; the CUDA kernels cannot yet).
    ``in_place`` lets an elementwise update (``w - lr * g``) write its shared variable
    directly, instead of a temporary that is then copied (see _update_in_place)."""
    order = toposort(outputs)
    readers: dict[int, list[Node]] = {}
    for n in order:
        for i in n.inputs:
            readers.setdefault(id(i), []).append(n)
    kept = {id(o) for o in outputs}  # values leaving the program are materialised
    buffers: dict[int, Buffer] = {}
    in_bufs = [Buffer("input", x.dtype, x.shape, index=i) for i, x in enumerate(inputs)]
    sh_bufs = [Buffer("shared", x.dtype, x.shape, index=i) for i, x in enumerate(shared)]
    for x, b in zip(inputs, in_bufs):
        buffers[id(x)] = b
    for x, b in zip(shared, sh_bufs):
        buffers[id(x)] = b
    user_outs = outputs[:n_user_outputs]
    out_bufs = [Buffer("output", o.dtype, o.shape, index=i) for i, o in enumerate(user_outs)]
    direct: dict[int, Buffer] = {}
    for o, b in zip(user_outs, out_bufs):
        if o.op not in (Op.PLACEHOLDER, Op.SHARED, Op.CONSTANT, Op.RESHAPE) and id(o) not in direct:
            direct[id(o)] = b
    # A loop writes its outputs straight into the user's output buffers where it can.
    direct_scan = {(id(o.inputs[0]), o.attrs["index"]): direct[id(o)] for o in user_outs
                   if o.op is Op.SCAN_OUTPUT and direct.get(id(o)) is not None}
    scan_outs: dict[int, list[Buffer]] = {}

    consts: list[tuple[Buffer, np.ndarray]] = []
    steps: list[Step] = []
    for node in order:
        if id(node) in buffers:
            continue
        if node.op is Op.CONSTANT:
            b = Buffer("const", node.dtype, node.shape, index=len(consts))
            consts.append((b, node.attrs["value"].array))
        elif node.op is Op.RESHAPE:
            src = buffers[id(node.inputs[0])]
            b = Buffer(src.root().kind, node.dtype, node.shape, index=src.root().index, alias_of=src)
        elif fold_transposes and _folds_into_matmul(node, readers, kept):
            src = buffers[id(node.inputs[0])]
            b = Buffer(src.root().kind, node.dtype, node.shape, index=src.root().index, alias_of=src,
                       transposed=True)
        elif node.op is Op.SCAN:
            step = _loop_step(node, [buffers[id(i)] for i in node.inputs], direct_scan, consts, fold_transposes)
            scan_outs[id(node)] = step.outs
            steps.append(step)
            continue
        elif node.op is Op.SCAN_OUTPUT:
            b = scan_outs[id(node.inputs[0])][node.attrs["index"]]
        else:
            b = direct.get(id(node)) or Buffer("workspace", node.dtype, node.shape)
            steps.append(Step(node, b, [buffers[id(i)] for i in node.inputs]))
        buffers[id(node)] = b

    # Outputs not computed straight into their argument, then updates: copies at the end.
    tail: list[Step] = []
    for o, b in zip(user_outs, out_bufs):
        if direct.get(id(o)) is not b:
            tail.append(Step(None, b, [buffers[id(o)]], kind="copy"))
    for target, value in zip(update_targets, outputs[n_user_outputs:]):
        src = buffers[id(value)]
        dst = buffers[id(target)]
        if src.root() is dst:
            continue
        if src.root().kind != "workspace":
            # Snapshot before any update is written: the source may itself be updated.
            tmp = Buffer("workspace", value.dtype, value.shape)
            steps.append(Step(None, tmp, [src], kind="copy"))
            src = tmp
        tail.append(Step(None, dst, [src], kind="copy"))
    if in_place:
        _update_in_place(steps, tail)
    steps.extend(tail)
    slots = _assign_slots(steps)
    for step in steps:  # each loop body gets workspace of its own, after the program's slots
        if step.body is not None:
            step.slot_base = len(slots)
            slots.extend(step.body.slots)
    return Program(steps, in_bufs, sh_bufs, consts, out_bufs, slots, _symbols(order), buffers)


def _update_in_place(steps: list[Step], tail: list[Step]) -> None:
    """Let updates' kernels write their shared variables instead of temporaries.

    An update ``w <- f(w, ...)`` computed by an elementwise kernel P can write ``w`` directly
    if P runs after every other reader of the old ``w`` and before every reader of its result
    (whose value is then in ``w``). Such kernels move to the end, in an order that respects
    both; they must read ``w`` at the index they write (an elementwise kernel then overwrites
    each element after reading it), no final copy may read ``w`` (a shared variable returned
    as an output is its old value), and P's result may be read only by its copy and by other
    moved kernels (Adam's ``p - lr * m_new / ...`` reads ``m_new``, itself written into ``m``).
    A candidate in a cycle of those constraints keeps its copy. Saves a copy of every weight
    (and of every optimizer slot) per step."""
    producer = {id(s.out): s for s in steps if s.kind == "node"}
    read_by_tail = {id(b.root()) for c in tail for b in c.ins}
    readers: dict[int, list[Step]] = {}
    for s in steps + tail:
        for b in s.ins:
            readers.setdefault(id(b), []).append(s)
    cands: dict[int, tuple[Step, Step]] = {}  # id(update step) -> (its copy, the step)
    for copy in tail:
        dst, src = copy.out, copy.ins[0]
        step = producer.get(id(src))
        if (dst.kind != "shared" or step is None or src.alias_of is not None or id(dst) in read_by_tail
                or not _elementwise(step.node) or id(step) in cands):
            continue
        if any(b.root() is dst and (b.transposed or tuple(b.shape) != tuple(step.out.shape)) for b in step.ins):
            continue  # w read broadcast or through a view: not at the index written
        cands[id(step)] = (copy, step)
    order = _in_place_order(cands, readers)
    for step in order:
        copy = cands[id(step)][0]
        src, dst = step.out, copy.out
        for later in order:  # readers of the result read it from the variable now
            later.ins = [dst if b is src else b for b in later.ins]
        step.out, step.in_place = dst, True
        tail.remove(copy)
        steps.remove(step)
    targets = {id(c.out) for c in tail if c.out.kind == "shared"} | {id(s.out) for s in order}
    moved = []
    for step in order:
        product = _fold_update_into_matmul(step, producer, {k: len(v) for k, v in readers.items()}, targets)
        if product is not None:  # the matmul now writes the update; the elementwise kernel goes
            steps.remove(product)
            step = product
        moved.append(step)
    steps.extend(moved)


def _in_place_order(cands: dict[int, tuple[Step, Step]], readers: dict[int, list[Step]]) -> list[Step]:
    """The candidates that can run in place, in an order where each runs after the readers of
    its variable's old value and before the readers of its result (see _update_in_place)."""
    live = dict(cands)
    while True:
        # a result read by a kernel that stays where it is (or a second copy) rules P out
        for key, (copy, step) in list(live.items()):
            if any(r is not copy and id(r) not in live for r in readers.get(id(step.out), [])):
                del live[key]
        after: dict[int, set[int]] = {k: set() for k in live}  # key -> keys that must run after it
        for key, (copy, step) in live.items():
            var = copy.out
            for other, (_, q) in live.items():
                if other == key:
                    continue
                if any(b.root() is var for b in q.ins):
                    after[other].add(key)  # q reads the old variable: q first
                if any(b is step.out for b in q.ins):
                    after[key].add(other)  # q reads the result: step first
        order, state = [], {}

        def visit(k: int) -> bool:  # depth-first topological sort; False on a cycle
            if state.get(k) == 1:
                return False
            if state.get(k) == 2:
                return True
            state[k] = 1
            if not all(visit(n) for n in after[k]):
                return False
            state[k] = 2
            order.append(k)
            return True
        cyclic = next((k for k in live if not visit(k)), None)
        if cyclic is None:
            return [live[k][1] for k in reversed(order)]
        del live[cyclic]  # keeps its copy; try again without it


def _fold_update_into_matmul(step: Step, producer: dict, readers: dict, targets: set) -> Optional[Step]:
    """An in-place update ``w - c * (A @ B)`` (or ``w + c * (A @ B)``, ``w - A @ B``, c a
    constant or a one-element buffer) whose product only it reads becomes the matmul itself,
    accumulating into ``w``: ``w = -c * A @ B + 1 * w`` in the GEMM's write-back. Plain SGD
    then never writes the gradient of a weight matrix to memory. Returns the matmul step, or
    None when the pattern does not match."""
    node = step.node
    if node.op is not Op.FUSED or node.dtype not in ("float32", "float64"):
        return None
    expr, ins, dst = node.attrs["expr"], step.ins, step.out

    def is_w(e) -> bool:
        return e[0] == "in" and ins[e[1]].root() is dst

    def product_and_factor(e):
        """(matmul step, factor) for ``M``, ``c * M`` or ``M * c``; None otherwise."""
        if e[0] == "in":
            return producer.get(id(ins[e[1]])), (1.0, None)
        if e[0] != "op" or e[1] is not Op.MUL:
            return None
        for m_e, c_e in (e[2], e[2][::-1]):
            if m_e[0] != "in":
                continue
            if c_e[0] == "const":
                return producer.get(id(ins[m_e[1]])), (float(c_e[1]), None)
            if c_e[0] == "in":
                buf = ins[c_e[1]]
                if all(d == 1 for d in buf.shape) and buf.dtype == node.dtype and buf.root() is not dst \
                        and id(buf.root()) not in targets:
                    return producer.get(id(ins[m_e[1]])), (1.0, buf)
        return None

    if expr[0] != "op" or expr[1] not in (Op.SUB, Op.ADD) or len(expr[2]) != 2:
        return None
    left, right = expr[2]
    if is_w(left):
        other, sign = right, (-1.0 if expr[1] is Op.SUB else 1.0)
    elif is_w(right) and expr[1] is Op.ADD:
        other, sign = left, 1.0
    else:
        return None
    found = product_and_factor(other)
    if found is None or found[0] is None:
        return None
    mm, (scale, factor_buf) = found
    if (mm.node.op is not Op.MATMUL or mm.node.dtype != node.dtype or mm.node.ndim != 2
            or mm.out.alias_of is not None or readers.get(id(mm.out)) != 1
            or tuple(mm.out.shape) != tuple(dst.shape)
            or any(b.root() is dst or id(b.root()) in targets for b in mm.ins)):
        return None
    mm.out = dst
    if factor_buf is None:
        mm.accumulate = (sign, scale)
    else:
        mm.accumulate = (sign, None)
        mm.ins = mm.ins + [factor_buf]
    return mm


def _elementwise(node: Node) -> bool:
    from graphc.ir.ops import ELEMENTWISE
    if node.op is Op.FUSED:
        return node.attrs.get("reduce_axes") is None
    return node.op in ELEMENTWISE


def _loop_step(node: Node, ins: list[Buffer], direct_scan: dict, consts: list, fold_transposes: bool) -> Step:
    """The step of a SCAN node: its output buffers and its body, scheduled as a program whose
    inputs are the body's parameters and whose outputs are the body's outputs (the emitter
    points them at the right rows on each step). The body's constants join ``consts``."""
    from graphc.ir.scan import output_type
    a = node.attrs
    body = a["body"]
    outs = []
    for i in range(len(body.outputs)):
        shape, dtype = output_type(a, i)
        outs.append(direct_scan.get((id(node), i)) or Buffer("workspace", dtype, shape))
    temps = [Buffer("workspace", c.dtype, c.shape) for c, keep in zip(body.carries, a["keep"]) if not keep]
    program = schedule(list(body.outputs), list(body.params), [], len(body.outputs), [], fold_transposes)
    for buf, value in program.consts:
        buf.index = len(consts)
        consts.append((buf, value))
    program.consts = []
    return Step(node, outs[0], ins, kind="scan", extra_outs=outs[1:], temps=temps, body=program)


def _assign_slots(steps: list[Step]) -> list[Dim]:
    """Give each workspace buffer a slot; a slot is reused after its last reader ran."""
    last_use: dict[int, int] = {}
    tail_start = next((i for i, s in enumerate(steps) if s.kind == "copy" and s.out.kind != "workspace"), len(steps))
    for i, step in enumerate(steps):
        for b in step.ins:
            last_use[id(b.root())] = i
    slots: list[Dim] = []
    free: dict[object, list[int]] = {}
    for i, step in enumerate(steps):
        for out in step.outs + step.temps:
            if out.kind == "workspace" and out.alias_of is None and out.slot < 0:
                key = out.nbytes
                pool = free.get(key)
                if pool:
                    out.slot = pool.pop()
                else:
                    out.slot = len(slots)
                    slots.append(key)
        for b in {id(x.root()): x.root() for x in step.ins}.values():
            # Values read by the final copies stay live to the end.
            if b.kind == "workspace" and last_use.get(id(b)) == i and i < tail_start and b not in step.outs:
                free.setdefault(b.nbytes, []).append(b.slot)
        for b in step.temps:
            free.setdefault(b.nbytes, []).append(b.slot)
    return slots
