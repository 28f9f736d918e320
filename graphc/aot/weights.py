"""The weights file of an artifact: a 32-byte header, a table of 128-byte entries, and the raw
little-endian arrays, each at a 64-byte aligned offset. Documented in docs/artifact_format.md.

    header  : magic b"GCWEIGHT" | u32 version | u32 count | u64 data offset | u64 file size
    entry   : char name[48] (NUL padded) | u32 dtype | u32 rank | u64 offset | u64 nbytes
              | i64 dims[6] | 8 zero bytes
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

from graphc.errors import InputError

MAGIC = b"GCWEIGHT"
VERSION = 1
HEADER = 32
ENTRY = 128
ALIGN = 64
MAX_RANK = 6
DTYPE_CODES = {"float32": 1, "float64": 2, "int32": 3, "int64": 4, "bool": 5}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def pack_weights(entries: list[tuple[str, np.ndarray]]) -> bytes:
    """The bytes of a weights file holding ``entries`` (name, array) in order."""
    table = bytearray()
    offset = _align(HEADER + ENTRY * len(entries))
    data_offset = offset
    chunks = []
    for name, array in entries:
        array = np.asarray(array, order="C")  # ascontiguousarray makes 0-d arrays 1-d
        dtype = array.dtype.name
        if dtype not in DTYPE_CODES:
            raise InputError(f"weights: {name!r} has dtype {dtype}, which artifacts do not support")
        if array.ndim > MAX_RANK:
            raise InputError(f"weights: {name!r} has rank {array.ndim} (at most {MAX_RANK})")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        dims = list(array.shape) + [0] * (MAX_RANK - array.ndim)
        table += struct.pack("<48sIIQQ6q8x", name.encode()[:47], DTYPE_CODES[dtype], array.ndim,
                             offset, len(raw), *dims)
        chunks.append((offset, raw))
        offset = _align(offset + len(raw))
    size = max(offset, data_offset)
    out = bytearray(size)
    out[:HEADER] = struct.pack("<8sIIQQ", MAGIC, VERSION, len(entries), data_offset, size)
    out[HEADER:HEADER + len(table)] = table
    for off, raw in chunks:
        out[off:off + len(raw)] = raw
    return bytes(out)


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
