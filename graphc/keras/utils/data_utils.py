"""``get_file``: download a file once, verify its checksum, keep it in a cache.

The cache lives in ``~/.graphc`` (``cache_dir/cache_subdir``, by default
``~/.graphc/datasets``). The ``GRAPHC_HOME`` environment variable moves it; :func:`graphc_home`
is the only place that reads it. A download goes to a temporary file next to its destination,
is verified, and only then renamed into place (atomically), so the cache never holds a partial
or unverified file. A cached file whose checksum no longer matches is downloaded again.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from graphc.errors import GraphcError

_CHUNK = 1 << 20


class DownloadError(GraphcError, OSError):
    """A file could not be downloaded (no network, server error, incomplete transfer)."""


class ChecksumError(GraphcError, ValueError):
    """A downloaded file does not have the checksum it should have."""


def graphc_home() -> str:
    """graphc's data directory: ``$GRAPHC_HOME`` if set, else ``~/.graphc``."""
    from graphc.env import graphc_home as _home
    return _home()


def _hash_algorithm(file_hash: str, algorithm: str) -> str:
    if algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    if algorithm not in ("sha256", "md5"):
        raise ValueError(f"hash_algorithm must be 'auto', 'sha256' or 'md5', got {algorithm!r}")
    return algorithm


def hash_file(path: str, algorithm: str = "sha256") -> str:
    """The hex digest of a file (``sha256`` or ``md5``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_file(path: str, file_hash: str, algorithm: str = "auto") -> bool:
    """Whether the file's digest equals ``file_hash`` (algorithm from its length if auto)."""
    algo = _hash_algorithm(file_hash, algorithm)
    return hash_file(path, algo) == file_hash.lower()


def _datadir(cache_dir: str | None, cache_subdir: str) -> str:
    base = os.path.expanduser(cache_dir) if cache_dir else graphc_home()
    datadir = os.path.join(base, cache_subdir)
    try:
        os.makedirs(datadir, exist_ok=True)
        if not os.access(datadir, os.W_OK):
            raise PermissionError(datadir)
    except PermissionError:
        # Keras's rule: an unwritable home falls back to the temporary directory.
        datadir = os.path.join(tempfile.gettempdir(), ".graphc", cache_subdir)
        os.makedirs(datadir, exist_ok=True)
    return datadir


def _download(origin: str, dest: str, file_hash: str | None, algorithm: str, timeout: float) -> None:
    """Fetch ``origin`` into a temporary file beside ``dest``; verify; rename into place."""
    directory = os.path.dirname(dest) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=directory)
    h = hashlib.new(algorithm) if file_hash else None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(origin, timeout=timeout) as resp:
                    expected = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                    size = 0
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(chunk)
                        size += len(chunk)
                        if h is not None:
                            h.update(chunk)
            except urllib.error.HTTPError as e:
                raise DownloadError(f"could not download {origin}: the server answered HTTP {e.code} "
                                    f"({e.reason})") from e
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise DownloadError(f"could not download {origin}: {reason}. Are you offline? You can also "
                                    f"fetch the file yourself and put it at {dest}") from e
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise DownloadError(f"incomplete download of {origin}: got {size} of {expected} bytes")
        if h is not None and h.hexdigest() != file_hash.lower():  # type: ignore[union-attr]
            raise ChecksumError(f"the file downloaded from {origin} has {algorithm} {h.hexdigest()}, "
                                f"expected {file_hash}; it was not cached (a corrupted transfer or a "
                                "changed file on the server)")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _strip_archive_suffix(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract_archive(path: str, dest: str, archive_format: str = "auto") -> bool:
    """Extract a tar or zip archive into ``dest``, refusing members that would land outside it
    (absolute paths, ``..``, links out). Returns False if ``path`` is not such an archive."""
    formats = ["tar", "zip"] if archive_format == "auto" else [archive_format] if archive_format else []
    dest_abs = os.path.abspath(dest)

    def inside(name: str) -> bool:
        target = os.path.abspath(os.path.join(dest_abs, name))
        return os.path.commonpath([dest_abs, target]) == dest_abs

    for fmt in formats:
        if fmt == "tar" and tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                for m in tf.getmembers():
                    if not inside(m.name) or ((m.issym() or m.islnk()) and not inside(
                            os.path.join(os.path.dirname(m.name), m.linkname))):
                        raise ValueError(f"archive {path} has a member that escapes its folder: {m.name!r}")
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, filter="data")
                else:  # pragma: no cover - Python < 3.11.4; members were checked above
                    tf.extractall(dest)
            return True
        if fmt == "zip" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    if not inside(name):
                        raise ValueError(f"archive {path} has a member that escapes its folder: {name!r}")
                zf.extractall(dest)
            return True
    return False


def get_file(fname: str | None = None, origin: str | None = None, untar: bool = False,
             md5_hash: str | None = None, file_hash: str | None = None, cache_subdir: str = "datasets",
             hash_algorithm: str = "auto", extract: bool = False, archive_format: str = "auto",
             cache_dir: str | None = None, force_download: bool = False, timeout: float = 60.0) -> str:
    """Download ``origin`` to ``cache_dir/cache_subdir/fname`` unless a good copy is cached,
    and return its path, as ``keras.utils.get_file``.

    ``file_hash`` (sha256, or md5 for 32 hex digits; ``md5_hash`` is the old spelling) is
    checked on every download and on the cached copy: a mismatch on download raises
    :class:`ChecksumError` and caches nothing; a cached copy that fails the check is
    downloaded again. ``extract=True`` extracts a tar/zip archive into the cache directory
    (and returns the archive's path); ``untar=True`` (legacy) downloads ``fname + ".tar.gz"``,
    extracts it and returns ``cache_dir/cache_subdir/fname``. Any URL scheme urllib opens
    works, ``file://`` included. Offline, a :class:`DownloadError` says so.
    """
    if origin is None:
        raise ValueError('get_file: please specify the "origin" argument (the URL to download from)')
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"get_file: cannot derive a file name from origin {origin!r}; pass fname")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = _hash_algorithm(file_hash, hash_algorithm) if file_hash else "sha256"
    datadir = _datadir(cache_dir, cache_subdir)
    if untar:
        untar_path = os.path.join(datadir, _strip_archive_suffix(fname))
        fpath = untar_path + ".tar.gz"
    else:
        fpath = os.path.join(datadir, fname)

    download = force_download or not os.path.exists(fpath)
    if not download and file_hash is not None and not validate_file(fpath, file_hash, algorithm):
        print(f"A cached copy of {fname} at {fpath} does not match its {algorithm} checksum "
              "(it is corrupt or outdated); downloading it again.", file=sys.stderr)
        download = True
    if download:
        print(f"Downloading data from {origin}")
        _download(origin, fpath, file_hash, algorithm, timeout)

    if untar:
        if download or not os.path.exists(untar_path):
            if os.path.isdir(untar_path):
                shutil.rmtree(untar_path)
            extract_archive(fpath, datadir, "tar")
        return untar_path
    if extract:
        extract_archive(fpath, datadir, archive_format)
    return fpath
