"""Optimizer steps against a NumPy transcription of Keras 3's update formulas."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.keras import optimizers

T = np.array([0.5, -1.0, 2.0, 0.0], "float64")
W0 = np.array([1.0, 1.0, -1.0, 0.3], "float64")


def np_steps(name, kw, steps):
    """Keras 3 formulas in NumPy (float64), for loss 0.5 * sum((w - T)^2 * scale)."""
    w = W0.copy()
    lr = kw.get("learning_rate", 0.01)
    st: dict = {}
    for it in range(steps):
        g = (w - T) * np.array([1.0, 2.0, 3.0, 4.0])
        if "clipnorm" in kw:
            n = np.sqrt(np.sum(g ** 2))
            g = g * kw["clipnorm"] / max(n, kw["clipnorm"])
        if "clipvalue" in kw:
            g = np.clip(g, -kw["clipvalue"], kw["clipvalue"])
        if "global_clipnorm" in kw:
            n = np.sqrt(np.sum(g ** 2))
            g = g * kw["global_clipnorm"] * min(1 / n, 1 / kw["global_clipnorm"])
        t = it + 1
        if kw.get("weight_decay"):
            w = w - w * kw["weight_decay"] * lr
        if name == "SGD":
            mom = kw.get("momentum", 0.0)
            if mom:
                m = st.get("m", 0) * mom - lr * g
                st["m"] = m
                w = w + (mom * m - lr * g if kw.get("nesterov") else m)
            else:
                w = w - lr * g
        elif name in ("Adam", "AdamW"):
            b1, b2, eps = 0.9, 0.999, 1e-7
            m = st.get("m", 0) + (g - st.get("m", 0)) * (1 - b1)
            v = st.get("v", 0) + (g * g - st.get("v", 0)) * (1 - b2)
            st["m"], st["v"] = m, v
            if kw.get("amsgrad"):
                v = st["vh"] = np.maximum(st.get("vh", 0), v)
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            w = w - m * alpha / (np.sqrt(v) + eps)
        elif name == "RMSprop":
            rho, eps, mom = 0.9, 1e-7, kw.get("momentum", 0.0)
            v = rho * st.get("v", 0) + (1 - rho) * g * g
            st["v"] = v
            if kw.get("centered"):
                a = st["a"] = rho * st.get("a", 0) + (1 - rho) * g
                denom = v - a * a + eps
            else:
                denom = v + eps
            inc = lr * g / np.sqrt(denom)
            if mom:
                st["mo"] = mom * st.get("mo", 0) + inc
                w = w - st["mo"]
            else:
                w = w - inc
        elif name == "Adagrad":
            acc = st["acc"] = st.get("acc", 0.1) + g * g
            w = w - lr * g / np.sqrt(acc + 1e-7)
        elif name == "Adadelta":
            rho, eps = 0.95, 1e-7
            ag = st["ag"] = rho * st.get("ag", 0) + (1 - rho) * g * g
            ad = st.get("ad", 0)
            delta = -np.sqrt(ad + eps) * g / np.sqrt(ag + eps)
            st["ad"] = rho * ad + (1 - rho) * delta * delta
            w = w + lr * delta
        elif name == "Nadam":
            b1, b2, eps = 0.9, 0.999, 1e-7
            u_t = b1 * (1 - 0.5 * 0.96 ** t)
            u_t1 = b1 * (1 - 0.5 * 0.96 ** (t + 1))
            up = st["up"] = st.get("up", 1.0) * u_t
            up1 = up * u_t1
            m = st["m"] = st.get("m", 0) + (g - st.get("m", 0)) * (1 - b1)
            v = st["v"] = st.get("v", 0) + (g * g - st.get("v", 0)) * (1 - b2)
            m_hat = u_t1 * m / (1 - up1) + (1 - u_t) * g / (1 - up)
            v_hat = v / (1 - b2 ** t)
            w = w - m_hat * lr / (np.sqrt(v_hat) + eps)
    return w


CASES = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "clipnorm": 0.5}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.3}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 0.7}),
    ("Adam", {"learning_rate": 0.05}),
    ("Adam", {"learning_rate": 0.05, "amsgrad": True}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Nadam", {"learning_rate": 0.05}),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{'-'.join(k)}" for n, k in CASES])
def test_update_formulas(name, kw):
    opt = getattr(optimizers, name)(**kw)
    w = gc.shared(W0.astype("float32"))
    loss = gc.ops.sum(0.5 * gc.ops.square(w - T.astype("float32")) * np.array([1, 2, 3, 4], "float32"))
    (g,) = gc.grad(loss, [w])
    step = gc.function([], loss, updates=opt.update_graph([g], [w]), mode="reference")
    for _ in range(6):
        step()
    np.testing.assert_allclose(w.get_value(), np_steps(name, kw, 6), rtol=1e-4, atol=1e-5)
    assert int(opt.iterations.get_value()) == 6


def test_names_lr_alias_and_errors():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert optimizers.SGD(lr=0.3).learning_rate == pytest.approx(0.3)
    with pytest.raises(Exception, match="valid names: adadelta, adagrad, adam"):
        optimizers.get("adamm")
    o = optimizers.Adam(learning_rate=optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    assert o.learning_rate == pytest.approx(0.1)
    with pytest.raises(TypeError):
        o.learning_rate = 0.2
    cfg = optimizers.serialize(o)
    o2 = optimizers.deserialize(cfg)
    assert isinstance(o2, optimizers.Adam) and o2.learning_rate == pytest.approx(0.1)
