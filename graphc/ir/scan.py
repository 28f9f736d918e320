"""The loop node (Theano's scan): one SCAN node whose body is a graph.

A SCAN node runs its body ``length`` times. Its inputs are, in order:

- ``init``: the initial value of each *carry* (a value threaded from one step to the next),
- ``xs``: the *sequences*, sliced along their leading axis (step ``t`` sees ``x[t]``),
- ``invariants``: values the body reads unchanged at every step (weights, masks, ...).

The body is a :class:`ScanBody`: placeholders standing for the carries, the per-step slices
and the invariants, and the output nodes computed from them: the new carries and the per-step
outputs ``ys``. ``reverse`` runs the steps from the last index to the first (outputs stay in
index order). A SCAN node has dtype ``"tuple"``; its values are read through SCAN_OUTPUT nodes:

- index ``k < n_carry``: carry ``k`` -- its value after the final step, or, if ``keep[k]``,
  every step's value stacked along a new leading axis (``stacked[t]`` is the carry after step
  ``t``); backpropagation through time needs the stacked form,
- index ``n_carry + l``: ``ys[l]`` of every step, stacked.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ir.node import Attrs, Node
from graphc.ir.shapes import Dim, format_shape

TUPLE = "tuple"  # the dtype of a SCAN node: several values, read through SCAN_OUTPUT


@dataclass(frozen=True, eq=True)
class ScanBody:
    """The graph of one step: parameter placeholders and the outputs computed from them.
    Compared by node identity (nodes are interned), so equal bodies merge like nodes."""

    carries: tuple[Node, ...]
    seqs: tuple[Node, ...]
    invariants: tuple[Node, ...]
    new_carries: tuple[Node, ...]
    ys: tuple[Node, ...]

    @property
    def params(self) -> tuple[Node, ...]:
        return self.carries + self.seqs + self.invariants

    @property
    def outputs(self) -> tuple[Node, ...]:
        return self.new_carries + self.ys

    def __repr__(self) -> str:
        return (f"<body {len(self.carries)} carries, {len(self.seqs)} sequences, "
                f"{len(self.invariants)} invariants, {len(self.ys)} ys>")


def output_type(attrs: Attrs, index: int) -> tuple[tuple[Dim, ...], str]:
    """Shape and dtype of output ``index`` of a SCAN node with ``attrs``."""
    body: ScanBody = attrs["body"]
    nc = len(body.carries)
    if index < nc:
        node = body.new_carries[index]
        stacked = attrs["keep"][index]
    else:
        node = body.ys[index - nc]
        stacked = True
    return ((attrs["length"],) if stacked else ()) + tuple(node.shape), node.dtype


def check_scan(inputs: tuple[Node, ...], attrs: Attrs) -> str | None:
    """A message saying why ``inputs`` do not fit the body's parameters, or None."""
    from graphc.ir.infer import sizes_may_match
    body: ScanBody = attrs["body"]
    if len(inputs) != len(body.params):
        return f"{len(inputs)} inputs for a body with {len(body.params)} parameters"
    if len(attrs["keep"]) != len(body.carries):
        return "keep must have one flag per carry"
    for what, outer, params, outs in (("init", inputs[:len(body.carries)], body.carries, body.new_carries),):
        for k, (x, p, o) in enumerate(zip(outer, params, outs)):
            if x.dtype != p.dtype or o.dtype != p.dtype or len(o.shape) != len(p.shape) or not all(
                    sizes_may_match(a, b) for a, b in zip(o.shape, p.shape)):
                return (f"carry {k}: the step returns {format_shape(o.shape)} {o.dtype} for a carry of "
                        f"{format_shape(p.shape)} {p.dtype}")
    n0 = len(body.carries)
    for j, (x, p) in enumerate(zip(inputs[n0:n0 + len(body.seqs)], body.seqs)):
        if x.ndim != p.ndim + 1 or x.dtype != p.dtype or not sizes_may_match(x.shape[0], attrs["length"]):
            return (f"sequence {j} has shape {format_shape(x.shape)} {x.dtype}; the loop runs "
                    f"{attrs['length']} steps over slices of {format_shape(p.shape)} {p.dtype}")
    n1 = n0 + len(body.seqs)
    for m, (x, p) in enumerate(zip(inputs[n1:], body.invariants)):
        if x.dtype != p.dtype or x.ndim != p.ndim:
            return f"invariant {m} is {format_shape(x.shape)} {x.dtype}, the body expects {format_shape(p.shape)}"
    return None
