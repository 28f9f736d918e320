"""The gradient of a loop: backpropagation through time, as another loop.

For a forward SCAN with carries ``c``, sequences ``x`` and invariants ``p``, the backward
SCAN runs the steps in the opposite order with carries

- ``lam[k]``: the gradient with respect to carry ``k`` before the current step (initially the
  cotangent of the final carry, or zero), and
- ``acc[m]``: the gradient with respect to invariant ``m`` summed over the steps done so far,

and sequences: the cotangents of the stacked outputs, the carries *before* each step (the
forward loop's stacked carries, shifted by one), and ``x``. Its body re-runs the forward step
from those carries and takes the vector-Jacobian product of the step with :func:`grad` on
``sum(cotangent * output)``; its per-step outputs are the gradients of ``x``. Memory grows
linearly with the length: the stacked carries and the cotangent sequences.
"""
from __future__ import annotations

from typing import Optional

from graphc.frontend import ops
from graphc.frontend.scan import make_scan, scan_output
from graphc.frontend.variables import placeholder
from graphc.ir import dtypes as dt
from graphc.ir.graph import substitute
from graphc.ir.node import Node, make_node
from graphc.ir.ops import Op
from graphc.ir.scan import ScanBody


def _shifted_carries(stacked: Node, init: Node, reverse: bool) -> Node:
    """The carry before each step, stacked: ``[init, S[0], ..., S[T-2]]`` (mirrored for reverse)."""
    t = stacked.shape[0]
    first = ops.expand_dims(init, 0)
    if reverse:
        return ops.concatenate([ops.slice_axis(stacked, 0, 1, t), first], axis=0)
    return ops.concatenate([first, ops.slice_axis(stacked, 0, 0, t - 1)], axis=0)


def scan_vjp(node: Node, cotangents: dict[int, Node]) -> list[Optional[Node]]:
    """Gradients for the inputs of SCAN ``node`` given the cotangents of its outputs (by index)."""
    a = node.attrs
    body: ScanBody = a["body"]
    nc, ns, ni = len(body.carries), len(body.seqs), len(body.invariants)
    init, xs, inv = node.inputs[:nc], node.inputs[nc:nc + ns], node.inputs[nc + ns:]
    reverse = a["reverse"]
    # The forward loop again, keeping every step's carries (a pass merges it with `node`).
    full = make_node(Op.SCAN, node.inputs, {**dict(a), "keep": (True,) * nc})
    before = [_shifted_carries(scan_output(full, k), init[k], reverse) for k in range(nc)]

    float_c = [k for k in range(nc) if dt.is_float(body.carries[k].dtype)]
    float_x = [j for j in range(ns) if dt.is_float(body.seqs[j].dtype)]
    float_p = [m for m in range(ni) if dt.is_float(body.invariants[m].dtype)]
    seq_cot = [k for k in float_c if a["keep"][k] and k in cotangents]
    y_cot = [l for l in range(len(body.ys)) if nc + l in cotangents]

    # Parameters of the backward body.
    lam = {k: placeholder(body.carries[k].shape, body.carries[k].dtype, f"bptt_lam{k}") for k in float_c}
    acc = {m: placeholder(body.invariants[m].shape, body.invariants[m].dtype, f"bptt_acc{m}") for m in float_p}
    g_s = {k: placeholder(body.carries[k].shape, body.carries[k].dtype, f"bptt_gs{k}") for k in seq_cot}
    g_y = {l: placeholder(body.ys[l].shape, body.ys[l].dtype, f"bptt_gy{l}") for l in y_cot}
    c_in = [placeholder(p.shape, p.dtype, f"bptt_c{k}") for k, p in enumerate(body.carries)]
    x_in = [placeholder(p.shape, p.dtype, f"bptt_x{j}") for j, p in enumerate(body.seqs)]
    p_in = [placeholder(p.shape, p.dtype, f"bptt_p{m}") for m, p in enumerate(body.invariants)]

    step = substitute(body.outputs, dict(zip(body.params, c_in + x_in + p_in)))
    terms = []
    for k in float_c:
        w = lam[k] if k not in g_s else ops.add(lam[k], g_s[k])
        terms.append(ops.sum(ops.multiply(w, step[k])))
    for l in y_cot:
        if dt.is_float(body.ys[l].dtype):
            terms.append(ops.sum(ops.multiply(g_y[l], step[nc + l])))
    wrt = [c_in[k] for k in float_c] + [x_in[j] for j in float_x] + [p_in[m] for m in float_p]
    result: list[Optional[Node]] = [None] * len(node.inputs)
    if not terms or not wrt:
        return result
    from graphc.autodiff.grad import grad  # grad imports this module's caller
    cost = terms[0]
    for t in terms[1:]:
        cost = ops.add(cost, t)
    grads = grad(cost, wrt, disconnected="zero")
    g_c = dict(zip(float_c, grads[:len(float_c)]))
    g_x = dict(zip(float_x, grads[len(float_c):len(float_c) + len(float_x)]))
    g_p = dict(zip(float_p, grads[len(float_c) + len(float_x):]))

    carries = [lam[k] for k in float_c] + [acc[m] for m in float_p]
    new_carries = [g_c[k] for k in float_c] + [ops.add(acc[m], g_p[m]) for m in float_p]
    seqs = [g_s[k] for k in seq_cot] + [g_y[l] for l in y_cot] + c_in + x_in
    back_body = ScanBody(tuple(carries), tuple(seqs), tuple(p_in), tuple(new_carries),
                         tuple(g_x[j] for j in float_x))
    init_back = [cotangents[k] if (k in cotangents and not a["keep"][k]) else ops.zeros_like(init[k])
                 for k in float_c] + [ops.zeros_like(inv[m]) for m in float_p]
    xs_back = [cotangents[k] for k in seq_cot] + [cotangents[nc + l] for l in y_cot] + before + list(xs)
    back = make_scan(back_body, init_back, xs_back, list(inv), a["length"], not reverse)
    for i, k in enumerate(float_c):
        result[k] = scan_output(back, i)
    for i, m in enumerate(float_p):
        result[nc + ns + m] = scan_output(back, len(float_c) + i)
    for i, j in enumerate(float_x):
        result[nc + j] = scan_output(back, len(carries) + i)
    return result
