"""Reading the pickled files some Keras datasets ship in, without running code from them.

CIFAR-10's batches are pickled dicts and IMDB's ``imdb.npz`` holds object arrays (which
NumPy stores as pickles). Keras reads both with ``pickle``, trusting the checksum of the
download. graphc also checks the checksum, and in addition unpickles with
:class:`RestrictedUnpickler`, which resolves only the globals needed to rebuild NumPy arrays
(``ndarray``, ``dtype`` and NumPy's array reconstructor, plus ``_codecs.encode`` restricted to
latin-1, which Python 3 protocol-2 pickles use for ``bytes``); builtins such as dict, list,
bytes, str and int come from pickle opcodes and need no globals. Anything else (``os.system``, a
class from some module) raises :class:`UnsafePickleError` before it is imported or called.
"""
from __future__ import annotations

import importlib
import io
import pickle
import zipfile
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from graphc.errors import ModelFileError


class UnsafePickleError(ModelFileError):
    """A pickled data file asks for a global that is not on the allow-list."""


def _reconstruct() -> Any:
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(mod)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("cannot find numpy's array reconstructor")  # pragma: no cover


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """What protocol-2 pickles written by Python 3 use to rebuild ``bytes``: only the latin-1
    codec is accepted."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"refusing codec {encoding!r} in a pickled data file")
    return text.encode("latin-1", errors)


_ALLOWED = {
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild plain containers and NumPy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(f"refusing to load {module}.{name} from a pickled data file: only "
                                    "plain containers and NumPy arrays are allowed")
        return factory()


def safe_load(f: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle from an open binary file with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(f, encoding=encoding).load()


def safe_loads(data: bytes, encoding: str = "ASCII") -> Any:
    """Unpickle bytes with :class:`RestrictedUnpickler`."""
    return safe_load(io.BytesIO(data), encoding=encoding)


def _read_npy(f: IO[bytes]) -> np.ndarray:
    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
    if dtype.hasobject:
        arr = safe_load(f, encoding="latin1")
        if not isinstance(arr, np.ndarray):
            raise ModelFileError("an object array in the .npz file did not unpickle to an array")
        return arr
    count = int(np.prod(shape)) if shape else 1
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ModelFileError("a .npy member is truncated")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; object arrays are unpickled with the restricted unpickler
    (NumPy's ``allow_pickle=True`` would run any code the file names)."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            key = name[:-4] if name.endswith(".npy") else name
            with zf.open(name) as f:
                out[key] = _read_npy(f)
    return out
