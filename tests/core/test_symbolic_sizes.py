"""Symbolic size comparisons (graphc/ir/shapes.dims_equal, graphc/ir/infer.sizes_may_match):
known-equal, certainly-different and may-match cases, including the fast paths that skip
sympy's expand and cancel."""
from __future__ import annotations

import pytest
import sympy

from graphc.ir.infer import sizes_may_match
from graphc.ir.shapes import dims_equal

x, y = sympy.symbols("x y", integer=True, positive=True)


@pytest.mark.parametrize("a,b,equal", [
    (3, 3, True), (3, 4, False), (x, x, True), (x, y, False), (x, 3, False), (3, x, False),
    (2 * x, x + x, True), (784 * x, x * 784, True), (x + 1, x, False), (x * y, y * x, True),
])
def test_dims_equal(a, b, equal):
    assert dims_equal(a, b) is equal


@pytest.mark.parametrize("a,b,may", [
    (3, 3, True), (3, 4, False), (x, 5, True), (784 * x, 10 * y, True), (784 * x, 784 * x, True),
    (784 * x, 10 * x, False), (2 * x, x, False), (x * y, 6 * x, True), (0, x, False),
])
def test_sizes_may_match(a, b, may):
    assert sizes_may_match(a, b) is may

