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
def digits_export(tmp_path_factory):
    """(output dir, {"mlp": model, "cnn": model}, x_test): examples/export_digits.py, trained briefly."""
    pytest.importorskip("sklearn")
    from export_digits import export_digits
    out = str(tmp_path_factory.mktemp("art") / "digits_out")
    # the convnet is exported untrained: training its graph takes longer than these tests may
    models, x_test, _ = export_digits(out, epochs={"mlp": 2, "cnn": 0}, kinds=("mlp", "cnn"))
    return out, models, x_test


@pytest.fixture(scope="session")
def digits_artifact(digits_export):
    """(artifact dir, model, x_test) of the exported digits MLP."""
    out, models, x_test = digits_export
    return os.path.join(out, "mlp"), models["mlp"], x_test


@pytest.fixture(scope="session")
def c_program(digits_export, tmp_path_factory):
    """Path of examples/c/digits_predict.c built against both artifacts with the system cc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    mlp, cnn = (os.path.join(digits_export[0], k) for k in ("mlp", "cnn"))
    exe = str(tmp_path_factory.mktemp("cbin") / "digits_predict")
    subprocess.run([cc, "-O2", "-Wall", "-Werror", f"-I{mlp}", f"-I{cnn}",
                    os.path.join(ROOT, "examples", "c", "digits_predict.c"), f"-L{mlp}", f"-L{cnn}",
                    "-lgraphc_digits", "-lgraphc_digits_cnn", f"-Wl,-rpath,{mlp}", f"-Wl,-rpath,{cnn}", "-o", exe],
                   check=True)
    return exe
