"""Lowering: scheduling, loop nests and LLVM IR emission."""
