"""``graphc.scan``: loops in the graph (one SCAN node, see :mod:`graphc.ir.scan`).

The step function is traced once, on placeholders standing for the carries and the slices of
the sequences, so a loop over 1000 steps is as small a graph as a loop over 10 and the
sequence length may be symbolic. Anything the step reads from outside (weights, masks) is
captured: every subexpression that does not change from step to step is hoisted out of the
body and computed once, before the loop, as an *invariant* input of the node.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.variables import placeholder
from graphc.ir.graph import substitute, toposort
from graphc.ir.infer import sizes_may_match
from graphc.ir.node import Node, make_node, user_location
from graphc.ir.ops import Op
from graphc.ir.scan import ScanBody
from graphc.ir.shapes import Dim, as_dim, format_shape


def _flatten(tree: Any) -> tuple[list[Node], bool]:
    """A list of tensors from a tensor, a list/tuple of tensors, or None; and whether it was one tensor."""
    if tree is None:
        return [], False
    if isinstance(tree, (list, tuple)):
        return [ops.as_tensor(t) for t in tree], False
    return [ops.as_tensor(tree)], True


def _unflatten(nodes: Sequence[Node], single: bool) -> Any:
    return nodes[0] if single else list(nodes)


def _where() -> str:
    loc = user_location()
    return f"\n  at {loc}" if loc else ""


def hoist_invariants(body: ScanBody, invariant_values: Sequence[Node]) -> tuple[ScanBody, list[Node]]:
    """Move what the body computes identically at every step out of the loop.

    A body node is *variant* if it depends on a carry or a sequence slice. Every non-variant,
    non-constant node that a variant node reads (or that is a body output) becomes a new
    invariant placeholder, and its outer value is the node itself with the invariant
    placeholders replaced by their values. Unused invariants are dropped and equal outer values
    share one placeholder. Returns the new body and its invariant values."""
    outer_of = dict(zip(body.invariants, invariant_values))
    variant = {id(p) for p in body.carries + body.seqs}
    order = toposort(body.outputs)
    for n in order:
        if any(id(i) in variant for i in n.inputs):
            variant.add(id(n))
    # Values built from constants alone stay in the body: they are cheap, and the fusion pass
    # folds them into the expressions that read them.
    const_only: set[int] = set()
    for n in order:
        if n.op is Op.CONSTANT or (n.inputs and all(id(i) in const_only for i in n.inputs)):
            const_only.add(id(n))
    candidates: list[Node] = []
    for n in order:
        if id(n) in variant:
            candidates.extend(i for i in n.inputs if id(i) not in variant)
    candidates.extend(o for o in body.outputs if id(o) not in variant)
    params: dict[int, Node] = {}  # id(outer value) -> placeholder
    mapping: dict[Node, Node] = {}
    new_invariants: list[Node] = []
    values: list[Node] = []
    for c in candidates:
        if c in mapping or id(c) in const_only:
            continue
        (outer,) = substitute([c], outer_of) if outer_of else [c]
        p = params.get(id(outer))
        if p is None:
            p = placeholder(c.shape, c.dtype, name=f"scan_inv{len(values)}")
            params[id(outer)] = p
            new_invariants.append(p)
            values.append(outer)
        mapping[c] = p
    outputs = substitute(body.outputs, mapping) if mapping else list(body.outputs)
    nc = len(body.new_carries)
    return ScanBody(body.carries, body.seqs, tuple(new_invariants), tuple(outputs[:nc]), tuple(outputs[nc:])), values


def make_scan(body: ScanBody, init: Sequence[Node], xs: Sequence[Node], invariants: Sequence[Node],
              length: Dim, reverse: bool = False, keep: Optional[Sequence[bool]] = None) -> Node:
    """The SCAN node running ``body`` (invariants hoisted first, see :func:`hoist_invariants`)."""
    body, values = hoist_invariants(body, invariants)
    keep_ = tuple(bool(k) for k in keep) if keep is not None else (False,) * len(body.carries)
    return make_node(Op.SCAN, tuple(init) + tuple(xs) + tuple(values),
                     {"body": body, "length": as_dim(length), "reverse": bool(reverse), "keep": keep_})


def scan_output(scan: Node, index: int) -> Node:
    """Output ``index`` of a SCAN node (see :mod:`graphc.ir.scan` for the numbering)."""
    return make_node(Op.SCAN_OUTPUT, (scan,), {"index": index})


def last_step(stacked: Node, reverse: bool) -> Node:
    """The carry after the final step, from its stacked form."""
    t = stacked.shape[0]
    row = ops.slice_axis(stacked, 0, 0, 1) if reverse else ops.slice_axis(stacked, 0, as_dim(t - 1), t)
    return ops.reshape(row, stacked.shape[1:])


def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None, length: Dim | None = None,
         reverse: bool = False) -> tuple[Any, Any]:
    """Loop ``f`` over the leading axis of ``xs``, threading a carry (``jax.lax.scan``'s contract)::

        def f(carry, x):
            ...
            return new_carry, y

        final_carry, ys = graphc.scan(f, init, xs)

    ``init`` and the carry are a tensor or a list of tensors (each new carry must have its
    carry's shape and dtype); ``xs`` a tensor, a list of tensors with the same leading size,
    or None with ``length`` given; ``y`` a tensor, a list, or None. ``ys`` stacks every step's
    ``y`` along a new leading axis. With ``reverse=True`` the steps run from the last index to
    the first, and ``ys[t]`` is still the output for ``xs[t]``.

    The loop is one node: its gradient is backpropagation through time, derived by the same
    autodiff, and it is compiled to a native loop. Values ``f`` reads from outside are
    captured, and what does not change between steps is computed once before the loop (so
    random values drawn inside ``f`` are the same at every step).
    """
    init_list, init_single = _flatten(init)
    xs_list, xs_single = _flatten(xs)
    for x in xs_list:
        if x.ndim == 0:
            raise ShapeError(f"scan: a sequence must have a leading axis to loop over, got a scalar{_where()}")
    if xs_list:
        steps = xs_list[0].shape[0]
        for x in xs_list[1:]:
            if not sizes_may_match(x.shape[0], steps):
                raise ShapeError("scan: the sequences differ in length: "
                                 + ", ".join(format_shape(s.shape) for s in xs_list) + _where())
        if length is not None and not sizes_may_match(as_dim(length), steps):
            raise ShapeError(f"scan: length={length} but the sequences have {steps} steps{_where()}")
    elif length is None:
        raise InputError(f"scan: give xs or length{_where()}")
    else:
        steps = as_dim(length)
    carries = [placeholder(c.shape, c.dtype, name=f"scan_carry{k}") for k, c in enumerate(init_list)]
    slices = [placeholder(x.shape[1:], x.dtype, name=f"scan_x{j}") for j, x in enumerate(xs_list)]
    result = f(_unflatten(carries, init_single), _unflatten(slices, xs_single) if xs is not None else None)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise InputError(f"scan: the step function must return (new_carry, y), got {result!r}{_where()}")
    new_list, _ = _flatten(result[0])
    ys_list, ys_single = _flatten(result[1])
    if len(new_list) != len(init_list):
        raise InputError(f"scan: the step function returned {len(new_list)} carries for {len(init_list)} "
                         f"initial values{_where()}")
    for k, (new, c) in enumerate(zip(new_list, init_list)):
        if new.dtype != c.dtype or new.ndim != c.ndim or not all(
                sizes_may_match(a, b) for a, b in zip(new.shape, c.shape)):
            raise ShapeError(f"scan: carry {k} is {format_shape(c.shape)} {c.dtype} but the step function returns "
                             f"{format_shape(new.shape)} {new.dtype} for it{_where()}")
        if any(isinstance(d, int) and d == 1 and not (isinstance(e, int) and e == 1)
               for d, e in zip(new.shape, c.shape)):  # e.g. a (1, n) step result for a (b, n) carry
            new_list[k] = ops.broadcast_to(new, c.shape)
    if not new_list and not ys_list:
        raise InputError(f"scan: the step function returns no carry and no output{_where()}")
    body = ScanBody(tuple(carries), tuple(slices), (), tuple(new_list), tuple(ys_list))
    node = make_scan(body, init_list, xs_list, [], steps, reverse)
    finals = [scan_output(node, k) for k in range(len(init_list))]
    ys_out = [scan_output(node, len(init_list) + l) for l in range(len(ys_list))]
    final = _unflatten(finals, init_single) if init is not None else None
    if result[1] is None:
        return final, None
    return final, _unflatten(ys_out, ys_single)
