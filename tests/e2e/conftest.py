"""Fixtures for the end-to-end tests: one trained, exported digits MLP per session."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME = os.path.join(ROOT, "runtime")
sys.path.insert(0, os.path.join(ROOT, "examples"))
if RUNTIME not in sys.path:
    sys.path.insert(0, RUNTIME)


@pytest.fixture(scope="session")
def digits_artifact(tmp_path_factory):
    """(artifact dir, model, x_test): the digits MLP trained briefly and exported."""
    pytest.importorskip("sklearn")
    from export_digits import export_digits
    out = str(tmp_path_factory.mktemp("art") / "digits")
    model, x_test, _ = export_digits(out, epochs=3)
    return out, model, x_test


@pytest.fixture(scope="session")
def c_program(digits_artifact, tmp_path_factory):
    """Path of examples/c/digits_predict.c built against the artifact with the system cc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    art = digits_artifact[0]
    exe = str(tmp_path_factory.mktemp("cbin") / "digits_predict")
    subprocess.run([cc, "-O2", "-Wall", "-Werror", f"-I{art}", os.path.join(ROOT, "examples", "c", "digits_predict.c"),
                    f"-L{art}", "-lgraphc_digits", f"-Wl,-rpath,{art}", "-o", exe], check=True)
    return exe
