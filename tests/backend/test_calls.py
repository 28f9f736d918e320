"""Calling a compiled function: concurrent calls from several Python threads."""
from __future__ import annotations

import numpy as np

import graphc as gc


def test_one_function_called_from_several_threads():
    """ctypes releases the GIL during the native call: concurrent calls of one function must
    not share its argument arrays or workspace mid-call."""
    import threading
    x = gc.placeholder((None, 64), "float32", name="x")
    w = gc.shared(np.linspace(-1, 1, 64 * 300, dtype=np.float32).reshape(64, 300), name="w")
    f = gc.function([x], gc.ops.tanh(x @ w) @ gc.ops.transpose(w))
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((n, 64)).astype(np.float32) for n in (7, 50, 128, 300)]
    expected = [f(a) for a in inputs]
    failures = []

    def hammer(i):
        for _ in range(60):
            if not np.allclose(f(inputs[i]), expected[i], rtol=1e-5, atol=1e-5):
                failures.append(i)
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
