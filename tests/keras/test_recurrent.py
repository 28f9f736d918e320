"""Embedding, SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed: NumPy references with
Keras's weight layouts and gate orders, masking, gradients against finite differences, clear
errors, and an LSTM classifier that needs the order of its tokens."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.keras as keras
from graphc.keras import config, layers as L
from graphc.keras.models import Model



@pytest.fixture(autouse=True)
def _keep_numpy_global_rng():
    """Leave NumPy's global generator as found: later tests draw initial weights from it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)

@pytest.fixture(autouse=True)
def reference_mode():
    """The interpreter: recurrent layers are unrolled, and native compiles grow with length."""
    old = config.run_mode()
    config.set_run_mode("reference")
    yield
    config.set_run_mode(old)


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_rnn(kind, x, weights, units, go_backwards=False, reset_after=True, h0=None):
    """Reference recurrences (Keras's equations and layouts); returns (sequence, states)."""
    b, t, _ = x.shape
    h = np.zeros((b, units)) if h0 is None else h0[0]
    c = np.zeros((b, units)) if h0 is None or len(h0) < 2 else h0[1]
    k, rk, bias = weights
    seq = []
    steps = range(t - 1, -1, -1) if go_backwards else range(t)
    u = units
    for s in steps:
        xt = x[:, s]
        if kind == "simple":
            h = np.tanh(xt @ k + h @ rk + bias)
        elif kind == "lstm":
            z = xt @ k + h @ rk + bias
            i, f, g, o = sig(z[:, :u]), sig(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sig(z[:, 3 * u:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            if reset_after:
                xz = xt @ k + bias[0]
                rec = h @ rk + bias[1]
                z, r = sig(xz[:, :u] + rec[:, :u]), sig(xz[:, u:2 * u] + rec[:, u:2 * u])
                hh = np.tanh(xz[:, 2 * u:] + r * rec[:, 2 * u:])
            else:
                xz = xt @ k + bias
                z = sig(xz[:, :u] + h @ rk[:, :u])
                r = sig(xz[:, u:2 * u] + h @ rk[:, u:2 * u])
                hh = np.tanh(xz[:, 2 * u:] + (r * h) @ rk[:, 2 * u:])
            h = z * h + (1 - z) * hh
        seq.append(h)
    states = [h, c] if kind == "lstm" else [h]
    return np.stack(seq, 1), states


def _random_weights(layer, rng):
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()])
    return layer.get_weights()


@pytest.mark.parametrize("kind,cls,kw", [("simple", L.SimpleRNN, {}), ("lstm", L.LSTM, {}), ("gru", L.GRU, {}),
                                         ("gru", L.GRU, {"reset_after": False})])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_layers_match_numpy(kind, cls, kw, go_backwards):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    layer = cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards, **kw)
    layer(x)
    w = _random_weights(layer, rng)
    out = layer(x)
    seq, states = np_rnn(kind, x.astype(np.float64), w, 6, go_backwards, kw.get("reset_after", True))
    np.testing.assert_allclose(out[0], seq, rtol=1e-4, atol=1e-5)
    for got, want in zip(out[1:], states):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert len(out) == 1 + len(states)
    last = cls(6, go_backwards=go_backwards, **kw)
    last(x)
    last.set_weights(w)
    np.testing.assert_allclose(last(x), seq[:, -1], rtol=1e-4, atol=1e-5)
    shapes = {"simple": [(4, 6), (6, 6), (6,)], "lstm": [(4, 24), (6, 24), (24,)],
              "gru": [(4, 18), (6, 18), (2, 18) if kw.get("reset_after", True) else (18,)]}[kind]
    assert [a.shape for a in w] == shapes


def test_lstm_forget_bias_and_initial_state():
    lstm = L.LSTM(3)
    lstm(np.zeros((1, 2, 2), "float32"))
    np.testing.assert_array_equal(lstm.get_weights()[2], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    rng = np.random.default_rng(1)
    w = _random_weights(lstm, rng)
    x = rng.normal(size=(2, 4, 2)).astype("float32")
    h0, c0 = rng.normal(size=(2, 3)).astype("float32"), rng.normal(size=(2, 3)).astype("float32")
    xp, hp, cp = gc.placeholder((None, 4, 2)), gc.placeholder((None, 3)), gc.placeholder((None, 3))
    got = gc.function([xp, hp, cp], lstm(xp, initial_state=[hp, cp]), mode="reference")(x, h0, c0)
    seq, _ = np_rnn("lstm", x.astype(np.float64), w, 3, h0=[h0, c0])
    np.testing.assert_allclose(got, seq[:, -1], rtol=1e-4, atol=1e-5)


def test_bidirectional_and_time_distributed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    bi = L.Bidirectional(L.GRU(5, return_sequences=True))
    bi(x)
    ws = bi.get_weights()
    bi.set_weights([rng.normal(scale=0.5, size=w.shape) for w in ws])
    fw_w, bw_w = bi.get_weights()[:3], bi.get_weights()[3:]
    fw, _ = np_rnn("gru", x.astype(np.float64), fw_w, 5)
    bw, _ = np_rnn("gru", x.astype(np.float64), bw_w, 5, go_backwards=True)
    np.testing.assert_allclose(bi(x), np.concatenate([fw, bw[:, ::-1]], -1), rtol=1e-4, atol=1e-5)
    bi_sum = L.Bidirectional(L.SimpleRNN(4), merge_mode="sum")
    assert bi_sum(x).shape == (2, 4)
    assert len(bi_sum.weights) == 6
    td = L.TimeDistributed(L.Dense(7))
    y = td(x)
    k, b = td.get_weights()
    np.testing.assert_allclose(y, x @ k + b, rtol=1e-5)
    inp = L.Input((4, 3))
    assert tuple(td(inp).shape) == (None, 4, 7)


def test_embedding_and_mask_zero():
    rng = np.random.default_rng(3)
    emb = L.Embedding(10, 4)
    idx = np.array([[1, 2, 0], [9, 0, 0]])
    out = emb(idx)
    np.testing.assert_allclose(out, emb.get_weights()[0][idx])
    assert emb.get_weights()[0].shape == (10, 4) and np.abs(emb.get_weights()[0]).max() <= 0.05
    # mask_zero: padded steps are skipped, so trailing zeros do not change the final state
    inp = L.Input((5,), dtype="int32")
    e = L.Embedding(10, 4, mask_zero=True)
    lstm = L.LSTM(3)
    m = Model(inp, lstm(e(inp)))
    a = np.array([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0]])
    b = np.array([[3, 4, 5, 1, 2], [7, 1, 0, 0, 0]])
    pa = m.predict(a, verbose=0)
    short = L.Input((3,), dtype="int32")
    short_m = Model(short, lstm(e(short)))
    np.testing.assert_allclose(pa[0], short_m.predict(np.array([[3, 4, 5]]), verbose=0)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(m.predict(b, verbose=0)[0], pa[0])
    del rng


def test_recurrent_gradients_finite_differences():
    rng = np.random.default_rng(4)
    for cls in (L.LSTM, L.GRU):
        layer = cls(2, dtype="float64", return_sequences=True)
        x = rng.normal(size=(2, 3, 2))
        xp = gc.placeholder(x.shape, "float64")
        out = layer(xp)
        _random_weights(layer, rng)
        w = rng.normal(size=(2, 3, 2))
        cost = gc.ops.sum(out * gc.constant(w))
        wrt = [xp] + layer.trainable_weights
        grads = gc.function([xp], gc.grad(cost, wrt), mode="reference")(x)
        f = gc.function([xp], cost, mode="reference")
        eps = 1e-6
        # input gradient
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[idx] += eps
            lo[idx] -= eps
            num[idx] = (f(hi) - f(lo)) / (2 * eps)
        np.testing.assert_allclose(grads[0], num, rtol=1e-5, atol=1e-7)
        # recurrent kernel gradient
        rk = layer.recurrent_kernel
        base = layer.get_weights()[1]
        assert base.shape == tuple(rk.shape)
        num = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            ws = layer.get_weights()
            ws[1] = base.copy()
            ws[1][idx] += eps
            layer.set_weights(ws)
            hi = f(x)
            ws[1][idx] -= 2 * eps
            layer.set_weights(ws)
            num[idx] = (hi - f(x)) / (2 * eps)
        ws[1] = base
        layer.set_weights(ws)
        np.testing.assert_allclose(grads[2], num, rtol=1e-5, atol=1e-7)


def test_lstm_learns_token_order():
    """Sequences with the same tokens, labelled by which of two marker tokens comes first."""
    rng = np.random.default_rng(5)
    n, t = 400, 6
    x = rng.integers(3, 8, size=(n, t))
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        p, q = sorted(rng.choice(t, 2, replace=False))
        x[i, p], x[i, q] = (1, 2) if y[i] else (2, 1)
    keras.utils.set_random_seed(0) if hasattr(keras.utils, "set_random_seed") else np.random.seed(0)
    np.random.seed(0)
    model = keras.Sequential([L.Input((t,), dtype="int32"), L.Embedding(8, 8), L.LSTM(16),
                              L.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=25, batch_size=32, verbose=0)
    acc = model.evaluate(x, y, verbose=0)[1]
    xt = rng.integers(3, 8, size=(200, t))
    yt = rng.integers(0, 2, size=200)
    for i in range(200):
        p, q = sorted(rng.choice(t, 2, replace=False))
        xt[i, p], xt[i, q] = (1, 2) if yt[i] else (2, 1)
    test_acc = model.evaluate(xt, yt, verbose=0)[1]
    assert acc >= 0.95 and test_acc >= 0.95, (acc, test_acc)


def test_recurrent_errors():
    with pytest.raises(gc.ShapeError, match=r"lstm_2d.*rank 3.*\(None, 5\)"):
        L.LSTM(3, name="lstm_2d")(L.Input((5,)))
    with pytest.raises(gc.InputError, match="Bidirectional"):
        L.Bidirectional(L.Dense(3))
    with pytest.raises(gc.InputError, match="stateful"):
        L.GRU(3, stateful=True)
    with pytest.raises(gc.ShapeError, match="empty sequence"):
        L.SimpleRNN(3)(gc.placeholder((None, 0, 2)))


def test_sequence_length_may_be_symbolic():
    """One loop node: the same compiled LSTM runs sequences of any length."""
    lstm = L.LSTM(3, return_sequences=True)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 2)).astype("float32")
    xp = gc.placeholder((None, None, 2))
    fn = gc.function([xp], lstm(xp))
    for steps in (1, 4, 6):
        got = fn(x[:, :steps])
        assert got.shape == (2, steps, 3)
        np.testing.assert_allclose(got, np_rnn("lstm", x[:, :steps].astype(np.float64), lstm.get_weights(), 3)[0],
                                   rtol=1e-4, atol=1e-5)


def test_time_distributed_and_lstm_with_a_symbolic_number_of_steps():
    """Input((None, F)): TimeDistributed folds a symbolic number of steps into the batch, and
    the LSTM's loop runs as many steps as the batch has."""
    model = keras.Sequential([L.Input((None, 3)), L.TimeDistributed(L.Dense(4, activation="relu")),
                              L.LSTM(5, return_sequences=True), L.TimeDistributed(L.Dense(2))])
    rng = np.random.default_rng(6)
    dense1, lstm, dense2 = model.layers[0].layer, model.layers[1], model.layers[2].layer
    for steps in (2, 7):
        x = rng.normal(size=(3, steps, 3)).astype("float32")
        got = model.predict(x, verbose=0)
        k1, b1 = dense1.get_weights()
        h = np.maximum(x @ k1 + b1, 0).astype(np.float64)
        seq, _ = np_rnn("lstm", h, lstm.get_weights(), 5)
        k2, b2 = dense2.get_weights()
        np.testing.assert_allclose(got, seq @ k2 + b2, rtol=1e-4, atol=1e-5)
