"""CUDA lowering: PTX for every kernel kind assembles with ptxas (sm_90, sm_80) everywhere;
on a machine with a GPU (tests marked ``gpu``) every op and an MLP training step match the
CPU path."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import graphc as gc
from graphc import ops
from graphc.backend import cuda, libnvvm
from graphc.ir.ops import Op
from graphc.lower import cpu, nvvm

CUDA = gc.CompileOptions(target="cuda")
PTXAS = shutil.which("ptxas")
needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas is not installed")
rng = np.random.default_rng(0)


def _f(shape, dtype="float32", low=-2.0, high=2.0):
    return rng.uniform(low, high, shape).astype(dtype)


# ----------------------------------------------------------------------------- cases
def _unary(op, low=-2.0, high=2.0):
    def build():
        x = gc.placeholder((None, 5), name="x")
        return [x], [getattr(ops, op)(x)], [_f((7, 5), low=low, high=high)]
    return build


def _binary(op, dtype="float32"):
    def build():
        x = gc.placeholder((None, 5), dtype, name="x")
        y = gc.placeholder((5,), dtype, name="y")
        if dtype.startswith("int"):
            a, b = rng.integers(-5, 6, (6, 5)).astype(dtype), rng.integers(1, 6, (5,)).astype(dtype)
        else:
            a, b = _f((6, 5), dtype), _f((5,), dtype, 0.5, 2.0)
        return [x, y], [getattr(ops, op)(x, y)], [a, b]
    return build


def _reduce(op, axis, dtype="float32"):
    def build():
        # few output rows (the emulator runs one block per row), a reduced extent above BLOCK
        shape = (300, 2, 3) if axis == 0 else (4, 3, 300)
        x = gc.placeholder((None,) + shape[1:], dtype, name="x")
        a = rng.integers(-3, 4, shape).astype(dtype) if dtype.startswith("int") else _f(shape, dtype, 0.9, 1.1)
        return [x], [getattr(ops, op)(x, axis=axis)], [a]
    return build


def _long_reduce(op, shape, axis, dtype="float32"):
    """Few outputs over many elements: the two-pass (split) reduction with several parts."""
    def build():
        x = gc.placeholder((None,) + shape[1:], dtype, name="x")
        a = rng.integers(-3, 4, shape).astype(dtype) if dtype.startswith("int") else _f(shape, dtype, -1.0, 1.0)
        return [x], [getattr(ops, op)(x, axis=axis)], [a]
    return build


def _matmul(sa, sb, dtype="float32"):
    def build():
        a = gc.placeholder(sa, dtype, name="a")
        b = gc.placeholder(sb, dtype, name="b")
        shp = lambda s: tuple(3 if d is None else d for d in s)  # noqa: E731
        if dtype.startswith("int"):
            va, vb = rng.integers(-3, 4, shp(sa)).astype(dtype), rng.integers(-3, 4, shp(sb)).astype(dtype)
        else:
            va, vb = _f(shp(sa), dtype), _f(shp(sb), dtype)
        return [a, b], [ops.matmul(a, b)], [va, vb]
    return build


def _softmax(op, axis):
    def build():
        shape = (300, 9) if axis == 0 else (9, 300)
        x = gc.placeholder((None, shape[1]), name="x")
        return [x], [getattr(ops, op)(x, axis=axis)], [_f(shape, low=-5, high=5)]
    return build


def _movement(kind):
    def build():
        x = gc.placeholder((None, 4, 6), name="x")
        v = _f((3, 4, 6))
        if kind == "transpose":
            out = ops.transpose(x, (2, 0, 1))
        elif kind == "broadcast":
            y = gc.placeholder((4, 1, 6), name="y")
            return [y], [ops.broadcast_to(y, (2, 4, 5, 6))], [_f((4, 1, 6))]
        elif kind == "slice":
            out = ops.getitem(x, (slice(None), slice(1, 4, 2), slice(None, None, 3)))
        elif kind == "concat":
            out = ops.concatenate([x, x * 2.0], axis=2)
        elif kind == "pad":
            out = ops.pad(x, ((0, 0), (1, 2), (2, 0)), constant_values=1.5)
        return [x], [out], [v]
    return build


def _take():
    x = gc.placeholder((None, 4), name="x")
    i = gc.placeholder((None,), "int64", name="i")
    return [x, i], [ops.take(x, i, axis=0)], [_f((6, 4)), np.array([0, 5, -1, 2], np.int64)]


def _scatter_add():
    x = gc.placeholder((6, 4), name="x")
    i = gc.placeholder((None,), "int64", name="i")
    loss = ops.sum(ops.take(x, i, axis=0) ** 2)
    return [x, i], [gc.grad(loss, [x])[0]], [_f((6, 4)), np.array([0, 5, 0, 2], np.int64)]


def _random():
    x = gc.placeholder((None, 4), name="x")
    return [x], [x + ops.random_uniform((5, 4), seed=3), x * ops.random_normal((5, 4), seed=4)], [_f((5, 4))]


def _dim():
    x = gc.placeholder((None, 4), name="x")
    return [x], [ops.size(x)], [_f((5, 4))]


def _argmax():
    x = gc.placeholder((None, 7), name="x")
    return [x], [ops.argmax(x, axis=1), ops.argmin(x, axis=0)], [_f((5, 7))]


def _patches():
    x = gc.placeholder((None, 6, 7, 3), name="x")
    cols = ops.patches(x, (3, 2), (2, 1), (1, 2))
    return [x], [cols, gc.grad(ops.sum(cols * cols), x)], [_f((2, 6, 7, 3))]


def _scan():
    """An RNN over a symbolic number of steps, its final state, stacked outputs and gradient
    (a backward loop): the host runs each loop's body kernels once per step."""
    x = gc.placeholder((None, 3, 4), name="x")
    h0 = gc.placeholder((3, 4), name="h0")
    w = gc.placeholder((4, 4), name="w")
    final, ys = gc.scan(lambda h, xt: (ops.tanh(h @ w + xt), h * xt), h0, x)
    cost = ops.sum(final * final) + ops.sum(ys)
    return [x, h0, w], [final, ys] + gc.grad(cost, [x, w]), [_f((5, 3, 4)), _f((3, 4)), 0.5 * _f((4, 4))]


def _fused():
    x = gc.placeholder((None, 40), name="x")
    y = gc.placeholder((40,), name="y")
    h = ops.tanh(x * y + 1.0)
    return [x, y], [ops.exp(h) * ops.sigmoid(x), ops.sum(h * x, axis=1), ops.mean(h * h)], [_f((33, 40)), _f((40,))]


# name -> (build, opt_level, kernel kinds expected among the launches)
CASES = {
    **{f"unary_{op}": (_unary(op), 0, {"elementwise"}) for op in
       ["negative", "abs", "sign", "exp", "expm1", "tanh", "sigmoid", "softplus", "erf", "relu", "floor",
        "ceil", "round", "sin", "cos"]},
    **{f"unary_{op}": (_unary(op, 0.1, 3.0), 0, {"elementwise"}) for op in ["log", "log1p", "sqrt"]},
    **{f"binary_{op}": (_binary(op), 0, {"elementwise"}) for op in
       ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "equal", "less", "greater_equal"]},
    **{f"binary_{op}_int32": (_binary(op, "int32"), 0, {"elementwise"}) for op in ["add", "multiply", "maximum"]},
    "binary_add_float64": (_binary("add", "float64"), 0, {"elementwise"}),
    **{f"reduce_{op}_{ax}": (_reduce(op, ax), 0, {"reduction"}) for op in ["sum", "prod", "max", "min"]
       for ax in [0, 2, (0, 2), None]},
    "reduce_sum_int32": (_reduce("sum", 2, "int32"), 0, {"reduction"}),
    "reduce_max_float64": (_reduce("max", 2, "float64"), 0, {"reduction"}),
    # split in two passes: 28 parts into one output, 5 parts into each of 3
    **{f"long_{op}_all": (_long_reduce(op, (40, 700), None), 0, {"reduction"}) for op in ["sum", "max", "min"]},
    "long_sum_rows": (_long_reduce("sum", (5000, 3), 0), 0, {"reduction"}),
    "long_sum_int32": (_long_reduce("sum", (40, 700), None, "int32"), 0, {"reduction"}),
    "matmul_2d": (_matmul((None, 37), (37, 19)), 0, {"matmul"}),
    "matmul_batched": (_matmul((2, None, 20), (2, 20, 17)), 0, {"matmul"}),
    "matmul_bcast": (_matmul((2, 3, 5, 20), (20, 17)), 0, {"matmul"}),
    # several tiles of C in both directions, ragged at both edges, k over three TILE_K steps
    "matmul_tiles": (_matmul((130, 37), (37, 70)), 0, {"matmul"}),
    "matmul_float64": (_matmul((None, 18), (18, 33), "float64"), 0, {"matmul"}),
    "matmul_int32": (_matmul((None, 18), (18, 5), "int32"), 0, {"matmul"}),
    "softmax_last": (_softmax("softmax", -1), 0, {"softmax"}),
    "softmax_first": (_softmax("softmax", 0), 0, {"softmax"}),
    "log_softmax": (_softmax("log_softmax", -1), 0, {"softmax"}),
    **{f"move_{k}": (_movement(k), 0, {"copy"}) for k in ["transpose", "broadcast", "slice", "concat", "pad"]},
    "take": (_take, 0, {"gather"}),
    "scatter_add": (_scatter_add, 1, {"serial"}),
    "random": (_random, 0, {"random"}),
    "dim": (_dim, 0, {"serial"}),
    "argmax_argmin": (_argmax, 0, {"serial"}),
    "fused": (_fused, 2, {"elementwise", "reduction"}),
    "patches": (_patches, 0, {"copy"}),
    "scan": (_scan, 2, {"elementwise", "matmul"}),
}


def _compile(name, target):
    build, level, _ = CASES[name]
    inputs, outputs, arrays = build()
    opts = gc.CompileOptions(target=target, opt_level=level)
    return gc.function(inputs, outputs, options=opts, name=name), arrays


def _ptxas(ptx: str, arch: str, tmp_path) -> None:
    path = tmp_path / f"k_{arch}.ptx"
    path.write_text(ptx)
    res = subprocess.run([PTXAS, f"-arch={arch}", str(path), "-o", str(tmp_path / "k.cubin")],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"ptxas -arch={arch} rejected the PTX:\n{res.stderr}"


# ----------------------------------------------------------------------------- everywhere
@needs_ptxas
@pytest.mark.parametrize("name", sorted(CASES))
def test_ptx_assembles(name, tmp_path):
    fn, _ = _compile(name, "cuda")
    assert fn.ptx and ".entry" in fn.ptx
    kinds = set(fn._native.nvvm.kinds.values())
    assert CASES[name][2] <= kinds, kinds
    _ptxas(fn.ptx, "sm_90", tmp_path)
    _ptxas(nvvm.compile_ptx(fn.llvm_ir, "sm_80"), "sm_80", tmp_path)


@needs_ptxas
@pytest.mark.skipif(not libnvvm.available(), reason="libNVVM is not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_ptx_from_libnvvm_assembles(name, tmp_path):
    """The same kernels through libNVVM (GRAPHC_PTX_COMPILER=libnvvm): the IR rewritten to
    its LLVM 7 dialect compiles, leaves no call unresolved, and ptxas takes the PTX."""
    fn, _ = _compile(name, "cuda")
    for arch in ("sm_80", "sm_90"):
        ptx = nvvm.compile_ptx(fn.llvm_ir, arch, 3, compiler="libnvvm")
        assert ".entry" in ptx and ".extern .func" not in ptx
        _ptxas(ptx, arch, tmp_path)


def test_ir_for_libnvvm_keeps_the_nan_semantics():
    """maximum/minimum propagate NaN (as NumPy does) through the helpers that replace LLVM 8's
    intrinsics, and fneg becomes a subtraction from -0.0."""
    text = ('declare float @"llvm.maximum.f32"(float %".1", float %".2")\n'
            'define float @f(float %a, float %b) {\n  %m = call float @"llvm.maximum.f32"(float %a, float %b)\n'
            '  %n = fneg float %m\n  ret float %n\n}\n')
    out = libnvvm.nvvm7_compatible(text)
    assert "fneg" not in out and "fsub float -0.000000e+00, %m" in out
    assert "llvm.maximum" not in out and "@graphc_nvvm_maximum_f32(float %a, float %b)" in out
    assert "fcmp uno float %a, %b" in out and "@llvm.maxnum.f32" in out
    assert "!nvvmir.version" in out


def test_unknown_ptx_compiler_is_refused(monkeypatch):
    monkeypatch.setenv("GRAPHC_PTX_COMPILER", "nvcc")
    with pytest.raises(gc.CompileError, match="GRAPHC_PTX_COMPILER"):
        nvvm.ptx_compiler()


def _mlp(target, steps_in=None):
    w1 = gc.shared(np.random.default_rng(1).normal(0, 0.3, (20, 32)).astype("float32"), name="w1")
    b1 = gc.shared(np.zeros(32, np.float32), name="b1")
    w2 = gc.shared(np.random.default_rng(2).normal(0, 0.3, (32, 10)).astype("float32"), name="w2")
    b2 = gc.shared(np.zeros(10, np.float32), name="b2")
    x = gc.placeholder((None, 20), name="x")
    y = gc.placeholder((None, 10), name="y")
    h = ops.relu(ops.matmul(x, w1) + b1)
    logp = ops.log_softmax(ops.matmul(h, w2) + b2, axis=-1)
    loss = -ops.mean(ops.sum(y * logp, axis=1))
    params = [w1, b1, w2, b2]
    grads = gc.grad(loss, params)
    fn = gc.function([x, y], loss, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)],
                     options=gc.CompileOptions(target=target), name="mlp_step")
    return fn, params


@needs_ptxas
def test_mlp_training_step_ptx(tmp_path):
    fn, _ = _mlp("cuda")
    kinds = set(fn._native.nvvm.kinds.values())
    assert {"matmul", "reduction", "softmax", "elementwise"} <= kinds, kinds
    _ptxas(fn.ptx, "sm_90", tmp_path)
    _ptxas(nvvm.compile_ptx(fn.llvm_ir, "sm_80"), "sm_80", tmp_path)


def test_every_op_has_a_cuda_lowering_or_is_exempt():
    for op in Op:
        assert op in nvvm.GPU_LOWER or op in cpu.NOT_LOWERED or op in nvvm.EXPANDED, op
    for op in nvvm.SERIAL_OPS:
        assert op in cpu.LOWER, op


def test_compiles_without_gpu_and_calling_says_so():
    if cuda.available():
        pytest.skip("a CUDA device is present")
    fn, arrays = _compile("binary_add", "cuda")
    assert ".target sm_" in fn.ptx
    with pytest.raises(cuda.NoCudaDevice, match="no CUDA device is available"):
        fn(*arrays)


def test_cpu_target_unchanged():
    fn, arrays = _compile("binary_add", "cpu")
    assert fn.ptx is None
    np.testing.assert_allclose(fn(*arrays)[0], arrays[0] + arrays[1])


def test_launch_dims():
    assert nvvm.launch_dims(("serial",), {}) == ((1, 1, 1), (1, 1, 1))
    assert nvvm.launch_dims(("stride", 1000), {}) == ((4, 1, 1), (nvvm.BLOCK, 1, 1))
    assert nvvm.launch_dims(("stride", 0), {}) == ((1, 1, 1), (nvvm.BLOCK, 1, 1))
    assert nvvm.launch_dims(("rows", 10 ** 6), {})[0] == (nvvm.MAX_BLOCKS, 1, 1)
    w = nvvm.TILE_OUT  # a block of TILE x TILE threads computes a w x w tile of C
    assert nvvm.launch_dims(("tiles", 2 * w + 1, w + 1, 4), {}) == ((2, 3, 4), (nvvm.TILE, nvvm.TILE, 1))
    assert nvvm.launch_dims(("tiles", w, 1, 1), {}) == ((1, 1, 1), (nvvm.TILE, nvvm.TILE, 1))


# ----------------------------------------------------------------------------- emulated (no GPU)
def _emulated(fn):
    from graphc.lower.nvvm_emulate import EmulatedContext
    fn._native.context = EmulatedContext()
    return fn


def _compare(got, want):
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, **_tol(w.dtype))
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", sorted(CASES))
def test_emulated_kernels_match_cpu(name):
    """The NVVM kernels run on the host by the emulator (threads, barriers, shared memory)."""
    fg, arrays = _compile(name, "cuda")
    _emulated(fg)
    fc, _ = _compile(name, "cpu")
    for _ in range(2):
        _compare(fg(*arrays), fc(*arrays))


def test_emulated_mlp_training_matches_cpu():
    fg, pg = _mlp("cuda")
    _emulated(fg)
    fc, pc = _mlp("cpu")
    r = np.random.default_rng(5)
    for _ in range(3):  # a small batch: the emulator runs one block per output row
        x = r.normal(size=(12, 20)).astype("float32")
        y = np.eye(10, dtype="float32")[r.integers(0, 10, 12)]
        np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-4, atol=1e-5)
    from graphc.frontend.variables import get_value, set_value
    for a, b in zip(pg, pc):
        np.testing.assert_allclose(get_value(a), get_value(b), rtol=1e-4, atol=1e-5)
    set_value(pg[0], np.zeros((20, 32), np.float32))  # a host-side change is uploaded again
    set_value(pc[0], np.zeros((20, 32), np.float32))
    np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-4, atol=1e-5)


def test_few_outputs_over_many_elements_reduce_in_two_passes():
    """A full reduction (or one into fewer than SPLIT_ROWS outputs) is a first pass of up to
    split_parts blocks a row writing partials, then a pass combining them; many outputs, or a
    short known extent, keep one pass."""
    assert nvvm.split_parts(1, 10 ** 6) == nvvm.SPLIT_TARGET_BLOCKS
    assert nvvm.split_parts(3, 10 ** 6) == -(-nvvm.SPLIT_TARGET_BLOCKS // 3)
    assert nvvm.split_parts(nvvm.SPLIT_ROWS, 10 ** 6) == 1
    assert nvvm.split_parts(1, 100) == 1
    fn, _ = _compile("long_sum_all", "cuda")
    names = [l.kernel for l in fn._native.nvvm.launches]
    assert any(n.endswith("_part") for n in names) and any(n.endswith("_combine") for n in names), names
    part = next(l for l in fn._native.nvvm.launches if l.kernel.endswith("_part"))
    assert part.out.kind == "scratch" and part.grid == ("rows", nvvm.SPLIT_TARGET_BLOCKS)


def test_launches_are_packed_once_per_sizes(monkeypatch):
    """A program without loops works out its grids and packs its arguments on the first call
    with given sizes; later calls with those sizes only launch (the random step still moves)."""
    from graphc.lower import nvvm_executable
    counted = []
    real = nvvm_executable.launch_dims
    monkeypatch.setattr(nvvm_executable, "launch_dims", lambda *a: counted.append(1) or real(*a))
    fg, arrays = _compile("random", "cuda")
    _emulated(fg)
    fc, _ = _compile("random", "cpu")
    _compare(fg(*arrays), fc(*arrays))
    first = len(counted)
    assert first == len(fg._native.nvvm.launches)
    for _ in range(2):  # new random draws each call, as on the CPU
        _compare(fg(*arrays), fc(*arrays))
    assert len(counted) == first


def test_emulated_run_steps_is_calls_in_turn_with_one_copy_each_way():
    """Function.run_steps on CUDA: the n training steps match n CPU calls (weights included),
    each input goes up in one copy and each output comes back in one; random ops draw as in
    separate calls."""
    from graphc.frontend.variables import get_value
    fg, pg = _mlp("cuda")
    _emulated(fg)
    fc, pc = _mlp("cpu")
    ctx = fg._native.context
    r = np.random.default_rng(8)
    x = r.normal(size=(4 * 6, 20)).astype("float32")
    y = np.eye(10, dtype="float32")[r.integers(0, 10, 4 * 6)]
    np.testing.assert_allclose(fg(x[:6], y[:6]), fc(x[:6], y[:6]), rtol=1e-4, atol=1e-5)  # weights uploaded
    before = (ctx.bytes_htod, ctx.bytes_dtoh)
    losses = fg.run_steps(4, x, y)
    assert ctx.bytes_htod - before[0] == x.nbytes + y.nbytes
    assert ctx.bytes_dtoh - before[1] == losses.nbytes + 4  # the stacked losses and the error word
    np.testing.assert_allclose(losses, [fc(x[6 * s:6 * s + 6], y[6 * s:6 * s + 6]) for s in range(4)],
                               rtol=1e-4, atol=1e-5)
    for a, b in zip(pg, pc):
        np.testing.assert_allclose(get_value(a), get_value(b), rtol=1e-4, atol=1e-5)
    fr, arrays = _compile("random", "cuda")
    _emulated(fr)
    fcr, _ = _compile("random", "cpu")
    stacked = [np.concatenate([a] * 3) for a in arrays]
    got = fr.run_steps(3, *stacked)
    for s in range(3):
        _compare([g[s] for g in got], fcr(*arrays))


def test_emulated_training_keeps_the_weights_on_the_device():
    """A run of CUDA training steps copies only inputs and outputs; the weights come back to
    the host when it reads them, and host-side writes (set_value, a CPU function's updates)
    reach the device before the next step. Values as on the CPU throughout."""
    from graphc.frontend.variables import get_value, set_value
    fg, pg = _mlp("cuda")
    _emulated(fg)
    fc, pc = _mlp("cpu")
    ctx = fg._native.context
    r = np.random.default_rng(6)
    x = r.normal(size=(12, 20)).astype("float32")
    y = np.eye(10, dtype="float32")[r.integers(0, 10, 12)]
    weights = sum(get_value(p).nbytes for p in pg)
    np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-4, atol=1e-5)  # uploads the weights
    assert ctx.bytes_htod >= weights
    for _ in range(3):
        before = (ctx.bytes_htod, ctx.bytes_dtoh)
        np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-4, atol=1e-5)
        assert ctx.bytes_htod - before[0] == x.nbytes + y.nbytes  # the inputs only
        assert ctx.bytes_dtoh - before[1] == 4 + 4  # the loss and the error word
    before = ctx.bytes_dtoh
    for a, b in zip(pg, pc):  # reading fetches the newest values
        np.testing.assert_allclose(get_value(a), get_value(b), rtol=1e-4, atol=1e-5)
    assert ctx.bytes_dtoh - before == weights
    # a CPU function's updates and set_value are seen by the next CUDA step
    bump = [gc.function([], [], updates=[(p[0], p[0] + 0.01)]) for p in (pg, pc)]
    for f in bump:
        f()
    set_value(pg[3], np.full(10, 0.5, np.float32))
    set_value(pc[3], np.full(10, 0.5, np.float32))
    read = [gc.function([], p[2] * 1.0) for p in (pg, pc)]  # compiled before the step
    np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-4, atol=1e-5)
    # and a CPU function reads what the CUDA step left on the device
    np.testing.assert_allclose(read[0](), read[1](), rtol=1e-4, atol=1e-5)


def test_emulated_index_error():
    fg, arrays = _compile("take", "cuda")
    _emulated(fg)
    with pytest.raises(gc.InputError, match="out of range"):
        fg(arrays[0], np.array([0, 99], np.int64))


# ----------------------------------------------------------------------------- on a GPU
gpu = pytest.mark.skipif(not cuda.available(), reason="no CUDA device (libcuda or GPU absent)")


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", sorted(CASES))
def test_gpu_matches_cpu(name):
    fg, arrays = _compile(name, "cuda")
    fc, _ = _compile(name, "cpu")
    for _ in range(2):  # the second call reuses buffers (and advances the random stream)
        _compare(fg(*arrays), fc(*arrays))


@pytest.mark.gpu
@gpu
def test_gpu_mlp_training_matches_cpu():
    fg, pg = _mlp("cuda")
    fc, pc = _mlp("cpu")
    r = np.random.default_rng(5)
    for step in range(5):
        x = r.normal(size=(64, 20)).astype("float32")
        y = np.eye(10, dtype="float32")[r.integers(0, 10, 64)]
        lg, lc = fg(x, y), fc(x, y)
        np.testing.assert_allclose(lg, lc, rtol=1e-4, atol=1e-5)
    from graphc.frontend.variables import get_value
    for a, b in zip(pg, pc):  # updated weights were copied back to the host after each step
        np.testing.assert_allclose(get_value(a), get_value(b), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@gpu
def test_gpu_set_value_is_seen_and_index_errors_raise():
    fn, (w, *_rest) = _mlp("cuda")
    from graphc.frontend.variables import get_value, set_value
    x = np.ones((4, 20), np.float32)
    y = np.eye(10, dtype=np.float32)[:4]
    fn(x, y)
    set_value(w, np.zeros((20, 32), np.float32))
    fn(x, y)
    assert np.all(get_value(w) == 0.0)  # relu(0)=0: no gradient reaches w1 after the reset
    ft, arrays = _compile("take", "cuda")
    with pytest.raises(gc.InputError, match="out of range"):
        ft(arrays[0], np.array([0, 99], np.int64))


def test_keras_compile_target_cuda_matches_cpu():
    """model.compile(..., target="cuda"): the train and predict functions are CUDA functions
    (PTX), and, run by the emulator, a training step matches the same model on the CPU."""
    import graphc.keras as keras
    from graphc.keras import layers

    def build(target):
        np.random.seed(3)
        m = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(3, activation="softmax")])
        m.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", target=target)
        return m

    gpu, cpu_model = build("cuda"), build("cpu")
    gpu.set_weights(cpu_model.get_weights())
    r = np.random.default_rng(0)
    x = r.normal(size=(8, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[r.integers(0, 3, 8)]
    ys = gpu._std_y(y)
    train = gpu._get_fn("train", ys, gpu._std_sw(None, ys, None))
    predict = gpu._get_fn("predict")
    assert train.ptx and ".entry" in train.ptx and predict.ptx
    if not cuda.available():
        _emulated(train)
        _emulated(predict)
    np.testing.assert_allclose(gpu.train_on_batch(x, y), cpu_model.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(gpu.get_weights(), cpu_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.predict(x, verbose=0), cpu_model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    with pytest.raises(gc.InputError, match="target must be"):
        gpu.compile("sgd", "mse", target="tpu")


def test_keras_convnet_training_step_on_cuda_matches_cpu():
    """A Keras convnet (Conv2D, MaxPooling2D, Dense) compiled for CUDA: its training steps
    (convolution through the expanded patches and the tiled matmul, pooling, softmax
    cross-entropy, SGD) and predictions match the same model on the CPU; run by the emulator
    without a GPU."""
    import graphc.keras as keras
    from graphc.keras import layers

    def build(target):
        np.random.seed(4)
        m = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
        m.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", target=target)
        return m

    gpu, cpu_model = build("cuda"), build("cpu")
    gpu.set_weights(cpu_model.get_weights())
    r = np.random.default_rng(1)
    x = r.normal(size=(3, 6, 6, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[r.integers(0, 3, 3)]
    ys = gpu._std_y(y)
    train = gpu._get_fn("train", ys, gpu._std_sw(None, ys, None))
    predict = gpu._get_fn("predict")
    if not cuda.available():
        _emulated(train)
        _emulated(predict)
    for _ in range(2):
        np.testing.assert_allclose(gpu.train_on_batch(x, y), cpu_model.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(gpu.get_weights(), cpu_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.predict(x, verbose=0), cpu_model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_keras_fit_with_steps_per_execution_on_cuda_matches_cpu():
    """fit(steps_per_execution=3) on a CUDA model: groups of 3 batches go through the CUDA
    run_steps (emulated here); the epoch's loss and the weights match the CPU model's."""
    import graphc.keras as keras
    from graphc.keras import layers

    def build(target):
        np.random.seed(7)
        m = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(3, activation="softmax")])
        m.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", target=target, steps_per_execution=3)
        return m

    gpu, cpu_model = build("cuda"), build("cpu")
    gpu.set_weights(cpu_model.get_weights())
    r = np.random.default_rng(2)
    x = r.normal(size=(28, 6)).astype("float32")  # batches of 4: two groups of 3 and one of 1
    y = np.eye(3, dtype="float32")[r.integers(0, 3, 28)]
    ys = gpu._std_y(y)
    train = gpu._get_fn("train", ys, gpu._std_sw(None, ys, None))
    if not cuda.available():
        _emulated(train)
    calls = []
    real = train.run_steps
    train.run_steps = lambda n, *a: calls.append(n) or real(n, *a)
    hg = gpu.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    hc = cpu_model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert calls == [3, 3]
    np.testing.assert_allclose(hg.history["loss"], hc.history["loss"], rtol=1e-5)
    for a, b in zip(gpu.get_weights(), cpu_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
