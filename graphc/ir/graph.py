"""A graph is its inputs and outputs; the nodes between them are found by walking inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from graphc.ir.node import Node, copy_origin, make_node
from graphc.ir.ops import Op


def toposort(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs depend on, each after its inputs (iterative: deep graphs are fine)."""
    order: list[Node] = []
    seen: set[int] = set()
    for root in outputs:
        if id(root) in seen:
            continue
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i < len(node.inputs):
                stack.append((node, i + 1))
                child = node.inputs[i]
                if id(child) not in seen:
                    stack.append((child, 0))
            elif id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order


@dataclass(frozen=True)
class Graph:
    """Inputs (placeholders and shared variables) and output nodes of one computation."""

    inputs: tuple[Node, ...]
    outputs: tuple[Node, ...]

    def nodes(self) -> list[Node]:
        """All nodes in topological order."""
        return toposort(self.outputs)

    def with_outputs(self, outputs: Iterable[Node]) -> "Graph":
        return Graph(self.inputs, tuple(outputs))

    def leaves(self, op: Op) -> list[Node]:
        return [n for n in self.nodes() if n.op is op]


def rebuild(node: Node, inputs: tuple[Node, ...]) -> Node:
    """The node with the same op and attributes over new inputs (itself if unchanged)."""
    if inputs == node.inputs:
        return node
    new = make_node(node.op, inputs, node.attrs)
    copy_origin(node, new)
    return new


def transform(outputs: Iterable[Node], fn: Callable[[Node], Node]) -> list[Node]:
    """Bottom-up rewrite: ``fn`` sees each node after its inputs were rewritten."""
    outputs = list(outputs)
    memo: dict[int, Node] = {}
    for node in toposort(outputs):
        new_inputs = tuple(memo[id(i)] for i in node.inputs)
        memo[id(node)] = fn(rebuild(node, new_inputs))
    return [memo[id(o)] for o in outputs]


def substitute(outputs: Iterable[Node], mapping: dict[Node, Node]) -> list[Node]:
    """Replace nodes by others everywhere below the outputs."""
    outputs = list(outputs)
    memo: dict[int, Node] = {}
    for node in toposort(outputs):
        if node in mapping:
            memo[id(node)] = mapping[node]
        else:
            memo[id(node)] = rebuild(node, tuple(memo[id(i)] for i in node.inputs))
    return [memo[id(o)] for o in outputs]
