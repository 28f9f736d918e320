"""Saving and loading models: one zip file, no pickle, atomic writes.

Model file (``model.save("m.keras")``) -- a zip archive holding:

- ``metadata.json``: ``{"format": "graphc.keras", "format_version": 1, "graphc_version": ...,
  "saved_at": ...}``
- ``config.json``: ``{"class_name": ..., "config": <model.get_config()>, "compile_config":
  {"optimizer", "loss", "loss_weights", "metrics"} or null}``
- ``weights/index.json`` and ``weights/00000.npy`` ...: the arrays of ``model.get_weights()``,
  in that order (Keras's order and shapes: a Dense kernel is (in, out));
- ``optimizer/index.json`` and ``optimizer/00000.npy`` ...: the optimizer's variables
  (iterations, learning rate, slots), so training can resume.

Weights file (``model.save_weights("w.weights.npz")``): a NumPy ``.npz`` with arrays ``w00000``,
``w00001``, ... in ``get_weights()`` order.

Arrays are read with ``np.load(..., allow_pickle=False)`` and configs are JSON, so loading a file
never runs code from it: Lambda layers and custom classes are found through ``custom_objects``.
Every write goes to a temporary file in the same directory, is fsynced and then renamed over
the target (``os.replace``), so a failed save leaves any previous file intact. A corrupt,
truncated or foreign file raises :class:`graphc.errors.ModelFileError`.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphc.errors import GraphcError, InputError, ModelFileError
from graphc.keras.serialization import custom_object_scope, register_keras_serializable  # noqa: F401

FORMAT = "graphc.keras"
FORMAT_VERSION = 1


def _graphc_version() -> str:
    import graphc
    return str(getattr(graphc, "__version__", "unknown"))


def atomic_write(path: str, write: Callable[[Any], None], overwrite: bool = True) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, fsync it and rename it
    over ``path``; on any error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise InputError(f"{path} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(a, order="C"), allow_pickle=False)
    return buf.getvalue()


def _write_arrays(z: zipfile.ZipFile, folder: str, arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    index = []
    for i, (a, n) in enumerate(zip(arrays, names)):
        z.writestr(f"{folder}/{i:05d}.npy", _npy_bytes(a))
        index.append({"name": n, "shape": list(a.shape), "dtype": a.dtype.name})
    z.writestr(f"{folder}/index.json", json.dumps(index))


def save_model(model: Any, filepath: str, overwrite: bool = True) -> None:
    """Write ``model`` (architecture, weights, compile settings, optimizer state) to ``filepath``."""
    config = {"class_name": _class_name(model), "config": model.get_config(),
              "compile_config": getattr(model, "_compile_config", None) if getattr(model, "compiled", False) else None}
    config_text = json.dumps(config)
    weights = model.get_weights()
    names = [str(n.name) for n in model.weights]
    opt = getattr(model, "optimizer", None)
    opt_vars = opt.variables if opt is not None and getattr(opt, "_slot_order", None) else []
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "graphc_version": _graphc_version(),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", config_text)
            _write_arrays(z, "weights", weights, names)
            if opt_vars:
                _write_arrays(z, "optimizer", [v.get_value() for v in opt_vars], [str(v.name) for v in opt_vars])

    atomic_write(filepath, write, overwrite)


def _class_name(model: Any) -> str:
    name = type(model).__name__
    return "Functional" if name == "Model" else name


class _Archive:
    """Reads a model zip, turning every low-level failure into a ModelFileError."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no such model file: {self.path}")
        try:
            self.zip = zipfile.ZipFile(self.path, "r")
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ModelFileError(f"{self.path} is not a graphc model file (not a valid zip archive: {e}); it may be "
                                 "truncated or corrupt") from None
        self.names = set(self.zip.namelist())

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise ModelFileError(f"{self.path}: the model file has no {name!r} entry (truncated or not a graphc "
                                 "model file)")
        try:
            return self.zip.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError) as e:
            raise ModelFileError(f"{self.path}: entry {name!r} is corrupt ({e})") from None

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{self.path}: {name} is not valid JSON ({e})") from None

    def arrays(self, folder: str) -> list[np.ndarray]:
        index = self.json(f"{folder}/index.json")
        out = []
        for i, entry in enumerate(index):
            try:
                a = np.load(io.BytesIO(self.read(f"{folder}/{i:05d}.npy")), allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise ModelFileError(f"{self.path}: array {folder}/{i:05d}.npy is corrupt ({e})") from None
            if list(a.shape) != list(entry.get("shape", a.shape)):
                raise ModelFileError(f"{self.path}: array {folder}/{i:05d}.npy has shape {a.shape}, the index says "
                                     f"{entry.get('shape')}")
            out.append(a)
        return out

    def close(self) -> None:
        self.zip.close()


def _check_meta(ar: _Archive) -> None:
    meta = ar.json("metadata.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{ar.path}: not a graphc model file (metadata format is {meta.get('format')!r})"
                             if isinstance(meta, dict) else f"{ar.path}: bad metadata")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{ar.path}: written by a newer graphc (format version {meta.get('format_version')}, "
                             f"this graphc reads up to {FORMAT_VERSION})")


def _set_weights(model: Any, arrays: list[np.ndarray], path: str) -> None:
    nodes = model.weights
    if len(arrays) != len(nodes):
        raise ModelFileError(f"{path}: the file has {len(arrays)} weight arrays but the model {model.name!r} has "
                             f"{len(nodes)} weights")
    for n, a in zip(nodes, arrays):
        if tuple(a.shape) != tuple(n.shape):
            raise ModelFileError(f"{path}: weight {n.name!r} has shape {tuple(n.shape)} in the model but "
                                 f"{tuple(a.shape)} in the file")
    model.set_weights(arrays)


def load_model(filepath: str, custom_objects: Mapping[str, Any] | None = None, compile: bool = True) -> Any:
    """Rebuild a model written by :func:`save_model`."""
    from graphc.keras.models import model_from_config
    from graphc.keras import losses as losses_mod, optimizers as opt_mod
    ar = _Archive(filepath)
    try:
        _check_meta(ar)
        cfg = ar.json("config.json")
        if not isinstance(cfg, dict) or "class_name" not in cfg:
            raise ModelFileError(f"{ar.path}: config.json has no model class_name")
        with custom_object_scope(custom_objects):
            try:
                model = model_from_config(cfg, custom_objects)
            except ModelFileError:
                raise
            except (KeyError, TypeError) as e:
                raise ModelFileError(f"{ar.path}: the model config is invalid ({type(e).__name__}: {e})") from None
            weights = ar.arrays("weights")
            _set_weights(model, weights, ar.path)
            cc = cfg.get("compile_config")
            if compile and cc:
                loss = cc.get("loss")
                model.compile(optimizer=opt_mod.deserialize(cc["optimizer"], custom_objects),
                              loss=_deser_loss(loss, custom_objects), loss_weights=cc.get("loss_weights"),
                              metrics=_deser_metrics(cc.get("metrics"), custom_objects))
                if "optimizer/index.json" in ar.names:
                    opt_arrays = ar.arrays("optimizer")
                    model.optimizer.build(_trainable_nodes(model))
                    if len(opt_arrays) == len(model.optimizer.variables):
                        model.optimizer.set_weights(opt_arrays)
    finally:
        ar.close()
    return model


def _trainable_nodes(model: Any) -> list:
    seen, out = set(), []
    for r in model._trainable_records():
        if id(r.node) not in seen:
            seen.add(id(r.node))
            out.append(r.node)
    return out


def _deser_loss(loss: Any, custom_objects: Mapping[str, Any] | None) -> Any:
    from graphc.keras import losses as losses_mod
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: _deser_loss(v, custom_objects) for k, v in loss.items()}
    if isinstance(loss, list):
        return [_deser_loss(v, custom_objects) for v in loss]
    if loss is None:
        return None
    return losses_mod.deserialize(loss, custom_objects)


def _deser_metrics(m: Any, custom_objects: Mapping[str, Any] | None) -> Any:
    from graphc.keras import metrics as metrics_mod
    if m is None or isinstance(m, str):
        return m
    if isinstance(m, list):
        return [_deser_metrics(v, custom_objects) for v in m]
    if isinstance(m, dict) and "class_name" in m:
        return metrics_mod.deserialize(m, custom_objects)
    if isinstance(m, dict):
        return {k: _deser_metrics(v, custom_objects) for k, v in m.items()}
    return m


def save_weights(model: Any, filepath: str, overwrite: bool = True) -> None:
    """Write ``model.get_weights()`` to a ``.weights.npz`` file (arrays ``w00000``, ...)."""
    arrays = {f"w{i:05d}": a for i, a in enumerate(model.get_weights())}
    atomic_write(filepath, lambda f: np.savez(f, **arrays), overwrite)


def load_weights(model: Any, filepath: str) -> None:
    """Load weights from a ``.weights.npz`` file or from a full model file."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    try:
        with zipfile.ZipFile(path) as z:
            full_model = "metadata.json" in z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a weights file (not a valid zip/npz archive: {e}); it may be truncated "
                             "or corrupt") from None
    if full_model:
        ar = _Archive(path)
        try:
            _check_meta(ar)
            _set_weights(model, ar.arrays("weights"), path)
        finally:
            ar.close()
        return
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(k for k in data.files if k.startswith("w"))
            arrays = [data[k] for k in keys]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelFileError(f"{path}: corrupt weights file ({e})") from None
    _set_weights(model, arrays, path)


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "atomic_write", "custom_object_scope",
           "register_keras_serializable", "FORMAT", "FORMAT_VERSION", "GraphcError"]
