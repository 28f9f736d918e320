"""Native compilation: llvmlite target machines, object code, caches."""
