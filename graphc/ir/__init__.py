"""The IR: dtypes, the op enum, interned nodes, graphs, symbolic shapes, printers."""
from graphc.ir.graph import Graph, toposort, transform, substitute, rebuild
from graphc.ir.node import ConstValue, Node, make_node
from graphc.ir.ops import Op

__all__ = ["Graph", "Node", "Op", "ConstValue", "make_node", "toposort", "transform", "substitute", "rebuild"]
