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
        return size_of(self.shape) * ITEMSIZE[self.dtype]

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
             update_targets: list[Node], fold_transposes: bool = True) -> Program:
    """Plan the kernels and buffers computing ``outputs``; the outputs after the first
    ``n_user_outputs`` are new values for ``update_targets`` (written back in place, after
    everything else has read the old values). ``fold_transposes`` lets matmuls read
    transposed operands in place (the CPU GEMM can; the CUDA kernels cannot yet)."""
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
    steps.extend(tail)
    slots = _assign_slots(steps)
    for step in steps:  # each loop body gets workspace of its own, after the program's slots
        if step.body is not None:
            step.slot_base = len(slots)
            slots.extend(step.body.slots)
    return Program(steps, in_bufs, sh_bufs, consts, out_bufs, slots, _symbols(order), buffers)


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
