"""IMDB movie reviews (Keras's copy): 25,000 + 25,000 reviews as word-index sequences, label 1
for positive. The object arrays of ``imdb.npz`` are read with a restricted unpickler."""
from __future__ import annotations

import json

import numpy as np

from graphc.errors import InputError
from graphc.keras.datasets._safe_pickle import load_npz
from graphc.keras.utils.data_utils import get_file

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"


def _objects(seqs: list[list[int]]) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    out[:] = seqs
    return out


def load_data(path: str = "imdb.npz", num_words: int | None = None, skip_top: int = 0,
              maxlen: int | None = None, seed: int = 113, start_char: int | None = 1,
              oov_char: int | None = 2, index_from: int = 3, **kwargs):
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: ``x`` an object array of
    lists of word indices (shuffled with ``seed``; each starts with ``start_char``, words are
    shifted by ``index_from``; words ranked below ``skip_top`` or from ``num_words`` on become
    ``oov_char``, or are dropped if it is None; sequences of ``maxlen`` or more words are dropped).
    """
    if "nb_words" in kwargs:
        num_words = kwargs.pop("nb_words")
    if kwargs:
        raise TypeError(f"imdb.load_data: unrecognized keyword arguments {sorted(kwargs)}")
    path = get_file(path, origin=ORIGIN_FOLDER + "imdb.npz", file_hash=SHA256)
    f = load_npz(path)
    x_train, labels_train, x_test, labels_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    rng = np.random.RandomState(seed)
    idx = np.arange(len(x_train))
    rng.shuffle(idx)
    x_train, labels_train = x_train[idx], labels_train[idx]
    idx = np.arange(len(x_test))
    rng.shuffle(idx)
    x_test, labels_test = x_test[idx], labels_test[idx]

    head = [start_char] if start_char is not None else []
    train = [head + [w + index_from for w in x] for x in x_train]
    test = [head + [w + index_from for w in x] for x in x_test]
    if maxlen:
        keep = [i for i, x in enumerate(train) if len(x) < maxlen]
        train, labels_train = [train[i] for i in keep], labels_train[keep]
        keep = [i for i, x in enumerate(test) if len(x) < maxlen]
        test, labels_test = [test[i] for i in keep], labels_test[keep]
        if not train or not test:
            raise InputError(f"imdb.load_data: after filtering for sequences shorter than maxlen={maxlen}, "
                             "no sequence was kept; increase maxlen")
    xs = train + test
    labels = np.concatenate([labels_train, labels_test])
    if not num_words:
        num_words = max(max(x) for x in xs if x)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    n = len(train)
    return (_objects(xs[:n]), labels[:n]), (_objects(xs[n:]), labels[n:])


def get_word_index(path: str = "imdb_word_index.json") -> dict[str, int]:
    """The word -> index dict of the dataset (index 1 is the most frequent word)."""
    path = get_file(path, origin=ORIGIN_FOLDER + "imdb_word_index.json", file_hash=WORD_INDEX_MD5)
    with open(path, encoding="utf8") as f:
        return json.load(f)
