"""``export()``: a compiled function or a Keras-style model -> an artifact directory.

The stages are the same as ``graphc.function``'s native path (optimise, schedule, emit LLVM
IR), then ``compile_object`` for the chosen target, a generated C wrapper, ``cc -shared``,
the weights file and ``manifest.json``. See docs/artifact_format.md.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from graphc.aot import csource
from graphc.aot.weights import DTYPE_CODES, VERSION as WEIGHTS_VERSION, pack_weights, sha256
from graphc.errors import CompileError, InputError

FORMAT_VERSION = 1
_BATCH = sympy.Symbol("batch")


@dataclass(frozen=True)
class Target:
    """Where the artifact's code runs: LLVM triple, CPU name and feature string."""

    triple: str
    cpu: str
    features: str

    @property
    def arch(self) -> str:
        return self.triple.split("-")[0]


def resolve_target(target: str = "native", cpu: str | None = None, features: str | None = None) -> Target:
    """``"native"`` (this machine's CPU and features), ``"x86_64"``, ``"aarch64"`` (generic CPU
    unless ``cpu`` is given), or a full LLVM triple."""
    from graphc.backend.jit import host_target
    if target == "native":
        host = host_target()
        if features is None:  # the host's features fit the host's CPU only; LLVM derives them for another
            features = host.features if cpu in (None, host.cpu) else ""
        return Target(host.triple, cpu or host.cpu, features)
    triples = {"x86_64": ("x86_64-unknown-linux-gnu", "x86-64"), "aarch64": ("aarch64-unknown-linux-gnu", "generic")}
    if target in triples:
        triple, default_cpu = triples[target]
    elif re.fullmatch(r"[a-z0-9_]+(-[A-Za-z0-9_.]+){1,3}", target or ""):
        triple, default_cpu = target, "generic"
    else:
        raise InputError(f'target must be "native", "x86_64", "aarch64" or an LLVM triple, got {target!r}')
    return Target(triple, cpu or default_cpu, features or "")


def _c_name(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", name or "model")
    return out if re.match(r"[A-Za-z_]", out) else "m_" + out


def _model_function(model: Any, train: bool) -> tuple[Any, list[str], list[str]]:
    """A reference-mode Function of the model (inference, or the training step), with names."""
    import graphc as gc
    from graphc.frontend import ops
    from graphc.keras.layers.base import call_context
    if not getattr(model, "inputs", None):
        raise InputError(f"model {model.name!r} is not built: call it on data (or fit it) before exporting")
    in_names = list(model.input_names)
    out_names = list(model.output_names)
    if not train:
        xs = model._input_placeholders()
        with call_context(False):
            outs = model._run_outputs(xs)
        outs = [ops.cast(o, "float32") if o.dtype not in ("float32", "float64") else o for o in outs]
        return gc.function(xs, outs, mode="reference", name=f"{model.name}_predict"), in_names, out_names
    if getattr(model, "optimizer", None) is None:
        raise InputError(f"model {model.name!r}: compile() it with an optimizer and loss before exporting "
                         "a training step")
    ys = [np.zeros((1,) + _label_shape(lobj, t), "float32") for (lobj, _), t in zip(model._resolve_losses(),
                                                                                    model.outputs)]
    sws = [np.zeros((1,), "float32") for _ in model.outputs]
    saved = model._run_mode
    model._run_mode = "reference"
    try:
        fn = model._build_fn("train", ys, sws)
    finally:
        model._run_mode = saved
    names = in_names + [f"y_{n}" for n in out_names] + [f"sample_weight_{n}" for n in out_names]
    outs = ["loss"] + [f"loss_{n}" for n in out_names] + out_names
    return fn, names, outs


def _label_shape(loss: Any, output: Any) -> tuple:
    """Per-sample label shape for a loss: integer class labels for sparse losses, else the output's."""
    name = str(getattr(loss, "name", "") or getattr(loss, "__name__", "") or type(loss).__name__).lower()
    return () if "sparse" in name else tuple(output.shape[1:])


def _dims(shape: tuple, symbols: list) -> list[str]:
    """C expressions of ``shape`` in terms of ``batch`` (every symbol is the batch size)."""
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)):
            out.append(str(int(d)))
        else:
            expr = d.subs({s: _BATCH for s in d.free_symbols})
            out.append(f"(int64_t)({sympy.ccode(expr)})")
    return out


def _manifest_shape(shape: tuple) -> list:
    return [int(d) if isinstance(d, (int, np.integer)) else None for d in shape]


def _run(cmd: list[str], cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise CompileError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")


def _cross_cc(arch: str) -> str | None:
    if arch == platform.machine():
        return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    return shutil.which(f"{arch}-linux-gnu-gcc")


def export(model_or_function: Any, path: str, target: str = "native", cpu: str | None = None,
           name: str | None = None, train: bool = False, features: str | None = None,
           opt_level: int = 3) -> dict:
    """Compile ``model_or_function`` ahead of time into the artifact directory ``path``.

    ``model_or_function`` is a ``graphc.Function`` or a Keras-style model (its inference
    function, or with ``train=True`` its training step, which updates the weights in place).
    ``target`` is "native", "x86_64", "aarch64" or an LLVM triple; ``cpu``/``features`` pick
    the CPU (default: the host's for "native", generic otherwise). ``name`` prefixes every C
    symbol (default: the model's or function's name). Writes ``libgraphc_<name>.so`` (when a C
    compiler for the target is present; otherwise ``<name>.o`` and the wrapper source),
    ``<name>.h``, ``<name>.weights`` and ``manifest.json``; returns the manifest.
    Exporting the same model twice gives byte-identical files.
    """
    from graphc.compile import Function
    from graphc.frontend.variables import storage
    from graphc.backend.jit import compile_object
    from graphc.ir.shapes import RNG_STEP
    from graphc.lower.cpu import emit_module
    from graphc.lower.schedule import schedule

    if isinstance(model_or_function, Function):
        if train:
            raise InputError("train=True is for Keras-style models; a Function exports with its own updates")
        fn = model_or_function
        in_names = [str(x.name) for x in fn.inputs]
        out_names = [f"output_{i}" for i in range(fn._n_outputs)]
        default_name = fn.name
    elif hasattr(model_or_function, "_run_outputs"):
        fn, in_names, out_names = _model_function(model_or_function, train)
        default_name = model_or_function.name + ("_train" if train else "")
    else:
        raise InputError(f"export() takes a graphc.Function or a model, got {type(model_or_function).__name__}")
    name = _c_name(name or default_name)
    tgt = resolve_target(target, cpu, features)

    targets = [t for t, _ in fn.updates]
    n_user = len(fn.graph.outputs) - len(targets)
    program = schedule(list(fn.graph.outputs), list(fn.inputs), list(fn.shared), n_user, targets)
    symbols = list(program.symbols)
    for s in symbols:
        if s != RNG_STEP and not any(not isinstance(d, int) and d == s for x in fn.inputs for d in x.shape[:1]):
            raise InputError(f"export: symbolic size {s} is not the batch (leading) dimension of an input; "
                             "artifacts support one batch size per call")
    llvm_ir = emit_module(program, f"{name}__impl")
    # the generated entry points stay inside the shared library: only the C API is exported
    llvm_ir = re.sub(rf"^define (i32|i64) @(\"?){name}__impl_", rf"define hidden \1 @\2{name}__impl_", llvm_ir,
                     flags=re.M)
    obj = compile_object(llvm_ir, triple=tgt.triple, cpu=tgt.cpu, features=tgt.features, opt_level=opt_level)

    entries = [(f"shared/{s.name}", storage(s).array) for s in fn.shared]
    entries += [(f"const/{i}", a) for i, (_, a) in enumerate(program.consts)]
    blob = pack_weights(entries)
    digest = sha256(blob)
    spec = csource.CSpec(
        name=name, format_version=FORMAT_VERSION, weights_format=WEIGHTS_VERSION,
        inputs=[(n, b.dtype, _dims(b.shape, symbols)) for n, b in zip(in_names, program.inputs)],
        outputs=[(n, b.dtype, _dims(b.shape, symbols)) for n, b in zip(out_names, program.outputs)],
        weights=[(DTYPE_CODES[np.asarray(a).dtype.name], tuple(np.shape(a)), int(np.asarray(a).nbytes))
                 for _, a in entries],
        n_shared=len(fn.shared), n_const=len(program.consts), n_syms=len(symbols),
        rng_index=symbols.index(RNG_STEP), sha256=bytes.fromhex(digest), train=train or bool(targets),
        cpu_features=tuple(f[1:] for f in tgt.features.split(",") if f.startswith("+")) if tgt.arch == "x86_64" else (),
        cpu_name=tgt.cpu)
    header, source = csource.render(spec)

    os.makedirs(path, exist_ok=True)
    files = {"header": f"{name}.h", "wrapper_source": f"{name}_wrapper.c", "weights": f"{name}.weights"}
    _write(path, files["header"], header.encode())
    _write(path, files["wrapper_source"], source.encode())
    _write(path, files["weights"], blob)
    cc = _cross_cc(tgt.arch)
    lib = f"libgraphc_{name}.so"
    if cc:
        with tempfile.TemporaryDirectory(prefix="graphc_export_") as tmp:
            _write(tmp, f"{name}.o", obj)
            _write(tmp, f"{name}.h", header.encode())
            _write(tmp, f"{name}_wrapper.c", source.encode())
            _run([cc, "-shared", "-fPIC", "-O2", "-std=gnu11", "-fvisibility=hidden", "-ffile-prefix-map=" + tmp + "=.",
                  "-Wl,-z,noexecstack", "-Wl,--hash-style=gnu", "-o", lib, f"{name}_wrapper.c", f"{name}.o"], tmp)
            with open(os.path.join(tmp, lib), "rb") as f:
                _write(path, lib, f.read())
        files["library"] = lib
        _remove(path, f"{name}.o")
    else:
        _write(path, f"{name}.o", obj)
        files["object"] = f"{name}.o"
        _remove(path, lib)
    manifest = {
        "format": "graphc-artifact",
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": "train_step" if train else ("function" if targets else "inference"),
        "entry_points": {k: f"{name}_{k}" for k in (
            "create", "run", "destroy", "last_error", "num_inputs", "num_outputs", "input_name", "output_name",
            "input_dtype", "output_dtype", "input_shape", "output_shape")},
        "inputs": [{"name": n, "dtype": b.dtype, "shape": _manifest_shape(b.shape)}
                   for n, b in zip(in_names, program.inputs)],
        "outputs": [{"name": n, "dtype": b.dtype, "shape": _manifest_shape(b.shape)}
                    for n, b in zip(out_names, program.outputs)],
        "batch_dimension": 0,
        "target": {"triple": tgt.triple, "cpu": tgt.cpu,
                   "features": sorted(f for f in tgt.features.split(",") if f.startswith("+"))},
        "files": files,
        "weights": {"file": files["weights"], "sha256": digest, "size": len(blob), "format_version": WEIGHTS_VERSION,
                    "arrays": [{"name": n, "dtype": np.asarray(a).dtype.name, "shape": list(np.shape(a))}
                               for n, a in entries]},
        "code_size": len(obj),
        "sha256": {f: sha256(_read(path, f)) for f in sorted(set(files.values()))},
    }
    if spec.train:
        manifest["entry_points"].update({k: f"{name}_{k}" for k in ("num_weights", "weight_nbytes", "get_weight",
                                                                      "set_weight")})
    _write(path, "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def _write(directory: str, filename: str, data: bytes) -> None:
    with open(os.path.join(directory, filename), "wb") as f:
        f.write(data)


def _read(directory: str, filename: str) -> bytes:
    with open(os.path.join(directory, filename), "rb") as f:
        return f.read()


def _remove(directory: str, filename: str) -> None:
    p = os.path.join(directory, filename)
    if os.path.exists(p):
        os.remove(p)
