"""Reverse-mode differentiation: VJP rules and grad/jacobian/hessian."""
