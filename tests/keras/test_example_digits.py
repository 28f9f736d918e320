"""examples/digits_mlp.py reaches >= 0.96 test accuracy on the real digits data."""
from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("sklearn")

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "digits_mlp.py")


def test_digits_mlp_example(capsys):
    spec = importlib.util.spec_from_file_location("digits_mlp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    acc = module.main()
    assert acc >= 0.96
    assert "test accuracy" in capsys.readouterr().out
