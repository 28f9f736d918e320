"""Fashion-MNIST (Keras's copy): 60,000 + 10,000 grayscale 28x28 images of 10 kinds of clothing.

Keras pins no checksums for these four files; graphc checks their IDX headers (magic number,
sizes) instead, so a truncated or wrong file gives a clear error rather than garbage.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from graphc.errors import ModelFileError
from graphc.keras.utils.data_utils import get_file

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]


def read_idx(path: str) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (the MNIST format) as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ModelFileError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim < 1:
        raise ModelFileError(f"{path} is not an IDX file of unsigned bytes (header {data[:4].hex()})")
    header = 4 + 4 * ndim
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise ModelFileError(f"{path}: the header says {shape} ({count} bytes) but the file holds "
                             f"{len(data) - header} bytes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 28, 28)`` and uint8 labels
    0-9, cached in ``~/.graphc/datasets/fashion-mnist``."""
    dirname = os.path.join("datasets", "fashion-mnist")
    paths = [get_file(fname, origin=BASE + fname, cache_subdir=dirname) for fname in FILES]
    y_train, x_train, y_test, x_test = (read_idx(p) for p in paths)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim != 3 or len(x) != len(y):
            raise ModelFileError(f"fashion-mnist {split}: {x.shape} images do not match {y.shape} labels")
    return (x_train, y_train), (x_test, y_test)
