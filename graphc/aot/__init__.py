"""Ahead-of-time compilation: ``export()`` writes an artifact (shared library, C header,
weights, manifest) that runs without Python; ``runtime/graphc_runtime`` loads it from Python."""
from graphc.aot.export import FORMAT_VERSION, Target, export, resolve_target

__all__ = ["export", "resolve_target", "Target", "FORMAT_VERSION"]
