"""Calling a compiled function: concurrent calls from several Python threads."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import InputError


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


def test_inputs_in_the_other_byte_order_and_odd_layouts():
    """A big-endian, strided or list input is converted, never passed to native code as is."""
    x = gc.placeholder((None, 3), "float32", name="x")
    f = gc.function([x], x * 2.0 + 1.0)
    ref = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = ref * 2.0 + 1.0
    for given in (ref.astype(">f4"), np.asfortranarray(ref), ref.tolist(), ref.astype(np.float64),
                  np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2] * 0 + ref):
        np.testing.assert_array_equal(f(given), want)
    with pytest.raises(InputError, match="expected 1 inputs"):
        f()
    with pytest.raises(InputError, match="expected 1 inputs"):
        f(None)
