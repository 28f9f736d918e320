"""The 8x8 handwritten digits bundled with scikit-learn (1,797 real images, no download).

A small, offline stand-in for MNIST: ``x`` is float32 in ``[0, 1]`` (the 0-16 pixel counts
divided by 16), shaped ``(n, 8, 8)`` or, with ``flatten=True``, ``(n, 64)``; ``y`` holds uint8
labels 0-9. The split is a seeded shuffle, stratified so both parts have every digit in
proportion.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import InputError


def load_data(test_split: float = 0.2, seed: int = 113, flatten: bool = False):
    """``(x_train, y_train), (x_test, y_test)`` from ``sklearn.datasets.load_digits``."""
    if not 0.0 < test_split < 1.0:
        raise InputError(f"digits.load_data: test_split must be in (0, 1), got {test_split}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("graphc.keras.datasets.digits needs scikit-learn, which ships the data: "
                          "pip install scikit-learn") from e
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test_idx.extend(members[: int(round(test_split * len(members)))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train_idx, test_idx_ = rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))
    if flatten:
        x = x.reshape(len(x), -1)
    return (x[train_idx], y[train_idx]), (x[test_idx_], y[test_idx_])
