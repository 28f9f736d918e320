"""MLP benchmarks: SGD training steps, batch-1 inference and cold compile, graphc vs peers.

    python bench/bench_mlp.py [--only train_big train_small infer compile] [--rounds N]

Model: dense layers with ReLU, softmax cross-entropy on one-hot labels, plain SGD (lr 0.01),
float32. Each framework runs the whole step (forward, backward, update) as it would be
written idiomatically: graphc as one gc.function with updates, PyTorch eagerly with an
in-place update, JAX as one jit'd function, PyTensor as one function with updates, NumPy by
hand. Inference peers also include ONNX Runtime (the same graph exported from PyTorch).
"""
from __future__ import annotations

import argparse
import io
import os
import time

os.environ.setdefault("PYTENSOR_FLAGS", "mode=FAST_RUN,linker=cvm")  # no numba in the bench env

import numpy as np

from common import isolated, machine, median_time, peer, report, versions

import graphc as gc

LR = 0.01


def init_params(sizes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        out.append(np.zeros(fan_out, np.float32))
    return out


def data(sizes, batch, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
    return x, y


# ----------------------------------------------------------------------------- graphc
def graphc_train(sizes, params, options=None):
    x = gc.placeholder((None, sizes[0]), "float32", name="x")
    y = gc.placeholder((None, sizes[-1]), "float32", name="y")
    shared = [gc.shared(p.copy(), name=f"p{i}") for i, p in enumerate(params)]
    h = x
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        h = h @ shared[2 * i] + shared[2 * i + 1]
        if i < n_layers - 1:
            h = gc.ops.relu(h)
    loss = -gc.ops.mean(gc.ops.sum(y * gc.ops.log_softmax(h, axis=-1), axis=-1))
    grads = gc.grad(loss, shared)
    return gc.function([x, y], loss, updates=[(p, p - LR * g) for p, g in zip(shared, grads)],
                       options=options, name="train_step")


def graphc_infer(sizes, params):
    x = gc.placeholder((None, sizes[0]), "float32", name="x")
    h = x
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        h = h @ gc.shared(params[2 * i].copy()) + gc.shared(params[2 * i + 1].copy())
        if i < n_layers - 1:
            h = gc.ops.relu(h)
    return gc.function([x], gc.ops.softmax(h, axis=-1), name="predict")


# ----------------------------------------------------------------------------- NumPy
def numpy_train(params):
    ps = [p.copy() for p in params]

    def step(x, y):
        acts, h = [x], x
        n_layers = len(ps) // 2
        for i in range(n_layers):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < n_layers - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = -np.mean(np.sum(y * (z - np.log(s)), axis=1))
        g = (e / s - y) / x.shape[0]
        for i in reversed(range(n_layers)):
            a = acts[i]
            gw, gb = a.T @ g, g.sum(axis=0)
            if i > 0:
                g = (g @ ps[2 * i].T) * (acts[i] > 0)
            ps[2 * i] -= LR * gw
            ps[2 * i + 1] -= LR * gb
        return loss
    return step


def numpy_infer(params):
    def f(x):
        h = x
        n_layers = len(params) // 2
        for i in range(n_layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                h = np.maximum(h, 0)
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return f


# ----------------------------------------------------------------------------- PyTorch
def torch_model(torch, params):
    layers = []
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < n_layers - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_train(torch, params):
    model = torch_model(torch, params)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    lossf = torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


# ----------------------------------------------------------------------------- JAX
def jax_train(jax, params):
    jnp = jax.numpy

    def loss_fn(ps, x, y):
        h = x
        n_layers = len(ps) // 2
        for i in range(n_layers):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < n_layers - 1:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(h, axis=-1), axis=-1))

    @jax.jit
    def step(ps, x, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, x, y)
        return [p - LR * g for p, g in zip(ps, gs)], loss
    return step


# ----------------------------------------------------------------------------- PyTensor
def pytensor_train(pytensor, params):
    pt = pytensor.tensor
    x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
    ps = [pytensor.shared(p.copy()) for p in params]
    h = x
    n_layers = len(ps) // 2
    for i in range(n_layers):
        h = h @ ps[2 * i] + ps[2 * i + 1]
        if i < n_layers - 1:
            h = pt.maximum(h, 0)
    loss = -pt.mean(pt.sum(y * pt.special.log_softmax(h, axis=-1), axis=-1))
    gs = pytensor.grad(loss, ps)
    return pytensor.function([x, y], loss, updates=[(p, p - np.float32(LR) * g) for p, g in zip(ps, gs)])


# ----------------------------------------------------------------------------- benchmarks
# Each measure_* function runs in its own child process (common.isolated) and imports only
# the framework it measures; None means the framework is not installed.
TRAIN_PEERS = ["graphc", "numpy", "torch", "jax", "pytensor"]
INFER_PEERS = ["graphc", "numpy", "torch", "onnxruntime"]


def measure_train(framework, sizes, batch):
    params = init_params(sizes)
    x, y = data(sizes, batch)
    if framework == "graphc":
        f = graphc_train(sizes, params)
        return median_time(lambda: f(x, y))
    if framework == "numpy":
        step = numpy_train(params)
        return median_time(lambda: step(x, y))
    mod = peer(framework)
    if mod is None:
        return None
    if framework == "torch":
        tstep = torch_train(mod, params)
        tx, ty = mod.from_numpy(x), mod.from_numpy(y.argmax(1))
        return median_time(lambda: tstep(tx, ty))
    if framework == "jax":
        jstep = jax_train(mod, params)
        state = {"ps": [mod.numpy.asarray(p) for p in params]}
        jx, jy = mod.numpy.asarray(x), mod.numpy.asarray(y)

        def run_jax():
            state["ps"], loss = jstep(state["ps"], jx, jy)
            loss.block_until_ready()
        return median_time(run_jax)
    if framework == "pytensor":
        pf = pytensor_train(mod, params)
        return median_time(lambda: pf(x, y))
    raise ValueError(framework)


def measure_infer(framework, sizes):
    params = init_params(sizes)
    x, _ = data(sizes, 1)
    if framework == "graphc":
        f = graphc_infer(sizes, params)
        return median_time(lambda: f(x), min_time=0.3)
    if framework == "numpy":
        g = numpy_infer(params)
        return median_time(lambda: g(x), min_time=0.3)
    torch = peer("torch")
    if torch is None:
        return None
    model = torch.nn.Sequential(torch_model(torch, params), torch.nn.Softmax(dim=-1)).eval()
    tx = torch.from_numpy(x)
    if framework == "torch":
        with torch.inference_mode():
            return median_time(lambda: model(tx), min_time=0.3)
    if framework == "onnxruntime":
        ort = peer("onnxruntime")
        if ort is None or peer("onnx") is None:
            return None
        import warnings
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (tx,), buf, input_names=["x"], output_names=["y"], dynamo=False)
        sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
        return median_time(lambda: sess.run(None, {"x": x}), min_time=0.3)
    raise ValueError(framework)


def _warm_up_graphc(cache_dir):
    """Import what a first compile imports lazily, and load the runtime library (compiled once
    per machine, then loaded from the disk cache): neither is the compile of a model."""
    import sympy.tensor.tensor  # noqa: F401 - sympy imports it (90 ms) on its first symbolic sum
    from graphc.lower import runtime_library
    runtime_library.load(cache_dir)
    xw = gc.placeholder((None, 3), name="warm")
    gc.function([xw], gc.grad(gc.ops.sum(gc.ops.tanh(xw @ np.ones((3, 2), "float32"))), xw),
                options=gc.CompileOptions(cache_dir=None))


def measure_compile(framework, sizes, cache_dir=None):
    """Seconds to build, compile and first call the step. For graphc, ``cache_dir`` is the disk
    cache (empty: a cold compile; filled by an earlier process: a warm one)."""
    params = init_params(sizes)
    x, y = data(sizes, 128)
    if framework == "graphc":
        _warm_up_graphc(cache_dir)
        t0 = time.perf_counter()
        f = graphc_train(sizes, params, gc.CompileOptions(cache_dir=cache_dir))
        f(x, y)
        return time.perf_counter() - t0
    mod = peer(framework)
    if mod is None:
        return None
    if framework == "jax":
        jstep = jax_train(mod, params)
        ps = [mod.numpy.asarray(p) for p in params]
        jx, jy = mod.numpy.asarray(x), mod.numpy.asarray(y)
        t0 = time.perf_counter()
        out = jstep(ps, jx, jy)
        out[1].block_until_ready()
        return time.perf_counter() - t0
    if framework == "pytensor":
        t0 = time.perf_counter()
        pf = pytensor_train(mod, params)
        pf(x, y)
        return time.perf_counter() - t0
    raise ValueError(framework)


ROUNDS = 1


def _collect(fn, frameworks, *args, isolate=True, fresh=None):
    """Each framework's median time; with ``--rounds N`` every framework is measured N times,
    in turn, and the median over the rounds is reported, with graphc's ratio to each peer in
    every round (on a noisy VM a ratio taken within one round means more than one taken
    minutes apart). ``fresh()``, if given, makes arguments for each round (a new cache)."""
    runs: dict[str, list] = {}
    for _ in range(ROUNDS):
        round_args = fresh() if fresh is not None else args
        for name in frameworks:
            runs.setdefault(name, []).append(isolated(fn, name, *round_args, isolate=isolate))
    return _medians(runs)


def _medians(runs: dict[str, list]) -> dict[str, float]:
    """Medians over the rounds, after printing graphc's per-round ratios (with several rounds)."""
    if ROUNDS > 1 and "graphc" in runs:
        for name, ts in runs.items():
            ratios = [g / t for g, t in zip(runs["graphc"], ts) if g is not None and t is not None]
            if name != "graphc" and ratios:
                print(f"  graphc/{name} per round: {', '.join(f'{r:.3f}' for r in ratios)}"
                      f" (median {np.median(ratios):.3f})")
    return {name: float(np.median([t for t in ts if t is not None])) for name, ts in runs.items()
            if any(t is not None for t in ts)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", default=["compile", "train_big", "train_small", "infer"])
    ap.add_argument("--no-isolate", action="store_true", help="run every framework in this process")
    ap.add_argument("--peer-threads", type=int, default=None,
                    help="limit the peers' thread pools (BLAS, OpenMP, XLA) to N threads; applies to "
                         "the child processes, so it needs isolation")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every framework N times in turn; report medians and per-round ratios")
    args = ap.parse_args()
    global ROUNDS
    ROUNDS = max(1, args.rounds)
    iso = not args.no_isolate
    if args.peer_threads:
        n = str(args.peer_threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n
        if args.peer_threads == 1:
            os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        print(f"# peers limited to {n} thread(s)")
    print(f"# MLP benchmarks -- {machine()}; {versions()}")
    print(f"# each framework measured in its own child process: {iso}")
    if "compile" in args.only:
        import tempfile
        sizes = [784, 512, 256, 10]
        caches: list[str] = []

        def fresh_cache():  # every round compiles cold, into an empty disk cache
            caches.append(tempfile.mkdtemp(prefix="graphc-bench-cache-"))
            return sizes, caches[-1]
        results = _collect(measure_compile, ["graphc", "jax", "pytensor"], isolate=iso, fresh=fresh_cache)
        report(f"cold compile + first call, MLP {'-'.join(map(str, sizes))} training step", results,
               {"pytensor": "its C module cache may be warm", "graphc": "empty disk cache"})
        # a new process, with a cache the cold compile filled
        warm = [isolated(measure_compile, "graphc", sizes, cache, isolate=iso) for cache in caches]
        warm = [t for t in warm if t is not None]
        if warm:
            report("the same, graphc from its disk cache (a new process)",
                   {"graphc": float(np.median(warm)), **{k: v for k, v in results.items() if k != "graphc"}})
    if "train_big" in args.only:
        report("MLP 784-512-256-10, batch 128, SGD training step",
               _collect(measure_train, TRAIN_PEERS, [784, 512, 256, 10], 128, isolate=iso))
    if "train_small" in args.only:
        report("MLP 64-128-64-10, batch 32, SGD training step",
               _collect(measure_train, TRAIN_PEERS, [64, 128, 64, 10], 32, isolate=iso))
    if "infer" in args.only:
        sizes = [784, 512, 256, 10]
        report(f"MLP {'-'.join(map(str, sizes))} inference, batch 1",
               _collect(measure_infer, INFER_PEERS, sizes, isolate=iso))


if __name__ == "__main__":
    main()
