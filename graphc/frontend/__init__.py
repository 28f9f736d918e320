"""The frontend: symbolic tensors (graph nodes with Python operators) and ``graphc.ops``."""
