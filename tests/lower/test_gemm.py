"""Correctness of the packed GEMM (graphc/lower/gemm.py) against NumPy.

The GEMM function is tested directly (through ctypes) with tiny cache blocks, so that every
edge (partial register tiles, several KC/MC/NC blocks, k == 0) is crossed on small matrices,
for both the AVX-512 and the AVX2 blockings; and through ``graphc.function`` for odd sizes,
symbolic sizes, batched and broadcast matmul, float32/float64 and the integer fallback.
No test asserts a time.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import ir

import graphc as gc
from graphc.backend.jit import compile_ir
from graphc.lower.gemm import GemmConfig, config_for, gemm_function, matmul_function

TOL = {"float32": 2e-5, "float64": 1e-12}

SMALL_BLOCKS = {
    "avx512-like": GemmConfig(vw=16, mr=8, nrv=3, kc=7, mc=16, nc=96),
    "avx2-like": GemmConfig(vw=8, mr=6, nrv=2, kc=5, mc=12, nc=32),
    "odd": GemmConfig(vw=4, mr=3, nrv=1, kc=3, mc=3, nc=4),
}


def _check(got: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: str) -> None:
    ref = a.astype(np.float64) @ b.astype(np.float64)
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    err = float(np.abs(got - ref).max(initial=0.0)) / scale
    assert err < TOL[dtype] * max(1, a.shape[-1]) ** 0.5, (a.shape, b.shape, err)


@pytest.fixture(scope="module", params=sorted(SMALL_BLOCKS))
def direct(request):
    """The GEMM function for both float dtypes with small blocks, callable from Python."""
    cfg_name = request.param
    module = ir.Module(name="gemm_test")
    for dtype in ("float32", "float64"):
        cfg = SMALL_BLOCKS[cfg_name]
        if dtype == "float64":
            cfg = GemmConfig(vw=max(2, cfg.vw // 2), mr=cfg.mr, nrv=cfg.nrv, kc=cfg.kc, mc=cfg.mc,
                             nc=cfg.nc)
        gemm_function(module, dtype, cfg).linkage = ""  # external: callable from the test
    native = compile_ir(str(module))
    fns = {}
    for dtype, ct in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
        p = ctypes.POINTER(ct)
        i = ctypes.c_int64
        fns[dtype] = ctypes.CFUNCTYPE(None, i, i, i, p, i, i, p, i, i, p, i, ct, ct)(
            native.address(f"graphc_gemm_{dtype}"))
    fns["_keep"] = native
    return fns


def _call(fns, dtype, a, b, c, alpha=1.0, beta=0.0):
    """C = alpha * A @ B + beta * C for NumPy views: any (row, column) strides of A and B (a
    transposed view is read in place), C with unit column stride."""
    ct = ctypes.c_float if dtype == "float32" else ctypes.c_double
    ptr = lambda x: x.ctypes.data_as(ctypes.POINTER(ct))  # noqa: E731
    m, k = a.shape
    n = b.shape[1]
    assert c.strides[1] == c.itemsize
    fns[dtype](m, n, k, ptr(a), a.strides[0] // a.itemsize, a.strides[1] // a.itemsize,
               ptr(b), b.strides[0] // b.itemsize, b.strides[1] // b.itemsize, ptr(c), c.strides[0] // c.itemsize,
               alpha, beta)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_all_edges(direct, dtype):
    rng = np.random.default_rng(0)
    sizes = [1, 2, 3, 5, 8, 13, 17, 31, 40]
    for m in sizes:
        for n in sizes:
            for k in (1, 4, 9, 22):
                a = rng.standard_normal((m, k)).astype(dtype)
                b = rng.standard_normal((k, n)).astype(dtype)
                c = np.full((m, n), np.nan, dtype)
                _call(direct, dtype, a, b, c)
                _check(c, a, b, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha,beta", [(-0.5, 1.0), (2.0, 0.25), (1.0, 0.0)])
def test_direct_alpha_beta_all_edges(direct, dtype, alpha, beta):
    """C = alpha * A @ B + beta * C across every edge and several KC blocks (the first block
    scales C by beta, later ones accumulate); with beta == 0 a NaN in C is never read."""
    rng = np.random.default_rng(2)
    for m, n, k in [(1, 1, 1), (7, 33, 22), (13, 17, 9), (40, 31, 4)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        if beta == 0.0:
            c0[0, 0] = np.nan
        c = c0.copy()
        _call(direct, dtype, a, b, c, alpha, beta)
        base = 0.0 if beta == 0.0 else beta * c0.astype(np.float64)
        _check((c - base) / alpha, a, b, dtype)
    c = np.ones((3, 4), dtype)
    _call(direct, dtype, np.zeros((3, 0), dtype), np.zeros((0, 4), dtype), c, alpha, beta)
    assert np.all(c == beta)  # k == 0: C = beta * C


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_k_zero_and_leading_dims(direct, dtype):
    rng = np.random.default_rng(1)
    c = np.full((5, 7), np.nan, dtype)
    _call(direct, dtype, np.zeros((5, 0), dtype), np.zeros((0, 7), dtype), c)
    assert np.all(c == 0)
    # sub-matrices of bigger arrays: lda, ldb, ldc larger than the row length
    big_a = rng.standard_normal((20, 30)).astype(dtype)
    big_b = rng.standard_normal((30, 40)).astype(dtype)
    big_c = np.full((25, 50), 7.0, dtype)
    a, b = big_a[2:15, 3:20], big_b[1:18, 5:33]
    view = big_c[4:17, 6:34]
    _call(direct, dtype, a, b, view)
    _check(view, a, b, dtype)
    outside = big_c.copy()
    outside[4:17, 6:34] = 7.0
    assert np.all(outside == 7.0)  # nothing written outside C


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_transposed_operands(direct, dtype):
    """A or B given transposed (column-major views) is read in place, every edge size."""
    rng = np.random.default_rng(3)
    for m, k, n in [(1, 5, 3), (13, 9, 40), (40, 22, 17), (7, 1, 31), (31, 40, 8)]:
        at = rng.standard_normal((k, m)).astype(dtype)
        bt = rng.standard_normal((n, k)).astype(dtype)
        for a, b in ((at.T, bt.T), (at.T, np.ascontiguousarray(bt.T)), (np.ascontiguousarray(at.T), bt.T)):
            c = np.full((m, n), np.nan, dtype)
            _call(direct, dtype, a, b, c)
            _check(c, np.ascontiguousarray(a), np.ascontiguousarray(b), dtype)


def test_host_config_shapes():
    for dtype in ("float32", "float64"):
        for avx512 in (True, False):
            cfg = config_for(dtype, avx512)
            assert cfg.nc % cfg.nr == 0 and cfg.mc % cfg.mr == 0
            assert cfg.mr * cfg.nrv + cfg.nrv + 1 <= (32 if avx512 else 16)


ODD = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 49, 63, 64, 65, 67]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_function_odd_sizes_symbolic(dtype):
    """One compiled function (every size symbolic) over many odd sizes 1..67."""
    x = gc.placeholder((None, None), dtype)
    y = gc.placeholder((None, None), dtype)
    f = gc.function([x, y], x @ y)
    rng = np.random.default_rng(2)
    for i, m in enumerate(ODD):
        for n in ODD[i % 3::3]:
            k = ODD[(i * 7 + n) % len(ODD)]
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            _check(f(a, b), a, b, dtype)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 67, 5), (4, 4, 4), (67, 33, 65), (128, 300, 10),
                                   (130, 520, 97), (2, 5, 600)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_function_static_shapes(m, k, n, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    x, y = gc.placeholder((m, k), dtype), gc.placeholder((k, n), dtype)
    _check(gc.function([x, y], x @ y)(a, b), a, b, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_function_symbolic_batch_mlp_layer(dtype):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((45, 70)).astype(dtype)
    x = gc.placeholder((None, 45), dtype)
    f = gc.function([x], x @ gc.shared(w))
    for batch in (1, 2, 3, 4, 5, 31, 129):
        a = rng.standard_normal((batch, 45)).astype(dtype)
        _check(f(a), a, w, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batched_and_broadcast(dtype):
    rng = np.random.default_rng(5)
    cases = [((3, 9, 17), (3, 17, 33)), ((2, 3, 10, 7), (7, 12)), ((10, 7), (4, 7, 19)),
             ((2, 1, 6, 5), (1, 3, 5, 40)), ((None, 20, 9), (9, 18))]
    for sa, sb in cases:
        shape_a = tuple(2 if d is None else d for d in sa)
        a = rng.standard_normal(shape_a).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        x, y = gc.placeholder(sa, dtype), gc.placeholder(sb, dtype)
        got = gc.function([x, y], x @ y)(a, b)
        ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
        assert got.shape == ref.shape
        assert np.allclose(got, ref, rtol=1e-4 if dtype == "float32" else 1e-11, atol=1e-4 if dtype == "float32" else 1e-11)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_fallback(dtype):
    rng = np.random.default_rng(6)
    a = rng.integers(-9, 9, (13, 21)).astype(dtype)
    b = rng.integers(-9, 9, (21, 34)).astype(dtype)
    x, y = gc.placeholder((None, 21), dtype), gc.placeholder((21, 34), dtype)
    assert np.array_equal(gc.function([x, y], x @ y)(a, b), a @ b)


def test_gradients_through_matmul_match_reference():
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((37, 19)).astype("float32")
    x = gc.placeholder((None, 37), "float32")
    w = gc.shared(w0)
    loss = gc.ops.sum(gc.ops.tanh(x @ w) ** 2)
    gw = gc.grad(loss, w)
    xv = rng.standard_normal((50, 37)).astype("float32")
    native = gc.function([x], gw)(xv)
    ref = gc.function([x], gw, mode="reference")(xv)
    assert np.allclose(native, ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def parallel():
    from graphc.lower import runtime_library
    from graphc.lower.gemm import gemm_parallel_function
    runtime_library.load()  # the thread pool the threaded GEMM calls
    module = ir.Module(name="gemm_mt_test")
    fns = {}
    for dtype in ("float32", "float64"):
        gemm_parallel_function(module, dtype).linkage = ""
    native = compile_ir(str(module))
    for dtype, ct in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
        p = ctypes.POINTER(ct)
        i = ctypes.c_int64
        fns[dtype] = ctypes.CFUNCTYPE(None, i, i, i, p, i, i, p, i, i, p, i, ct, ct, i)(
            native.address(f"graphc_gemm_{dtype}_mt"))
    fns["_keep"] = native
    return fns


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", [(301, 257, 263), (700, 190, 131), (97, 211, 901), (5, 40, 7)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_slices(parallel, dtype, m, k, n, threads):
    """Slices by columns (n >= m) or rows, whole tiles per slice, the small-product shortcut."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype)
    ct = ctypes.c_float if dtype == "float32" else ctypes.c_double
    ptr = lambda x: x.ctypes.data_as(ctypes.POINTER(ct))  # noqa: E731
    parallel[dtype](m, n, k, ptr(a), k, 1, ptr(b), n, 1, ptr(c), n, 1.0, 0.0, threads)
    _check(c, a, b, dtype)
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)  # both read transposed, in place
    c = np.full((m, n), np.nan, dtype)
    parallel[dtype](m, n, k, ptr(at), 1, m, ptr(bt), 1, k, ptr(c), n, 1.0, 0.0, threads)
    _check(c, a, b, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)  # C = -0.5 A @ B + C: every slice accumulates
    c = c0.copy()
    parallel[dtype](m, n, k, ptr(a), k, 1, ptr(b), n, 1, ptr(c), n, -0.5, 1.0, threads)
    _check((c - c0) / -0.5, a, b, dtype)


def test_kernel_threads_hook():
    """CompileOptions(threads=2) reaches the kernels: the matmul calls the threaded GEMM."""
    rng = np.random.default_rng(9)
    x, y = gc.placeholder((None, 300), "float32"), gc.placeholder((300, 290), "float32")
    f = gc.function([x, y], x @ y, options=gc.CompileOptions(threads=2))
    # rows known at run time: the kernel calls the runtime library's dispatcher (plain loop
    # for few rows, else the packed GEMM), threaded or not
    assert "graphc_matmul_float32_mt" in f.llvm_ir
    assert "_mt" not in gc.function([x, y], x @ y, options=gc.CompileOptions(threads=1)).llvm_ir
    x64 = gc.placeholder((64, 300), "float32")
    static_rows = gc.function([x64, y], x64 @ y, options=gc.CompileOptions(threads=2))
    assert "graphc_gemm_float32_mt" in static_rows.llvm_ir  # rows known: the packed GEMM directly
    a = rng.standard_normal((64, 300)).astype("float32")
    b = rng.standard_normal((300, 290)).astype("float32")
    _check(static_rows(a, b), a, b, "float32")
    for m in (2, 7, 300):
        a = rng.standard_normal((m, 300)).astype("float32")
        b = rng.standard_normal((300, 290)).astype("float32")
        _check(f(a, b), a, b, "float32")


@pytest.mark.parametrize("m,k,n", [(2, 5, 3), (33, 70, 65), (130, 300, 41)])
def test_matmul_reads_transposed_operands_in_place(m, k, n):
    """x.T @ y, x @ y.T and batched variants: no transpose kernel (the GEMM reads the source
    with swapped strides), and the values equal NumPy's; a transpose with another reader is
    still materialised."""
    rng = np.random.default_rng(4)
    a = gc.placeholder((k, None), "float32", name="a")  # (k, m): a.T is (m, k)
    b = gc.placeholder((n, k), "float32", name="b")      # b.T is (k, n)
    f = gc.function([a, b], [a.T @ b.T, (a.T @ b.T) + gc.ops.sum(a.T)])
    kinds = [s.node.op for s in f._native.program.steps if s.node is not None]
    assert gc.ir.Op.MATMUL in kinds
    assert kinds.count(gc.ir.Op.TRANSPOSE) == 1  # only for the sum, which is not a matmul
    av = rng.standard_normal((k, m)).astype("float32")
    bv = rng.standard_normal((n, k)).astype("float32")
    got, got2 = f(av, bv)
    _check(got, np.ascontiguousarray(av.T), np.ascontiguousarray(bv.T), "float32")
    np.testing.assert_allclose(got2, av.T @ bv.T + av.sum(), rtol=1e-4, atol=1e-3)
    x = gc.placeholder((3, k, m), "float32", name="x")
    y = gc.placeholder((k, n), "float32", name="y")
    g = gc.function([x, y], gc.ops.swapaxes(x, -1, -2) @ y)
    assert not any(s.node is not None and s.node.op is gc.ir.Op.TRANSPOSE for s in g._native.program.steps)
    xv = rng.standard_normal((3, k, m)).astype("float32")
    yv = rng.standard_normal((k, n)).astype("float32")
    np.testing.assert_allclose(g(xv, yv), np.swapaxes(xv, -1, -2) @ yv, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def dispatcher():
    """``graphc_matmul_<dtype>_mt``: few rows take the plain loop, threaded by slices of k
    (partial results summed) or, when those would not fit, of columns."""
    from graphc.lower import runtime_library
    runtime_library.load()  # the thread pool
    module = ir.Module(name="matmul_mt_test")
    for dtype in ("float32", "float64"):
        matmul_function(module, dtype, True).linkage = ""
    native = compile_ir(str(module))
    fns = {"_keep": native}
    for dtype, ct in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
        p, i = ctypes.POINTER(ct), ctypes.c_int64
        fns[dtype] = ctypes.CFUNCTYPE(None, i, i, i, p, i, i, p, i, i, p, i, ct, ct, i)(
            native.address(f"graphc_matmul_{dtype}_mt"))
    return fns


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", [(1, 784, 512), (3, 301, 700), (2, 1, 70000), (3, 30, 6000), (1, 5000, 40),
                                   (2, 7, 33), (1, 9, 5)])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_few_rows_threaded(dispatcher, dtype, m, k, n, threads, b_transposed):
    """Every k: whole passes of ROWS_PER_PASS rows of B and the rest, split between threads."""
    rng = np.random.default_rng(10)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bt = np.ascontiguousarray(b.T)
    ct = ctypes.c_float if dtype == "float32" else ctypes.c_double
    ptr = lambda x: x.ctypes.data_as(ctypes.POINTER(ct))  # noqa: E731
    b_args = (ptr(bt), 1, k) if b_transposed else (ptr(b), n, 1)
    c = np.full((m, n), np.nan, dtype)
    dispatcher[dtype](m, n, k, ptr(a), k, 1, *b_args, ptr(c), n, 1.0, 0.0, threads)
    _check(c, a, b, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    dispatcher[dtype](m, n, k, ptr(a), k, 1, *b_args, ptr(c), n, 0.5, 2.0, threads)
    _check((c - 2.0 * c0.astype(np.float64)) / 0.5, a, b, dtype)
    at = np.ascontiguousarray(a.T)  # A read down its columns (the autodiff's x.T)
    c = np.full((m, n), np.nan, dtype)
    dispatcher[dtype](m, n, k, ptr(at), 1, m, *b_args, ptr(c), n, 1.0, 0.0, threads)
    _check(c, a, b, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [17, 300])
def test_row_major_a_packed_or_read_in_place(direct, dtype, n):
    """A with contiguous rows is read in place for few columns unless its row stride is a
    multiple of 4 KB; otherwise packed. Both give the product, partial row panels included."""
    rng = np.random.default_rng(11)
    for stride in (1024 if dtype == "float32" else 512, 37):  # 4 KB rows, and odd ones
        big = rng.standard_normal((23, stride)).astype(dtype)
        a = big[:, :29]
        b = rng.standard_normal((29, n)).astype(dtype)
        c = np.full((23, n), np.nan, dtype)
        _call(direct, dtype, a, b, c)
        _check(c, a, b, dtype)


def test_threads_without_the_pool(monkeypatch):
    """Where the pool is not available (not Linux), the threaded GEMM makes a thread per slice
    and call: same products."""
    from graphc.lower import threadpool
    monkeypatch.setattr(threadpool, "available", lambda: False)
    module = ir.Module(name="gemm_threads_test")
    for dtype in ("float32", "float64"):
        matmul_function(module, dtype, True).linkage = ""
    assert threadpool.NAME not in str(module) and "pthread_create" in str(module)
    native = compile_ir(str(module))
    rng = np.random.default_rng(12)
    for dtype, ct in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
        p, i = ctypes.POINTER(ct), ctypes.c_int64
        fn = ctypes.CFUNCTYPE(None, i, i, i, p, i, i, p, i, i, p, i, ct, ct, i)(
            native.address(f"graphc_matmul_{dtype}_mt"))
        ptr = lambda x: x.ctypes.data_as(ctypes.POINTER(ct))  # noqa: E731
        for m, k, n in [(301, 257, 263), (1, 784, 512), (3, 30, 6000)]:
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            c = np.full((m, n), np.nan, dtype)
            fn(m, n, k, ptr(a), k, 1, ptr(b), n, 1, ptr(c), n, 1.0, 0.0, 3)
            _check(c, a, b, dtype)
