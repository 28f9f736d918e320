"""CIFAR-10: 50,000 + 10,000 colour 32x32 images of 10 classes, from the authors' Python archive.

The batches inside the archive are pickled dicts; they are read straight from the verified
``.tar.gz`` (no extraction) with a restricted unpickler that can only rebuild plain
containers and NumPy arrays (see :mod:`graphc.keras.datasets._safe_pickle`).
"""
from __future__ import annotations

import tarfile

import numpy as np

from graphc.errors import ModelFileError
from graphc.keras.datasets._safe_pickle import safe_load
from graphc.keras.utils.data_utils import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
DIRNAME = "cifar-10-batches-py"


def _batch(tf: tarfile.TarFile, name: str, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    try:
        member = tf.extractfile(f"{DIRNAME}/{name}")
    except KeyError:
        raise ModelFileError(f"the CIFAR archive has no {DIRNAME}/{name}") from None
    if member is None:
        raise ModelFileError(f"{DIRNAME}/{name} in the CIFAR archive is not a file")
    with member:
        d = safe_load(member, encoding="bytes")
    if not isinstance(d, dict):
        raise ModelFileError(f"{DIRNAME}/{name} does not hold a dict")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    data, labels = np.asarray(d["data"], dtype=np.uint8), np.asarray(d[label_key], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ModelFileError(f"{DIRNAME}/{name}: data {data.shape} and labels {labels.shape} are not a CIFAR batch")
    return data.reshape(-1, 3, 32, 32), labels


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 32, 32, 3)`` (channels
    last) and uint8 labels ``(n, 1)``, downloaded once to ``~/.graphc/datasets``."""
    path = get_file(DIRNAME + ".tar.gz", origin=ORIGIN, file_hash=SHA256)
    with tarfile.open(path, "r:gz") as tf:
        train = [_batch(tf, f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = _batch(tf, "test_batch")
    x_train = np.concatenate([x for x, _ in train]).transpose(0, 2, 3, 1)
    y_train = np.concatenate([y for _, y in train]).reshape(-1, 1)
    return (x_train, y_train), (x_test.transpose(0, 2, 3, 1), y_test.reshape(-1, 1))
