"""Shared pytest setup for the graphc test suite.

Execution modes
---------------
Any test (or hypothesis test) with an argument named ``mode`` runs once per execution mode of
``graphc.function``: ``"reference"`` (the NumPy interpreter) and ``"native"`` (LLVM code).
The native case is skipped ONLY while ``graphc.lower.executable`` does not exist yet; once the
module is there the native cases run, and a native failure (an import error inside the module
included) fails the test instead of skipping it.

Fixtures:
- ``modes``: the list of modes that can run here (``["reference"]`` or both).
- ``native_available``: whether the native backend module exists.
- ``train_mode``: ``"native"`` when available, else ``"reference"`` (for slow end-to-end tests).
- ``requires_native``: skips the test while the native backend does not exist.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest

# Compiled code is cached on disk by default (~/.cache/graphc); the tests use a cache of their
# own, fresh for each run, so they never depend on what an earlier run left behind.
if "GRAPHC_CACHE_DIR" not in os.environ:
    import tempfile
    os.environ["GRAPHC_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphc-test-cache-")

# Let a plain ``pytest`` from a source checkout import graphc without installing it first.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import graphc  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, _ROOT)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "graphc",
        deadline=None,  # the first example of a test compiles code; timing is never asserted
        max_examples=int(os.environ.get("GRAPHC_HYPOTHESIS_EXAMPLES", "40")),
        derandomize=True,  # the same examples on every run: failures reproduce in CI
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.load_profile("graphc")
except ImportError:  # hypothesis is a test extra; only the property tests need it
    pass

NATIVE_MODULE = "graphc.lower.executable"


def _native_status() -> tuple[bool, BaseException | None]:
    """(module exists, error raised while importing it)."""
    try:
        importlib.import_module(NATIVE_MODULE)
    except ModuleNotFoundError as e:
        if e.name is not None and (NATIVE_MODULE == e.name or NATIVE_MODULE.startswith(e.name + ".")):
            return False, e  # not written yet: skip the native cases
        return True, e  # the module exists but one of its own imports is missing: a failure
    except Exception as e:  # noqa: BLE001 - a broken backend must fail the native tests
        return True, e
    return True, None


NATIVE_EXISTS, NATIVE_IMPORT_ERROR = _native_status()
SKIP_NATIVE = pytest.mark.skipif(not NATIVE_EXISTS, reason=f"{NATIVE_MODULE} does not exist yet")
MODES = ["reference", "native"]


def _parametrized_by_test(metafunc, name: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc):
    if "mode" in metafunc.fixturenames and not _parametrized_by_test(metafunc, "mode"):
        metafunc.parametrize("mode", [pytest.param("reference"), pytest.param("native", marks=SKIP_NATIVE)])


def pytest_report_header(config):
    if NATIVE_EXISTS and NATIVE_IMPORT_ERROR is None:
        return "graphc native backend: available"
    if NATIVE_EXISTS:
        return f"graphc native backend: BROKEN ({NATIVE_IMPORT_ERROR!r})"
    return "graphc native backend: not written yet (native cases skip)"


@pytest.fixture(scope="session")
def native_available() -> bool:
    return NATIVE_EXISTS


@pytest.fixture(scope="session")
def modes() -> list[str]:
    return MODES if NATIVE_EXISTS else ["reference"]


@pytest.fixture(scope="session")
def train_mode() -> str:
    return "native" if NATIVE_EXISTS else "reference"


@pytest.fixture
def requires_native():
    if not NATIVE_EXISTS:
        pytest.skip(f"{NATIVE_MODULE} does not exist yet")
    if NATIVE_IMPORT_ERROR is not None:
        raise NATIVE_IMPORT_ERROR
