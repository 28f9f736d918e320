"""Reading and checking an artifact directory; calling its shared library through ctypes.

Nothing here imports graphc or llvmlite: stdlib + numpy only.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
from typing import Any

import numpy as np

from graphc_runtime._cpu import machine_arch, missing_features

FORMAT_VERSION = 1
WEIGHTS_VERSION = 1
_DTYPES = {"float32", "float64", "int32", "int64", "bool"}


class ArtifactError(Exception):
    """An artifact that cannot be used here: missing, corrupted, truncated, or built for
    another format version, CPU or set of weights. The message says which."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(path: str) -> dict:
    """The manifest of the artifact directory ``path``, checked for format and version."""
    mpath = os.path.join(path, "manifest.json")
    if not os.path.isdir(path):
        raise ArtifactError(f"{path}: not an artifact directory")
    if not os.path.isfile(mpath):
        raise ArtifactError(f"{path}: no manifest.json (not a graphc artifact)")
    try:
        with open(mpath, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{mpath}: corrupted manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "graphc-artifact":
        raise ArtifactError(f"{mpath}: not a graphc artifact manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format version {version!r}; this graphc_runtime reads version "
                            f"{FORMAT_VERSION} (re-export it, or use a matching graphc_runtime)")
    for key in ("name", "inputs", "outputs", "target", "files", "weights", "entry_points"):
        if key not in manifest:
            raise ArtifactError(f"{mpath}: corrupted manifest (no {key!r})")
    names = list(manifest["files"].values()) + [manifest["weights"].get("file")] \
        if isinstance(manifest["files"], dict) and isinstance(manifest["weights"], dict) else [None]
    for n in names:
        if not isinstance(n, str) or not n or os.path.basename(n) != n or n.startswith("."):
            raise ArtifactError(f"{mpath}: corrupted manifest (bad file name {n!r})")
    for io in manifest["inputs"] + manifest["outputs"]:
        if io.get("dtype") not in _DTYPES or not isinstance(io.get("shape"), list):
            raise ArtifactError(f"{mpath}: corrupted manifest (bad input/output entry {io!r})")
    return manifest


def check_target(manifest: dict, path: str) -> None:
    """Refuse an artifact built for another architecture or for CPU features this one lacks."""
    target = manifest["target"]
    arch = str(target.get("triple", "")).split("-")[0]
    here = machine_arch()
    if arch != here:
        raise ArtifactError(f"{path}: built for {target.get('triple')} (cpu {target.get('cpu')}), "
                            f"but this machine is {here}")
    missing = missing_features(arch, list(target.get("features", [])))
    if missing:
        raise ArtifactError(f"{path}: built for cpu {target.get('cpu')!r} with features this CPU lacks: "
                            f"{', '.join(missing)} (export with target='x86_64' for a portable artifact)")


def check_files(manifest: dict, path: str) -> tuple[str, str]:
    """Check the library and weights against the manifest's sizes and checksums; return their paths."""
    files = manifest["files"]
    if "library" not in files:
        raise ArtifactError(f"{path}: has no shared library (built for {manifest['target'].get('triple')} "
                            "without a linker: link the object file and wrapper source yourself)")
    lib = os.path.join(path, files["library"])
    sums = manifest.get("sha256", {})
    if not os.path.isfile(lib):
        raise ArtifactError(f"{path}: shared library {files['library']} is missing")
    if sums.get(files["library"]) != _sha256(lib):
        raise ArtifactError(f"{path}: shared library {files['library']} is corrupted (sha256 does not match the "
                            "manifest)")
    w = manifest["weights"]
    wpath = os.path.join(path, w["file"])
    if not os.path.isfile(wpath):
        raise ArtifactError(f"{path}: weights file {w['file']} is missing")
    size = os.path.getsize(wpath)
    if size != w.get("size"):
        raise ArtifactError(f"{path}: weights file {w['file']} has {size} bytes, the manifest says {w.get('size')} "
                            "(truncated or replaced)")
    with open(wpath, "rb") as f:
        head = f.read(32)
    magic, version, _count, _data, total = struct.unpack("<8sIIQQ", head)
    if magic != b"GCWEIGHT":
        raise ArtifactError(f"{path}: {w['file']} is not a graphc weights file")
    if version != WEIGHTS_VERSION:
        raise ArtifactError(f"{path}: weights format version {version}, this runtime reads {WEIGHTS_VERSION}")
    if total != size:
        raise ArtifactError(f"{path}: weights file {w['file']} is truncated")
    if _sha256(wpath) != w.get("sha256"):
        raise ArtifactError(f"{path}: weights checksum mismatch: {w['file']} does not match the manifest's sha256 "
                            "(corrupted, or weights of another model)")
    return lib, wpath


class Artifact:
    """A loaded artifact: call it with arrays (positionally or by input name); it returns the
    output array (or a list of them, one per output). ``inputs``/``outputs`` describe the
    signature from the manifest. Not thread-safe: load one per thread."""

    def __init__(self, path: str, manifest: dict, lib_path: str, weights_path: str):
        self.path = path
        self.manifest = manifest
        self.name = manifest["name"]
        self.inputs = manifest["inputs"]
        self.outputs = manifest["outputs"]
        try:
            self._lib = ctypes.CDLL(os.path.abspath(lib_path))
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot load the shared library: {exc}") from None
        ep = manifest["entry_points"]
        try:
            self._create = self._fn(ep["create"], ctypes.c_void_p, ctypes.c_char_p)
            self._destroy = self._fn(ep["destroy"], None, ctypes.c_void_p)
            self._run = self._fn(ep["run"], ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64)
            self._error = self._fn(ep["last_error"], ctypes.c_char_p)
            self._out_shape = self._fn(ep["output_shape"], ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                                       ctypes.c_void_p)
            n_in = self._fn(ep["num_inputs"], ctypes.c_int)()
            n_out = self._fn(ep["num_outputs"], ctypes.c_int)()
        except (AttributeError, KeyError) as exc:
            raise ArtifactError(f"{path}: the library lacks an entry point of the manifest ({exc})") from None
        if n_in != len(self.inputs) or n_out != len(self.outputs):
            raise ArtifactError(f"{path}: the library has {n_in} inputs/{n_out} outputs, the manifest "
                                f"{len(self.inputs)}/{len(self.outputs)}")
        handle = self._create(os.path.abspath(weights_path).encode())
        if not handle:
            raise ArtifactError(f"{path}: {self._error().decode(errors='replace')}")
        self._handle = handle
        self._in_ptrs = (ctypes.c_void_p * max(n_in, 1))()
        self._out_ptrs = (ctypes.c_void_p * max(n_out, 1))()
        self._dims = np.zeros(8, np.int64)

    def _fn(self, name: str, restype: Any, *argtypes: Any) -> Any:
        f = getattr(self._lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)
        return f

    def _arrays(self, args: tuple, kwargs: dict) -> list[np.ndarray]:
        names = [x["name"] for x in self.inputs]
        if kwargs:
            args = list(args) + [None] * (len(names) - len(args))
            for k, v in kwargs.items():
                if k not in names:
                    raise TypeError(f"{self.name}: unknown input {k!r}; inputs are {names}")
                args[names.index(k)] = v
        if len(args) != len(names) or any(a is None for a in args):
            raise TypeError(f"{self.name}: expected {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        out = []
        for spec, a in zip(self.inputs, args):
            arr = np.asarray(a)
            want = np.dtype(spec["dtype"])
            if arr.dtype != want:
                if not np.can_cast(arr.dtype, want, "same_kind"):
                    raise TypeError(f"{self.name}: input {spec['name']!r} expects {want}, got {arr.dtype}")
                arr = arr.astype(want)
            shape = spec["shape"]
            if arr.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, arr.shape)):
                raise ValueError(f"{self.name}: input {spec['name']!r} expects shape "
                                 f"{tuple('batch' if d is None else d for d in shape)}, got {arr.shape}")
            out.append(np.ascontiguousarray(arr))
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the artifact on one batch; returns the output(s) as new arrays."""
        arrays = self._arrays(args, kwargs)
        batches = {a.shape[0] for a, s in zip(arrays, self.inputs) if s["shape"] and s["shape"][0] is None}
        if len(batches) > 1:
            raise ValueError(f"{self.name}: inputs disagree on the batch size: {sorted(batches)}")
        batch = batches.pop() if batches else 1
        outs = []
        dims_ptr = self._dims.ctypes.data
        for i, spec in enumerate(self.outputs):
            rank = self._out_shape(i, batch, dims_ptr)
            outs.append(np.empty(tuple(int(d) for d in self._dims[:rank]), spec["dtype"]))
            self._out_ptrs[i] = outs[-1].ctypes.data
        for i, a in enumerate(arrays):
            self._in_ptrs[i] = a.ctypes.data
        status = self._run(self._handle, self._in_ptrs, self._out_ptrs, batch)
        if status:
            raise RuntimeError(f"{self.name}: {self._error().decode(errors='replace')}")
        return outs[0] if len(outs) == 1 else outs

    def get_weights(self) -> list[np.ndarray]:
        """The current weights (train-step artifacts), in the order of the weights file."""
        ep = self.manifest["entry_points"]
        if "get_weight" not in ep:
            raise ArtifactError(f"{self.name}: not a train-step artifact (no get_weight entry point)")
        get = self._fn(ep["get_weight"], ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int64)
        out = []
        for i, spec in enumerate(self.manifest["weights"]["arrays"]):
            a = np.empty(spec["shape"], spec["dtype"])
            if get(self._handle, i, a.ctypes.data, a.nbytes):
                raise RuntimeError(f"{self.name}: {self._error().decode(errors='replace')}")
            out.append(a)
        return out

    def close(self) -> None:
        """Free the native handle (also done when the object is collected)."""
        if getattr(self, "_handle", None):
            self._destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        sig = ", ".join(f"{x['name']}: {x['dtype']}{tuple('N' if d is None else d for d in x['shape'])}"
                        for x in self.inputs)
        return f"<graphc artifact {self.name}({sig}) at {self.path!r}>"


def load(path: str) -> Artifact:
    """Load the artifact directory ``path`` and return a callable with its manifest's signature.

    Raises ArtifactError (never crashes) for a missing, corrupted or truncated artifact, a
    format version this runtime does not read, a target this CPU cannot run, or weights
    whose checksum does not match.
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    check_target(manifest, path)
    lib, weights = check_files(manifest, path)
    return Artifact(path, manifest, lib, weights)
