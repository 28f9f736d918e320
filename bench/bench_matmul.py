"""matmul n x n x n, float32: graphc's generated GEMM against NumPy's BLAS (and PyTorch).

    python bench/bench_matmul.py [--sizes 512 1024 2048] [--threads 1 2]
"""
from __future__ import annotations

import argparse

import numpy as np

from common import machine, median_time, peer, report, versions

import graphc as gc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"# matmul float32 -- {machine()}; {versions()}")
    threadpoolctl = peer("threadpoolctl")
    torch = peer("torch")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        flop = 2.0 * n ** 3
        for th in args.threads:
            x, y = gc.placeholder((n, n), "float32"), gc.placeholder((n, n), "float32")
            try:
                f = gc.function([x, y], x @ y, options=gc.CompileOptions(threads=th))
            except TypeError:
                f = gc.function([x, y], x @ y)
            got = f(a, b)
            ref = a @ b
            err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
            res, extra = {}, {}
            res["graphc"] = median_time(lambda: f(a, b))
            if threadpoolctl is not None:
                with threadpoolctl.threadpool_limits(limits=th, user_api="blas"):
                    res["numpy"] = median_time(lambda: a @ b)
            elif th == 2:
                res["numpy"] = median_time(lambda: a @ b)
            if torch is not None:
                old = torch.get_num_threads()
                torch.set_num_threads(th)
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                res["torch"] = median_time(lambda: torch.matmul(ta, tb))
                torch.set_num_threads(old)
            for k, t in res.items():
                extra[k] = f"{flop / t / 1e9:6.1f} GFLOP/s"
            extra["graphc"] += f", rel err {err:.1e}"
            if th > 1 and "_mt" not in (f.llvm_ir or ""):
                extra["graphc"] += ", threads option not wired to the kernels yet: 1 thread"
            report(f"matmul {n}x{n}x{n} float32, {th} thread(s)", res, extra)


if __name__ == "__main__":
    main()
