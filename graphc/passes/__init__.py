"""Graph rewrites: the engine, the rule sets, and the per-level pipeline."""
