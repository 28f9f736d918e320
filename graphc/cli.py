"""The ``graphc`` command: compile a saved model to an artifact, inspect, run and time artifacts.

    graphc compile model.keras -o digits_artifact [--target x86_64] [--cpu NAME] [--name NAME]
    graphc info digits_artifact
    graphc run digits_artifact --input x.npy [--output y.npy]
    graphc bench digits_artifact [--batch 32] [--repeat 200]

``info``, ``run`` and ``bench`` go through graphc_runtime (the same loader a deployed service
uses), found installed or in the source tree's runtime/ directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence


def _runtime():
    try:
        import graphc_runtime
    except ImportError:
        here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime")
        sys.path.insert(0, here)
        import graphc_runtime
    return graphc_runtime


def _cmd_compile(args: argparse.Namespace) -> int:
    from graphc.aot import export
    from graphc.keras.models import load_model
    model = load_model(args.model_file)
    manifest = export(model, args.output, target=args.target, cpu=args.cpu, name=args.name, train=args.train)
    files = manifest["files"]
    print(f"wrote {args.output}: {', '.join(sorted(files.values()))} + manifest.json "
          f"({manifest['target']['triple']}, cpu {manifest['target']['cpu']})")
    return 0


def _sizes(path: str, manifest: dict) -> str:
    files = manifest["files"]
    parts = []
    for key in ("library", "object", "weights", "header"):
        if key in files:
            parts.append(f"{key} {os.path.getsize(os.path.join(path, files[key]))} B")
    parts.append(f"generated code {manifest.get('code_size')} B")
    return ", ".join(parts)


def _cmd_info(args: argparse.Namespace) -> int:
    rt = _runtime()
    m = rt.read_manifest(args.artifact)
    if args.json:
        print(json.dumps(m, indent=2, sort_keys=True))
        return 0
    t = m["target"]
    print(f"artifact {m['name']} ({m.get('kind')}), format version {m['format_version']}")
    print(f"target   {t['triple']}, cpu {t['cpu']}, {len(t.get('features', []))} features")
    for title, items in (("inputs", m["inputs"]), ("outputs", m["outputs"])):
        print(f"{title}:")
        for x in items:
            shape = ", ".join("batch" if d is None else str(d) for d in x["shape"])
            print(f"  {x['name']}: {x['dtype']}[{shape}]")
    w = m["weights"]
    print(f"weights  {len(w['arrays'])} arrays, {w['size']} B, sha256 {w['sha256'][:16]}...")
    print(f"sizes    {_sizes(args.artifact, m)}")
    return 0


def _load_inputs(paths: Sequence[str]):
    import numpy as np
    return [np.load(p, allow_pickle=False) for p in paths]


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np
    rt = _runtime()
    fn = rt.load(args.artifact)
    outs = fn(*_load_inputs(args.input))
    outs = outs if isinstance(outs, list) else [outs]
    if args.output:
        if len(args.output) != len(outs):
            raise SystemExit(f"graphc run: {len(outs)} outputs but {len(args.output)} --output files")
        for p, o in zip(args.output, outs):
            np.save(p, o)
    else:
        np.set_printoptions(precision=6, suppress=True)
        for spec, o in zip(fn.outputs, outs):
            print(f"{spec['name']}: shape {o.shape}")
            print(o)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np
    rt = _runtime()
    t0 = time.perf_counter()
    fn = rt.load(args.artifact)
    load_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(0)
    xs = []
    for spec in fn.inputs:
        shape = tuple(args.batch if d is None else d for d in spec["shape"])
        if spec["dtype"].startswith("float"):
            xs.append(rng.random(shape).astype(spec["dtype"]))
        else:
            xs.append(np.zeros(shape, spec["dtype"]))
    for _ in range(min(10, args.repeat)):
        fn(*xs)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        fn(*xs)
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    print(f"load {load_ms:.2f} ms; batch {args.batch}: median {med * 1e6:.1f} us per call, "
          f"min {times[0] * 1e6:.1f} us, {args.batch / med:.0f} samples/s ({args.repeat} calls)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``graphc`` command."""
    p = argparse.ArgumentParser(prog="graphc", description="graphc: compile models ahead of time and run artifacts")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile a saved model (model.save) into an artifact directory",
                       description="Compile a model saved with model.save into an artifact directory.")
    c.add_argument("model_file")
    c.add_argument("-o", "--output", required=True, help="artifact directory to write")
    c.add_argument("--target", default="native", help='"native" (default), "x86_64", "aarch64" or an LLVM triple')
    c.add_argument("--cpu", default=None, help="CPU name for the target (default: host CPU for native, generic otherwise)")
    c.add_argument("--name", default=None, help="C symbol prefix (default: the model's name)")
    c.add_argument("--train", action="store_true", help="export the training step instead of inference")
    c.set_defaults(func=_cmd_compile)
    i = sub.add_parser("info", help="describe an artifact", description="Print an artifact's signature, target and sizes.")
    i.add_argument("artifact")
    i.add_argument("--json", action="store_true", help="print the whole manifest")
    i.set_defaults(func=_cmd_info)
    r = sub.add_parser("run", help="run an artifact on .npy inputs",
                       description="Run an artifact on inputs from .npy files; print the outputs or save them.")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", required=True, help=".npy file of an input (repeat for several)")
    r.add_argument("--output", action="append", help=".npy file to write an output to (repeat for several)")
    r.set_defaults(func=_cmd_run)
    b = sub.add_parser("bench", help="time an artifact", description="Time loading an artifact and calling it.")
    b.add_argument("artifact")
    b.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    b.add_argument("--repeat", type=int, default=200, help="timed calls (default 200)")
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphc`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # users get one line, not a traceback
        name = type(exc).__name__
        if name in ("ArtifactError", "ModelFileError", "CompileError", "InputError", "FileNotFoundError",
                    "ValueError", "TypeError", "RuntimeError", "OSError"):
            print(f"graphc {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
