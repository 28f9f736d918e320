"""Dataset loaders on small files made here and served in place of the real URLs."""
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import urllib.request

import numpy as np
import pytest

from graphc.errors import InputError, ModelFileError
from graphc.keras.datasets import cifar10, digits, fashion_mnist, imdb, mnist
from graphc.keras.datasets._safe_pickle import UnsafePickleError, load_npz, safe_loads
from graphc.keras.utils import ChecksumError

_real_urlopen = urllib.request.urlopen


@pytest.fixture
def web(tmp_path, monkeypatch):
    """``web[url] = bytes`` serves those bytes at that URL; ``web.requests`` lists what was asked."""
    monkeypatch.setenv("GRAPHC_HOME", str(tmp_path / "home"))
    root = tmp_path / "web"
    root.mkdir()

    class Web(dict):
        requests: list = []

    w = Web()

    def urlopen(url, timeout=None):
        w.requests.append(url)
        if url not in w:
            raise urllib.error.URLError("no network in tests")
        f = root / hashlib.sha256(url.encode()).hexdigest()
        f.write_bytes(w[url])
        return _real_urlopen(f.as_uri(), timeout=timeout)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return w


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _mnist_npz():
    rng = np.random.default_rng(0)
    return npz_bytes(x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), y_train=np.arange(6, dtype=np.uint8),
                     x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), y_test=np.array([7, 9], np.uint8))


def test_mnist(web, tmp_path, monkeypatch):
    data = _mnist_npz()
    web[mnist.ORIGIN] = data
    monkeypatch.setattr(mnist, "SHA256", sha(data))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (6, 28, 28) and x_train.dtype == np.uint8 and y_train.tolist() == list(range(6))
    assert x_test.shape == (2, 28, 28) and y_test.tolist() == [7, 9]
    assert web.requests == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"]
    assert (tmp_path / "home" / "datasets" / "mnist.npz").read_bytes() == data
    mnist.load_data()  # cached: no second request
    assert len(web.requests) == 1
    (tmp_path / "home" / "datasets" / "mnist.npz").write_bytes(data[:100])  # a truncated cache is replaced
    (x2, _), _ = mnist.load_data()
    assert len(web.requests) == 2 and np.array_equal(x2, x_train)


def test_mnist_checksum_mismatch(web, tmp_path):
    assert mnist.SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    web[mnist.ORIGIN] = _mnist_npz()  # not the real file: its hash differs
    with pytest.raises(ChecksumError, match="731c5ac6"):
        mnist.load_data()
    assert os.listdir(tmp_path / "home" / "datasets") == []


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist(web, tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5), "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3), "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28))}
    for name, arr in arrays.items():
        web[fashion_mnist.BASE + name] = idx_gz(arr)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (5, 28, 28) and x_test.shape == (3, 28, 28) and y_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert sorted(os.listdir(tmp_path / "home" / "datasets" / "fashion-mnist")) == sorted(arrays)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 10) + b"\x00" * 3))
    with pytest.raises(ModelFileError, match="header says"):
        fashion_mnist.read_idx(str(bad))


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    d = {b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": [b"img.png"] * n}
    return pickle.dumps(d, protocol=2), data, labels


def cifar_archive(batches: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_cifar10(web, monkeypatch):
    batches, datas, labels = {}, [], []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name], d, l = cifar_batch(4, i)
        datas.append(d)
        labels.append(l)
    archive = cifar_archive(batches)
    web[cifar10.ORIGIN] = archive
    monkeypatch.setattr(cifar10, "SHA256", sha(archive))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and y_train.shape == (20, 1) and x_train.dtype == np.uint8
    assert x_test.shape == (4, 32, 32, 3) and y_test.shape == (4, 1)
    # channels last: pixel (row r, col c, channel ch) of image i is data[i, ch * 1024 + r * 32 + c]
    assert x_train[5, 3, 7, 2] == datas[1][1, 2 * 1024 + 3 * 32 + 7]
    assert y_train[:, 0].tolist() == sum(labels[:5], []) and y_test[:, 0].tolist() == labels[5]
    assert web.requests == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_code_in_pickles(web, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2)
    batches = {f"data_batch_{k}": evil for k in range(1, 6)}
    batches["test_batch"] = evil
    archive = cifar_archive(batches)
    web[cifar10.ORIGIN] = archive
    monkeypatch.setattr(cifar10, "SHA256", sha(archive))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        cifar10.load_data()
    assert not marker.exists()


def test_safe_pickle_allows_arrays_and_containers():
    value = {b"a": [1, 2.5, "s", (True, None)], "arr": np.arange(6, dtype=np.int16).reshape(2, 3)}
    out = safe_loads(pickle.dumps(value, protocol=2))
    assert out[b"a"] == [1, 2.5, "s", (True, None)] and out["arr"].dtype == np.int16
    np.testing.assert_array_equal(out["arr"], value["arr"])
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        import collections
        safe_loads(pickle.dumps(collections.OrderedDict(a=1)))

    class Rot13:
        def __reduce__(self):
            import _codecs
            return (_codecs.encode, ("text", "rot13"))
    with pytest.raises(UnsafePickleError, match="codec 'rot13'"):
        safe_loads(pickle.dumps(Rot13(), protocol=2))


def _imdb_npz():
    x_train = np.empty(4, dtype=object)
    x_train[:] = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [11]]
    x_test = np.empty(2, dtype=object)
    x_test[:] = [[2, 2], [12, 1, 3]]
    return npz_bytes(x_train=x_train, y_train=np.array([1, 0, 1, 0]), x_test=x_test, y_test=np.array([0, 1]))


def _keras_imdb(f, num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3):
    """Keras's imdb.load_data algorithm, written out plainly for the test."""
    rng = np.random.RandomState(seed)
    xs = {}
    for split in ("train", "test"):
        x, y = f[f"x_{split}"], f[f"y_{split}"]
        idx = np.arange(len(x))
        rng.shuffle(idx)
        x = [[start_char] + [w + index_from for w in s] for s in x[idx]]
        y = y[idx]
        if maxlen:
            keep = [i for i, s in enumerate(x) if len(s) < maxlen]
            x, y = [x[i] for i in keep], y[keep]
        xs[split] = (x, y)
    allx = xs["train"][0] + xs["test"][0]
    num_words = num_words or max(max(s) for s in allx)
    allx = [[w if skip_top <= w < num_words else oov_char for w in s] for s in allx]
    n = len(xs["train"][0])
    return (allx[:n], xs["train"][1]), (allx[n:], xs["test"][1])


@pytest.mark.parametrize("kwargs", [{}, {"num_words": 8, "skip_top": 4}, {"maxlen": 4}, {"seed": 7, "oov_char": 2}])
def test_imdb(web, monkeypatch, tmp_path, kwargs):
    data = _imdb_npz()
    web[imdb.ORIGIN_FOLDER + "imdb.npz"] = data
    monkeypatch.setattr(imdb, "SHA256", sha(data))
    (x_train, y_train), (x_test, y_test) = imdb.load_data(**kwargs)
    (rx, ry), (tx, ty) = _keras_imdb(np.load(io.BytesIO(data), allow_pickle=True), **kwargs)
    assert x_train.dtype == object and [list(s) for s in x_train] == rx and y_train.tolist() == ry.tolist()
    assert [list(s) for s in x_test] == tx and y_test.tolist() == ty.tolist()


def test_imdb_options_and_word_index(web, monkeypatch):
    data = _imdb_npz()
    web[imdb.ORIGIN_FOLDER + "imdb.npz"] = data
    monkeypatch.setattr(imdb, "SHA256", sha(data))
    (x_train, _), _ = imdb.load_data(num_words=6, oov_char=None, start_char=None, index_from=0)
    assert all(all(w < 6 for w in s) for s in x_train)
    with pytest.raises(InputError, match="maxlen"):
        imdb.load_data(maxlen=1)
    with pytest.raises(TypeError, match="unrecognized"):
        imdb.load_data(bogus=1)
    words = json.dumps({"the": 1, "movie": 2}).encode()
    web[imdb.ORIGIN_FOLDER + "imdb_word_index.json"] = words
    monkeypatch.setattr(imdb, "WORD_INDEX_MD5", hashlib.md5(words).hexdigest())
    assert imdb.get_word_index() == {"the": 1, "movie": 2}


def test_load_npz_reads_plain_and_object_arrays(tmp_path):
    p = tmp_path / "a.npz"
    p.write_bytes(npz_bytes(a=np.arange(5.0), f=np.asfortranarray(np.arange(6).reshape(2, 3))))
    out = load_npz(str(p))
    np.testing.assert_array_equal(out["a"], np.arange(5.0))
    np.testing.assert_array_equal(out["f"], np.arange(6).reshape(2, 3))


def test_digits():
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape[1:] == (8, 8) and x_train.dtype == np.float32 and y_train.dtype == np.uint8
    assert len(x_train) + len(x_test) == 1797 and abs(len(x_test) - 0.2 * 1797) < 10
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))  # stratified
    (xf, yf), _ = digits.load_data(flatten=True)
    assert xf.shape[1] == 64 and np.array_equal(xf.reshape(-1, 8, 8), x_train) and np.array_equal(yf, y_train)
    (xs, _), _ = digits.load_data(seed=1)
    assert not np.array_equal(xs, x_train)
    with pytest.raises(InputError, match="test_split"):
        digits.load_data(test_split=1.5)
