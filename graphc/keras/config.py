"""Settings of the Keras-style API that tests and users may switch explicitly.

``run_mode`` is the ``mode`` every compiled model function is built with: ``"native"`` (LLVM)
once the native backend can be imported, ``"reference"`` (the NumPy interpreter) until then.
Change it with :func:`set_run_mode`; a model may also override it with
``model.compile(..., run_mode=...)``. Nothing here reads environment variables.
"""
from __future__ import annotations

from graphc.errors import InputError

_MODES = ("native", "reference")
_state: dict[str, object] = {"run_mode": None, "epsilon": 1e-7, "floatx": "float32"}


def _native_available() -> bool:
    try:
        import graphc.lower.executable  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means "not available yet"
        return False
    return True


def run_mode() -> str:
    """The mode model functions are compiled with (see module docstring)."""
    mode = _state["run_mode"]
    if mode is None:
        mode = "native" if _native_available() else "reference"
        _state["run_mode"] = mode
    return str(mode)


def set_run_mode(mode: str | None) -> None:
    """Set the compile mode of models compiled from now on; ``None`` picks automatically."""
    if mode is not None and mode not in _MODES:
        raise InputError(f"run mode must be one of {_MODES} or None, got {mode!r}")
    _state["run_mode"] = mode


def epsilon() -> float:
    """The fuzz factor used by losses and metrics (Keras's ``backend.epsilon()``, 1e-7)."""
    return float(_state["epsilon"])  # type: ignore[arg-type]


def set_epsilon(value: float) -> None:
    """Set the fuzz factor used by losses and metrics."""
    _state["epsilon"] = float(value)


def floatx() -> str:
    """The default float dtype of weights and inputs ("float32")."""
    return str(_state["floatx"])


def set_floatx(dtype: str) -> None:
    """Set the default float dtype ("float32" or "float64")."""
    if dtype not in ("float32", "float64"):
        raise InputError(f"floatx must be 'float32' or 'float64', got {dtype!r}")
    _state["floatx"] = dtype
