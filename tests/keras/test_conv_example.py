"""examples/digits_convnet.py beats the digits MLP (~0.975) on the real digits data.

Marked slow: the native compile of the convnet's training step takes tens of seconds with the
current backend (deselect with ``-m "not slow"``)."""
from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("sklearn")

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "digits_convnet.py")


@pytest.mark.slow
def test_digits_convnet_example(capsys):
    spec = importlib.util.spec_from_file_location("digits_convnet_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    acc = module.main(epochs=20)
    assert acc >= 0.975
    assert "test accuracy" in capsys.readouterr().out
