"""Readable text and Graphviz DOT for graphs."""
from __future__ import annotations

from typing import Iterable, Union

from graphc.ir.graph import toposort
from graphc.ir.node import Node
from graphc.ir.ops import Op
from graphc.ir.shapes import format_shape

Nodes = Union[Node, Iterable[Node]]


def _as_list(nodes: Nodes) -> list[Node]:
    return [nodes] if isinstance(nodes, Node) else list(nodes)


def _describe(node: Node) -> str:
    attrs = {k: v for k, v in node.attrs.items() if k not in ("uid", "shape", "dtype") and not (k == "expr" and node.op is Op.FUSED)}
    if node.op is Op.FUSED:
        attrs["expr"] = format_expr(node.attrs["expr"])
    text = node.op.value
    if attrs:
        text += "{" + ", ".join(f"{k}={v!r}" if k != "expr" else f"{k}: {v}" for k, v in attrs.items()) + "}"
    return text


def format_expr(expr: tuple) -> str:
    """A fused kernel's expression as infix-ish text: ``relu(add(mul($0, 2.0), 1.0))``."""
    kind = expr[0]
    if kind == "in":
        return f"${expr[1]}"
    if kind == "const":
        return repr(expr[1])
    args = ", ".join(format_expr(e) for e in expr[2])
    return f"{expr[1].value}({args})"


def _lines(outputs: list[Node], indent: str, params: tuple[Node, ...] = ()) -> list[str]:
    order = toposort(outputs)
    prefix = "%" if not indent else f"%{len(indent) // 4}."
    ids = {id(n): f"{prefix}{i}" for i, n in enumerate(order)}
    lines = []
    if params:
        lines.append(indent + "params " + ", ".join(ids.get(id(p), "_") for p in params))
    for n in order:
        args = " ".join(ids[id(i)] for i in n.inputs)
        lines.append(indent + f"{ids[id(n)]} = {_describe(n)} {args}".rstrip()
                     + f"  :: {format_shape(n.shape)} {n.dtype}")
        if n.op is Op.SCAN:  # the loop body, indented: params, then its nodes
            body = n.attrs["body"]
            lines.extend(_lines(list(body.outputs), indent + "    ", body.params))
    lines.append(indent + "return " + ", ".join(ids[id(o)] for o in outputs))
    return lines


def debugprint(nodes: Nodes, file=None) -> str:
    """Print (and return) the graph below ``nodes``, one line per node, Theano style (a loop's
    body is printed indented below it)."""
    text = "\n".join(_lines(_as_list(nodes), ""))
    if file is not False:
        print(text, file=file)
    return text


def to_dot(nodes: Nodes) -> str:
    """Graphviz DOT text of the graph below ``nodes``."""
    order = toposort(_as_list(nodes))
    ids = {id(n): f"n{i}" for i, n in enumerate(order)}
    lines = ["digraph graphc {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for n in order:
        label = _describe(n).replace('"', "'") + f"\\n{format_shape(n.shape)} {n.dtype}"
        shape = "ellipse" if n.op in (Op.PLACEHOLDER, Op.SHARED) else "box"
        lines.append(f'  {ids[id(n)]} [label="{label}", shape={shape}];')
        for i in n.inputs:
            lines.append(f"  {ids[id(i)]} -> {ids[id(n)]};")
    lines.append("}")
    return "\n".join(lines)
