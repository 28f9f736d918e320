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


def test_repeated_calls_take_the_fast_path_only_for_plain_arrays():
    """After a first call has checked a shape, plain arrays of it skip the checks: everything
    else of the same shape (other dtypes and byte orders, strided views, read-only arrays,
    offset views, subclasses) still goes through the conversions and gives the same result.
    Each call returns a new output array."""
    x = gc.placeholder((None, 3), "float32", name="x")
    f = gc.function([x], x * 2.0 + 1.0)
    ref = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = ref * 2.0 + 1.0
    first = f(ref)
    np.testing.assert_array_equal(first, want)
    readonly = ref.copy()
    readonly.flags.writeable = False
    padded = np.concatenate([np.full(5, -7, np.float32), ref.ravel()])[5:].reshape(4, 3)  # offset view
    for given in (ref.astype(">f4"), np.asfortranarray(ref), ref.astype(np.float64), readonly, padded,
                  np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2] * 0 + ref, np.asmatrix(ref), ref):
        out = f(given)
        assert type(out) is np.ndarray and out is not first
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(first, want)  # earlier outputs are not written again
    np.testing.assert_array_equal(f(ref[:2]), want[:2])  # another shape: checked, then fast too
    np.testing.assert_array_equal(f(ref[:2].copy()), want[:2])


def test_the_data_pointer_read_from_the_array_object_matches_numpy():
    from graphc.lower.executable import _DATA_OFFSET, _address, _address_slow
    base = np.arange(40, dtype=np.float64)
    readonly = base.copy()
    readonly.flags.writeable = False
    for a in (base, base[3:], base.reshape(5, 8)[2], readonly, np.empty((0, 3)), np.zeros(()), np.ones(1, np.int8)):
        assert _address(a) == a.__array_interface__["data"][0]
        if a.flags.writeable and a.size:
            assert _address_slow(a) == _address(a)
    import sys
    if sys.implementation.name == "cpython":  # the fast path must not quietly fall back here
        assert _DATA_OFFSET == object.__basicsize__
    else:
        assert _DATA_OFFSET is None
