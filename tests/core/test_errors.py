"""Users get clear errors: what went wrong, with which input or op, the shapes, and their line."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, GraphcError, GradientError, InputError, ShapeError

HERE = os.path.basename(__file__)


def here_plus(k: int) -> str:
    """``test_errors.py:<line of the caller + k>``."""
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + k}"


# ----------------------------------------------------------------------------- call time
@pytest.fixture
def fn_x(mode):
    x = gc.placeholder((None, 3), "float32", name="images")
    return gc.function([x], x * 2, mode=mode, name="scale")


def test_wrong_rank_at_call(fn_x):
    with pytest.raises(ShapeError) as e:
        fn_x(np.zeros(3, np.float32))
    msg = str(e.value)
    assert "'images'" in msg and "(None, 3)" in msg and "(3,)" in msg, msg
    assert "rank" in msg


def test_wrong_shape_at_call(fn_x):
    with pytest.raises(ShapeError) as e:
        fn_x(np.zeros((2, 4), np.float32))
    msg = str(e.value)
    assert "'images'" in msg and "(None, 3)" in msg and "(2, 4)" in msg, msg


def test_wrong_dtype_at_call(fn_x):
    with pytest.raises(DTypeError) as e:
        fn_x(np.zeros((2, 3), np.complex64))
    msg = str(e.value)
    assert "'images'" in msg and "float32" in msg and "complex64" in msg, msg
    with pytest.raises(DTypeError):
        fn_x(np.array([["a", "b", "c"]]))


def test_float_into_int_input_is_refused(mode):
    k = gc.placeholder((2,), "int64", name="labels")
    fn = gc.function([k], k + 1, mode=mode)
    with pytest.raises(DTypeError) as e:
        fn(np.array([1.5, 2.0]))
    assert "'labels'" in str(e.value) and "int64" in str(e.value) and "float64" in str(e.value)
    np.testing.assert_array_equal(fn(np.array([1, 2], np.int32)), [2, 3])  # int32 -> int64 is fine


def test_same_kind_conversion_is_accepted(fn_x):
    out = fn_x(np.ones((2, 3), np.float64))  # float64 -> float32, same kind
    assert out.dtype == np.float32 and out.shape == (2, 3)
    assert fn_x([[1, 2, 3]]).tolist() == [[2, 4, 6]]  # nested lists too


def test_symbolic_sizes_must_agree_at_call(mode):
    a = gc.placeholder((None, 3), "float64", name="a")
    b = gc.placeholder((None, 3), "float64", name="b")
    fn = gc.function([a, b], a + b, mode=mode)
    assert fn(np.ones((2, 3)), np.ones((2, 3))).shape == (2, 3)
    with pytest.raises(ShapeError) as e:
        fn(np.ones((2, 3)), np.ones((5, 3)))
    assert "2" in str(e.value) and "5" in str(e.value)


def test_same_symbol_must_agree_at_call(mode):
    a = gc.placeholder((None, 3), "float64", name="a")
    b = gc.placeholder((a.shape[0], 3), "float64", name="b")  # the same symbolic size
    fn = gc.function([a, b], a * b, mode=mode)
    with pytest.raises(ShapeError):
        fn(np.ones((2, 3)), np.ones((4, 3)))


def test_too_many_and_too_few_arguments(mode):
    x = gc.placeholder((2,), "float32", name="x")
    y = gc.placeholder((2,), "float32", name="y")
    fn = gc.function([x, y], x + y, mode=mode, name="adder")
    v = np.ones(2, np.float32)
    for args in ((v,), (v, v, v), ()):
        with pytest.raises(InputError) as e:
            fn(*args)
        msg = str(e.value)
        assert "adder" in msg and "expected 2 inputs" in msg and f"got {len(args)}" in msg and "x, y" in msg, msg
    with pytest.raises(InputError, match="unknown input 'z'"):
        fn(v, z=v)
    np.testing.assert_array_equal(fn(y=v, x=2 * v), 3 * v)  # by name is fine


# ----------------------------------------------------------------------------- compile time
def test_unknown_name_in_updates(mode):
    w = gc.shared(np.zeros(3, np.float32), name="weights")
    x = gc.placeholder((3,), "float32", name="x")
    with pytest.raises(InputError) as e:
        gc.function([x], gc.ops.sum(x * w), updates=[("nonexistent", w + 1)], mode=mode)
    msg = str(e.value)
    assert "'nonexistent'" in msg and "weights" in msg, msg


def test_update_by_name_works(mode):
    w = gc.shared(np.zeros(3, np.float32), name="counter_w")
    x = gc.placeholder((3,), "float32", name="x")
    fn = gc.function([x], gc.ops.sum(x * w), updates=[("counter_w", w + x)], mode=mode)
    fn(np.ones(3, np.float32))
    np.testing.assert_array_equal(w.get_value(), np.ones(3, np.float32))


def test_updates_on_non_shared_node(mode):
    x = gc.placeholder((3,), "float32", name="x")
    with pytest.raises(InputError, match="not a shared variable"):
        gc.function([x], x * 2, updates=[(x, x + 1)], mode=mode)
    with pytest.raises(InputError, match="not a shared variable"):
        gc.function([x], x * 2, updates=[(x * 2, x + 1)], mode=mode)


def test_updates_shape_and_form_errors(mode):
    w = gc.shared(np.zeros(3, np.float32), name="w_shape")
    x = gc.placeholder((3,), "float32", name="x")
    with pytest.raises(ShapeError) as e:
        gc.function([x], x, updates=[(w, gc.ops.sum(x))], mode=mode)
    assert "w_shape" in str(e.value) and "(3,)" in str(e.value)
    with pytest.raises(InputError):
        gc.function([x], x, updates=[(w, w + 1), (w, w + 2)], mode=mode)  # updated twice
    with pytest.raises(InputError):
        gc.function([x], x, updates=[w], mode=mode)  # not a pair


def test_function_inputs_must_be_placeholders():
    w = gc.shared(np.zeros(3), name="w_input")
    x = gc.placeholder((3,), "float64", name="x")
    with pytest.raises(InputError, match="placeholders"):
        gc.function([w], w * 2, mode="reference")
    with pytest.raises(InputError, match="placeholders"):
        gc.function([x * 2], x, mode="reference")


def test_missing_input_is_named():
    x = gc.placeholder((3,), "float64", name="x")
    forgotten = gc.placeholder((3,), "float64", name="forgotten")
    out = x + forgotten
    with pytest.raises(InputError) as e:
        gc.function([x], out, mode="reference")
    assert "'forgotten'" in str(e.value)


def test_unknown_mode():
    x = gc.placeholder((3,), "float64", name="x")
    with pytest.raises(InputError, match="mode"):
        gc.function([x], x, mode="gpu-please")


# ----------------------------------------------------------------------------- build time
def _check_build_error(exc_info, op: str, shapes: list[str], where: str) -> None:
    msg = str(exc_info.value)
    assert op in msg, msg
    for s in shapes:
        assert s in msg, f"{s} not in: {msg}"
    assert where in msg, f"{where} not in: {msg}"


def test_build_time_broadcast_error_names_op_shapes_and_line():
    x = gc.placeholder((3, 4), "float32", name="x")
    y = gc.placeholder((5,), "float32", name="y")
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        x + y
    _check_build_error(e, "add", ["(3, 4)", "(5,)"], where)


def test_build_time_matmul_error():
    x = gc.placeholder((3, 4), "float32", name="x")
    y = gc.placeholder((5, 2), "float32", name="y")
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        gc.ops.matmul(x, y)
    _check_build_error(e, "matmul", ["(3, 4)", "(5, 2)"], where)


def test_build_time_reshape_error():
    x = gc.placeholder((3, 4), "float32", name="x")
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        gc.ops.reshape(x, (5, -1))
    _check_build_error(e, "reshape", ["(3, 4)", "(5, -1)"], where)


def test_build_time_concatenate_error():
    x = gc.placeholder((3, 4), "float32", name="x")
    y = gc.placeholder((2, 5), "float32", name="y")
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        gc.ops.concatenate([x, y], axis=0)
    _check_build_error(e, "concatenate", ["(3, 4)", "(2, 5)"], where)


def test_build_time_index_and_axis_errors():
    x = gc.placeholder((3, 4), "float32", name="x")
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        x[3]
    _check_build_error(e, "index 3", ["size 3"], where)
    with pytest.raises(ShapeError) as e:
        where = here_plus(1)
        gc.ops.sum(x, axis=2)
    _check_build_error(e, "axis 2", ["(3, 4)"], where)
    with pytest.raises(ShapeError):
        x[1, 2, 3]


def test_build_time_dtype_error():
    k = gc.placeholder((3,), "int64", name="k")
    x = gc.placeholder((3,), "float32", name="x")
    with pytest.raises(DTypeError) as e:
        where = here_plus(1)
        gc.ops.take(x, x)
    _check_build_error(e, "take", ["float32"], where)
    with pytest.raises(DTypeError):
        gc.ops.cast(k, "complex64")


def test_errors_are_graphc_errors():
    """Every error a user can cause derives from GraphcError (and the matching builtin)."""
    assert issubclass(ShapeError, GraphcError) and issubclass(ShapeError, ValueError)
    assert issubclass(DTypeError, GraphcError) and issubclass(DTypeError, TypeError)
    assert issubclass(InputError, GraphcError) and issubclass(GradientError, GraphcError)


def test_shared_set_value_shape_error():
    w = gc.shared(np.zeros((2, 3), np.float32), name="w_set")
    with pytest.raises(ShapeError) as e:
        w.set_value(np.zeros((3, 2), np.float32))
    assert "w_set" in str(e.value) and "(2, 3)" in str(e.value) and "(3, 2)" in str(e.value)


def test_take_out_of_range_at_call(mode):
    x = gc.placeholder((3,), "float64", name="x")
    i = gc.placeholder((2,), "int64", name="i")
    fn = gc.function([x, i], gc.ops.take(x, i), mode=mode)
    np.testing.assert_array_equal(fn(np.arange(3.0), np.array([-1, 2])), [2.0, 2.0])
    with pytest.raises(GraphcError):
        fn(np.arange(3.0), np.array([0, 3]))
