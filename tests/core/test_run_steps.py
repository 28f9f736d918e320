"""Function.run_steps: n calls in one native loop give what n calls in turn give, bit for bit:
outputs, updates, random draws; errors stop the loop; reference mode takes the same path in
Python."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import InputError, ShapeError


def _train_step(mode: str = "native"):
    """A small regression step with a random mask (a dropout), updating one weight matrix."""
    x = gc.placeholder((None, 6), "float32", name="x")
    y = gc.placeholder((None,), "float32", name="y")
    w = gc.shared(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4), name="w")
    h = gc.ops.relu(x @ w)
    keep = gc.ops.cast(gc.ops.random_uniform(h.shape, seed=3) > 0.5, "float32")
    h = h * keep * 2.0
    loss = gc.ops.mean((gc.ops.sum(h, axis=-1) - y) ** 2)
    (g,) = gc.grad(loss, [w])
    return gc.function([x, y], [loss, h], updates=[(w, w - 0.05 * g)], mode=mode), w


@pytest.mark.parametrize("mode", ["native", "reference"])
def test_run_steps_equals_calls_in_turn(mode):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((20, 6)).astype(np.float32)
    ys = rng.standard_normal(20).astype(np.float32)
    one_by_one, w1 = _train_step(mode)
    together, w2 = _train_step(mode)
    together(xs[:5], ys[:5])  # a call before: the loop goes on from its random step
    one_by_one(xs[:5], ys[:5])
    separate = [one_by_one(xs[5 * s:5 * s + 5], ys[5 * s:5 * s + 5]) for s in range(4)]
    loss, h = together.run_steps(4, xs, ys)
    assert loss.shape == (4,) and h.shape == (4, 5, 4)
    np.testing.assert_array_equal(loss, np.stack([s[0] for s in separate]))
    np.testing.assert_array_equal(h, np.stack([s[1] for s in separate]))
    np.testing.assert_array_equal(w1.get_value(), w2.get_value())
    assert not np.array_equal(h[0] != 0, h[1] != 0)  # each step drew its own mask
    # and the next call goes on from the same random step
    np.testing.assert_array_equal(together(xs[:5], ys[:5])[1], one_by_one(xs[:5], ys[:5])[1])


def test_run_steps_of_a_function_without_updates_and_one_output():
    x = gc.placeholder((None, 3), "float64", name="x")
    f = gc.function([x], gc.ops.sum(x * x, axis=-1))
    a = np.arange(24, dtype=np.float64).reshape(8, 3)
    out = f.run_steps(4, a)
    np.testing.assert_array_equal(out, (a * a).sum(-1).reshape(4, 2))
    np.testing.assert_array_equal(f.run_steps(1, a), f(a)[None])


def test_run_steps_refuses_inputs_it_cannot_split():
    x = gc.placeholder((None, 3), "float32", name="x")
    f = gc.function([x], x * 2.0)
    with pytest.raises(ShapeError, match=r"run_steps\(4\).*'x' has shape \(6, 3\)"):
        f.run_steps(4, np.zeros((6, 3), np.float32))
    with pytest.raises(InputError, match="n_steps >= 1"):
        f.run_steps(0, np.zeros((6, 3), np.float32))


def test_an_error_stops_the_loop_after_the_steps_before_it():
    """Step 2 of 3 gathers out of range: the error is raised, steps 0 and 1 were applied."""
    idx = gc.placeholder((None,), "int64", name="idx")
    table = gc.shared(np.arange(5, dtype=np.float32), name="table")
    f = gc.function([idx], gc.ops.take(table, idx), updates=[(table, table + 1.0)])
    with pytest.raises(InputError, match="out of range"):
        f.run_steps(3, np.array([0, 1, 2, 3, 9, 0], np.int64))
    np.testing.assert_array_equal(table.get_value(), np.arange(5, dtype=np.float32) + 2)

