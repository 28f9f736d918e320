"""keras.utils: to_categorical, normalize, get_file (served locally), PNG plots."""
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zlib

import numpy as np
import pytest

from graphc.errors import InputError
from graphc.keras.utils import (ChecksumError, DownloadError, get_file, model_to_dot, normalize, plot_history,
                                plot_model, to_categorical)
from graphc.keras.utils._raster import Canvas, encode_png, read_png, text_size
from graphc.keras.utils.data_utils import graphc_home
from graphc.keras.utils.plotting import TRAIN_COLOR, VAL_COLOR, nice_ticks


# ----------------------------------------------------------------------------- arrays
def test_to_categorical():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), np.eye(3, dtype="float32")[[0, 2, 1]])
    out = to_categorical(np.array([[1], [3]]), num_classes=5, dtype="int64")
    assert out.shape == (2, 5) and out.dtype == np.int64 and out[1, 3] == 1
    assert to_categorical(np.zeros((2, 3), int), 4).shape == (2, 3, 4)
    assert to_categorical(np.array([1.0, 0.0])).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(InputError, match="whole numbers"):
        to_categorical([0.5])
    with pytest.raises(InputError):
        to_categorical([-1, 0])


def test_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0, 0]])
    np.testing.assert_allclose(normalize(x, axis=0, order=1), [[1, 1], [0, 0]])


# ----------------------------------------------------------------------------- get_file
@pytest.fixture
def payload(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(3000)
    (src / "blob.bin").write_bytes(data)
    return src / "blob.bin", data, hashlib.sha256(data).hexdigest()


def test_get_file_downloads_verifies_and_caches(tmp_path, payload, capsys):
    path, data, sha = payload
    cache = tmp_path / "cache"
    out = get_file("blob.bin", origin=path.as_uri(), file_hash=sha, cache_dir=str(cache))
    assert out == str(cache / "datasets" / "blob.bin") and open(out, "rb").read() == data
    assert "Downloading data from" in capsys.readouterr().out
    assert os.listdir(cache / "datasets") == ["blob.bin"]  # no temporary files left
    path.unlink()  # a cached, valid copy is used without the network
    assert get_file("blob.bin", origin=path.as_uri(), file_hash=sha, cache_dir=str(cache)) == out
    assert capsys.readouterr().out == ""


def test_get_file_redownloads_corrupt_cache(tmp_path, payload, capsys):
    path, data, sha = payload
    cache = str(tmp_path / "cache")
    out = get_file("blob.bin", origin=path.as_uri(), file_hash=sha, cache_dir=cache)
    with open(out, "r+b") as f:
        f.write(b"garbage")
    get_file("blob.bin", origin=path.as_uri(), file_hash=sha, cache_dir=cache)
    assert open(out, "rb").read() == data
    assert "does not match" in capsys.readouterr().err
    md5 = hashlib.md5(data).hexdigest()  # md5 hashes work too (32 hex digits)
    assert get_file("blob.bin", origin=path.as_uri(), file_hash=md5, cache_dir=cache) == out
    assert get_file("blob.bin", origin=path.as_uri(), md5_hash=md5, cache_dir=cache) == out


def test_get_file_checksum_mismatch_caches_nothing(tmp_path, payload):
    path, _, _ = payload
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="expected 0+; it was not cached"):
        get_file("blob.bin", origin=path.as_uri(), file_hash="0" * 64, cache_dir=str(cache))
    assert os.listdir(cache / "datasets") == []


def test_get_file_offline_and_http_errors(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DownloadError, match="Are you offline"):
        get_file("x.npz", origin=f"http://127.0.0.1:{port}/x.npz", cache_dir=str(tmp_path), timeout=5)
    assert os.listdir(tmp_path / "datasets") == []
    with pytest.raises(ValueError, match="origin"):
        get_file("x.npz", cache_dir=str(tmp_path))


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_get_file_over_http(tmp_path, server, monkeypatch):
    httpd, url = server
    data = b"hello graphc" * 100
    _Handler.files = {"/d/hello.txt": data}
    monkeypatch.setenv("GRAPHC_HOME", str(tmp_path / "home"))
    assert graphc_home() == str(tmp_path / "home")
    out = get_file(origin=url + "/d/hello.txt", file_hash=hashlib.sha256(data).hexdigest())
    assert out == str(tmp_path / "home" / "datasets" / "hello.txt") and open(out, "rb").read() == data
    with pytest.raises(DownloadError, match="HTTP 404"):
        get_file("missing.txt", origin=url + "/d/missing.txt")


def test_get_file_untar_and_extract(tmp_path):
    src = tmp_path / "pkg"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "a.txt").write_text("A")
    archive = tmp_path / "pkg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "inner", arcname="pkg/inner")
    cache = str(tmp_path / "cache")
    out = get_file("pkg", origin=archive.as_uri(), untar=True, cache_dir=cache)
    assert out == os.path.join(cache, "datasets", "pkg") and open(os.path.join(out, "inner", "a.txt")).read() == "A"
    out = get_file("pkg2.tar.gz", origin=archive.as_uri(), extract=True, cache_dir=cache, cache_subdir="x")
    assert os.path.exists(os.path.join(cache, "x", "pkg", "inner", "a.txt"))
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="escapes"):
        get_file("evil.tar.gz", origin=evil.as_uri(), extract=True, cache_dir=cache, cache_subdir="y")
    assert not (tmp_path / "cache" / "escaped.txt").exists()


# ----------------------------------------------------------------------------- PNG, plots
def test_png_roundtrip_and_format(tmp_path):
    img = (np.arange(6 * 7 * 3) % 256).astype(np.uint8).reshape(6, 7, 3)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    n = int.from_bytes(data[8:12], "big")
    assert int.from_bytes(data[16 + n:20 + n], "big") == zlib.crc32(data[12:16 + n])
    (tmp_path / "a.png").write_bytes(data)
    np.testing.assert_array_equal(read_png(str(tmp_path / "a.png")), img)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "g.png").write_bytes(encode_png(gray))
    np.testing.assert_array_equal(read_png(str(tmp_path / "g.png")), gray)
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 4)))


def test_canvas_text_and_lines():
    c = Canvas(60, 20)
    c.text(1, 1, "Ab1", color=(255, 0, 0), scale=2)
    red = np.all(c.pixels == (255, 0, 0), axis=-1)
    assert red.any() and np.nonzero(red)[1].max() < text_size("Ab1", 2)[0] + 1
    c.line(0, 19, 59, 19, (0, 0, 255))
    assert np.all(c.pixels[19] == (0, 0, 255))
    assert nice_ticks(0.13, 0.92) == pytest.approx([0.2, 0.4, 0.6, 0.8])


def _has(img, color):
    return bool(np.all(img == color, axis=-1).any())


def test_plot_history(tmp_path):
    class History:
        history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "accuracy": [0.5, 0.7, float("nan")],
                   "learning_rate": [0.1] * 3}
        epoch = [0, 1, 2]
    out = plot_history(History(), tmp_path / "h.png")
    img = read_png(out)
    assert img.shape == (360, 960, 3)  # two panels: loss, accuracy (no learning-rate panel)
    assert _has(img[:, :480], TRAIN_COLOR) and _has(img[:, :480], VAL_COLOR)
    assert _has(img[:, 480:], TRAIN_COLOR) and not _has(img[:, 480:], VAL_COLOR)
    img = read_png(plot_history(History.history, str(tmp_path / "l.png"), metrics=["loss"]))
    assert img.shape == (360, 480, 3)
    with pytest.raises(InputError, match="no metric"):
        plot_history(History(), tmp_path / "x.png", metrics=["auc"])
    with pytest.raises(InputError, match="empty"):
        plot_history({}, tmp_path / "x.png")


class FakeLayer:
    def __init__(self, name, output_shape=None):
        self.name = name
        if output_shape is not None:
            self.output_shape = output_shape
            self.input_shape = (None, 3)


class Tensor:
    def __init__(self, layer):
        self._keras_history = (layer, 0, 0)


class CallNode:
    def __init__(self, *parents):
        self.input_tensors = [Tensor(p) for p in parents]


def test_model_to_dot_and_plot_model_chain(tmp_path):
    class Model:
        name = "seq"
        layers = [FakeLayer("d1", (None, 4)), FakeLayer("act", (None, 4)), FakeLayer("d2", (None, 2))]
    dot = model_to_dot(Model(), show_shapes=True)
    assert dot.startswith('digraph "seq" {') and "layer0 -> layer1;" in dot and "layer1 -> layer2;" in dot
    assert 'label="d1: FakeLayer\\ninput:  (None, 3)\\noutput: (None, 4)"' in dot
    img = read_png(plot_model(Model(), tmp_path / "m.png", show_shapes=True))
    assert img.shape[0] > img.shape[1] > 50  # a vertical chain
    text = open(plot_model(Model(), str(tmp_path / "m.dot"))).read()
    assert "layer1 -> layer2;" in text
    with pytest.raises(InputError, match="no layers"):
        plot_model(object(), str(tmp_path / "x.png"))


def test_plot_model_functional_graph(tmp_path):
    a, b = FakeLayer("in_a"), FakeLayer("in_b")
    da, db, cat = FakeLayer("da"), FakeLayer("db"), FakeLayer("cat")
    da._inbound_nodes, db._inbound_nodes = [CallNode(a)], [CallNode(b)]
    cat._inbound_nodes = [CallNode(da, db)]

    class Model:
        layers = [a, b, da, db, cat]
    dot = model_to_dot(Model(), rankdir="LR")
    for edge in ("layer0 -> layer2", "layer1 -> layer3", "layer2 -> layer4", "layer3 -> layer4"):
        assert edge in dot
    assert "layer0 -> layer1" not in dot and "rankdir=LR" in dot
    img = read_png(plot_model(Model(), str(tmp_path / "f.png")))
    assert img.shape[1] > img.shape[0] / 2  # two boxes side by side in the first rows
    with pytest.raises(InputError):
        model_to_dot(Model(), rankdir="XY")


def test_plot_model_real_layers(tmp_path):
    layers = pytest.importorskip("graphc.keras.layers")
    x = layers.Input((8,), name="x")
    d = layers.Dense(4, name="hidden")
    y = layers.Dense(2, name="out")
    y(d(x))

    class Model:
        pass
    m = Model()
    m.layers = [x._keras_history[0], d, y]
    dot = model_to_dot(m, show_shapes=True)
    assert "layer0 -> layer1;" in dot and "layer1 -> layer2;" in dot and "(None, 4)" in dot
    assert read_png(plot_model(m, str(tmp_path / "r.png"), show_shapes=True)).ndim == 3
