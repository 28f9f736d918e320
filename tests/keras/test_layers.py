"""One shared test for every layer: build, call, a training step, config round trip, and
save/load giving identical predictions."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphc.keras as keras
from graphc.keras import layers as L
from graphc.keras.models import Model, load_model


def _double(x):
    return x * 2.0


# name -> (factory of the layer-under-test applied to symbolic inputs, input shapes, custom objects)
def _single(layer_fn, shape=(6,)):
    def build(inputs):
        return layer_fn()(inputs[0])
    return build, [shape]


def _merge(layer_fn, shapes=((6,), (6,))):
    def build(inputs):
        return layer_fn()(list(inputs))
    return build, list(shapes)


CASES = {
    "Dense": _single(lambda: L.Dense(4, activation="tanh")),
    "Dense_regularized": _single(lambda: L.Dense(4, kernel_regularizer="l2", bias_regularizer=keras.regularizers.l1(0.01),
                                                 kernel_constraint="max_norm", bias_constraint="non_neg",
                                                 activity_regularizer=keras.regularizers.L2(0.001))),
    "Activation": _single(lambda: L.Activation("selu")),
    "Dropout": _single(lambda: L.Dropout(0.3)),
    "Flatten": _single(lambda: L.Flatten(), (2, 3)),
    "Reshape": _single(lambda: L.Reshape((3, 2)), (6,)),
    "Permute": _single(lambda: L.Permute((2, 1)), (2, 3)),
    "RepeatVector": _single(lambda: L.RepeatVector(3), (6,)),
    "Lambda": _single(lambda: L.Lambda(_double)),
    "Concatenate": _merge(lambda: L.Concatenate(), ((6,), (2,))),
    "Add": _merge(lambda: L.Add()),
    "Subtract": _merge(lambda: L.Subtract()),
    "Multiply": _merge(lambda: L.Multiply()),
    "Average": _merge(lambda: L.Average()),
    "Maximum": _merge(lambda: L.Maximum()),
    "Minimum": _merge(lambda: L.Minimum()),
    "Dot": _merge(lambda: L.Dot(axes=-1)),
    # issue 4: convolution and pooling
    "Conv2D": _single(lambda: L.Conv2D(3, 3, activation="relu"), (5, 5, 2)),
    "Conv2D_channels_first": _single(lambda: L.Conv2D(4, (2, 3), strides=2, padding="same", groups=2,
                                                      data_format="channels_first"), (2, 4, 5)),
    "Conv2DTranspose": _single(lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same"), (3, 3, 2)),
    "DepthwiseConv2D": _single(lambda: L.DepthwiseConv2D(2, depth_multiplier=2), (3, 3, 2)),
    "SeparableConv2D": _single(lambda: L.SeparableConv2D(3, 2, padding="same"), (3, 3, 2)),
    "Conv1D": _single(lambda: L.Conv1D(3, 2, padding="same"), (5, 2)),
    "MaxPooling2D": _single(lambda: L.MaxPooling2D(), (4, 5, 2)),
    "MaxPooling1D": _single(lambda: L.MaxPooling1D(2, padding="same"), (5, 2)),
    "AveragePooling2D": _single(lambda: L.AveragePooling2D(2, strides=1, padding="same"), (3, 3, 2)),
    "AveragePooling1D": _single(lambda: L.AveragePooling1D(), (4, 2)),
    "GlobalAveragePooling2D": _single(lambda: L.GlobalAveragePooling2D(), (3, 3, 2)),
    "GlobalAveragePooling1D": _single(lambda: L.GlobalAveragePooling1D(), (3, 2)),
    "GlobalMaxPooling2D": _single(lambda: L.GlobalMaxPooling2D(keepdims=True), (3, 3, 2)),
    "GlobalMaxPooling1D": _single(lambda: L.GlobalMaxPooling1D(), (3, 2)),
    "ZeroPadding2D": _single(lambda: L.ZeroPadding2D(((1, 0), (0, 2))), (2, 2, 2)),
    "ZeroPadding1D": _single(lambda: L.ZeroPadding1D(1), (2, 2)),
    "Cropping2D": _single(lambda: L.Cropping2D(((1, 0), (0, 1))), (3, 3, 2)),
    "Cropping1D": _single(lambda: L.Cropping1D((1, 0)), (3, 2)),
    "UpSampling2D": _single(lambda: L.UpSampling2D((2, 1)), (2, 2, 2)),
    "UpSampling1D": _single(lambda: L.UpSampling1D(2), (2, 2)),
    # issue 4: normalisation and noise
    "BatchNormalization": _single(lambda: L.BatchNormalization(momentum=0.5), (3, 4)),
    "LayerNormalization": _single(lambda: L.LayerNormalization(), (3, 4)),
    "SpatialDropout2D": _single(lambda: L.SpatialDropout2D(0.5), (2, 2, 3)),
    "SpatialDropout1D": _single(lambda: L.SpatialDropout1D(0.5), (2, 3)),
    "GaussianNoise": _single(lambda: L.GaussianNoise(0.1)),
    "GaussianDropout": _single(lambda: L.GaussianDropout(0.2)),
    # issue 4: embedding and recurrent (the pre-Dense feeds Embedding through a cast to int:
    # no gradient reaches it, see NO_UPSTREAM_GRAD)
    "Embedding": _single(lambda: L.Embedding(12, 3), (4,)),
    "SimpleRNN": _single(lambda: L.SimpleRNN(3, return_sequences=True), (3, 2)),
    "LSTM": _single(lambda: L.LSTM(3, go_backwards=True), (3, 2)),
    "GRU": _single(lambda: L.GRU(3, reset_after=False), (3, 2)),
    "GRU_reset_after": _single(lambda: L.GRU(2, return_sequences=True), (3, 2)),
    "Bidirectional": _single(lambda: L.Bidirectional(L.LSTM(2, return_sequences=True)), (3, 2)),
    "TimeDistributed": _single(lambda: L.TimeDistributed(L.Dense(3)), (3, 2)),
}
CUSTOM = {"_double": _double}
NO_UPSTREAM_GRAD = {"Embedding"}  # cases whose layer is not differentiable in its input
# A bias right before a batch normalisation gets an exactly zero gradient (the batch mean is
# subtracted); what the step changes is rounding noise, so it is not checked.
ZERO_GRAD_WEIGHTS = {"BatchNormalization": ("pre0/bias",)}
# Cases run through the interpreter: their native compiles (strided/grouped convolutions) take
# 10-30 s each with the current LLVM pipeline; the native path of these layers is covered by
# the Conv2D cases here and by tests/keras/test_conv.py.
REFERENCE_CASES = {"Conv2D_channels_first", "TimeDistributed", "Conv2DTranspose", "DepthwiseConv2D",
                   "SeparableConv2D"}


def _model(name):
    build, shapes = CASES[name]
    inputs = [L.Input(shape=s, name=f"in{i}") for i, s in enumerate(shapes)]
    # a Dense before the layer makes every case have trainable weights upstream of it
    pre = [L.Dense(s[-1], name=f"pre{i}")(x) for i, (x, s) in enumerate(zip(inputs, shapes))]
    y = build(pre)
    y = L.Flatten(name="flat")(y) if len(y.shape) > 2 else y
    out = L.Dense(2, name="head")(y)
    return Model(inputs, out), shapes


@pytest.fixture
def case_mode(request):
    from graphc.keras import config
    old = config.run_mode()
    if request.node.callspec.params["name"] in REFERENCE_CASES:
        config.set_run_mode("reference")
    yield
    config.set_run_mode(old)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer(name, tmp_path, case_mode):
    np.random.seed(0)
    model, shapes = _model(name)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(10,) + s).astype("float32") for s in shapes]
    y = rng.normal(size=(10, 2)).astype("float32")
    # call: the layer's output shape agrees with what predict produces
    pred = model.predict(xs, verbose=0)
    assert pred.shape == (10, 2) and np.all(np.isfinite(pred))
    layer = [l for l in model.layers if l.name not in ("head", "flat") and not l.name.startswith(("in", "pre"))][0]
    assert layer.built
    # the layer alone, eagerly on arrays, agrees with its symbolic output shape
    # (a training step changes every trainable weight)
    before = [w.copy() for w in model.get_weights()]
    trainable_ids = {id(n) for n in model.trainable_weights}
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(xs, y)
    after = model.get_weights()
    for n, b, a in zip(model.weights, before, after):
        if str(n.name) in ZERO_GRAD_WEIGHTS.get(name, ()):
            continue
        if id(n) in trainable_ids and not (name in NO_UPSTREAM_GRAD and str(n.name).startswith("pre")):
            assert not np.allclose(a, b), f"{n.name} was not updated"
    # config round trip
    cfg = layer.get_config()
    json.dumps(cfg)
    with keras.custom_object_scope(CUSTOM):
        clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg
    # save and load: identical predictions
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = load_model(path, custom_objects=CUSTOM)
    np.testing.assert_array_equal(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0))
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    # json round trip (architecture only)
    again = keras.models.model_from_json(model.to_json(), custom_objects=CUSTOM)
    assert [w.shape for w in again.get_weights()] == [w.shape for w in model.get_weights()]


def test_every_layer_is_covered():
    exported = {n for n in L.__all__ if n[0].isupper() and n not in ("Layer", "InputSpec", "Input", "InputLayer")}
    covered = {n.split("_")[0] for n in CASES}
    assert exported <= covered, exported - covered


def test_dropout_training_flag():
    d = L.Dropout(0.5, seed=3)
    x = L.Input(shape=(1000,))
    m = Model(x, d(x))
    data = np.ones((4, 1000), "float32")
    np.testing.assert_array_equal(m.predict(data, verbose=0), data)  # inference: identity
    import graphc as gc
    ph = gc.placeholder((None, 1000))
    f = gc.function([ph], d(ph, training=True), mode="reference")
    out = f(data)
    frac = np.mean(out == 0)
    assert 0.4 < frac < 0.6 and np.allclose(out[out != 0], 2.0)
    assert not np.array_equal(f(data), out)  # new mask at each call


def test_layer_eager_call_on_arrays():
    d = L.Dense(3, kernel_initializer="ones", bias_initializer="zeros")
    out = d(np.ones((2, 4), "float32"))
    np.testing.assert_allclose(out, np.full((2, 3), 4.0))
    assert d.kernel.shape == (4, 3) and d.get_weights()[0].shape == (4, 3)


def test_shared_layer_and_nested_model():
    shared = L.Dense(3, name="shared")
    a, b = L.Input(shape=(4,)), L.Input(shape=(4,))
    out = L.add([shared(a), shared(b)])
    m = Model([a, b], out)
    assert len(m.trainable_weights) == 2
    x = np.random.rand(5, 4).astype("float32")
    k, bias = shared.get_weights()
    np.testing.assert_allclose(m.predict([x, x], verbose=0), 2 * (x @ k + bias), rtol=1e-5)
    outer_in = L.Input(shape=(4,))
    inner = Model(a, shared(a))
    nested = Model(outer_in, L.Dense(1)(inner(outer_in)))
    assert len(nested.weights) == 4
    assert nested.predict(x, verbose=0).shape == (5, 1)


def test_subclassed_layer_and_model(tmp_path):
    @keras.saving.register_keras_serializable()
    class Scale(L.Layer):
        def __init__(self, init=1.0, **kwargs):
            super().__init__(**kwargs)
            self.init = init

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                         initializer=keras.initializers.Constant(self.init))

        def call(self, inputs):
            return inputs * self.scale

        def get_config(self):
            return {**super().get_config(), "init": self.init}

    class MLP(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = L.Dense(8, activation="relu")
            self.scale = Scale(0.5)
            self.out = L.Dense(1)

        def call(self, inputs, training=None):
            return self.out(self.scale(self.hidden(inputs)))

    m = MLP()
    x = np.random.rand(32, 3).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    m.compile("adam", "mse")
    h = m.fit(x, y, epochs=3, verbose=0, batch_size=8)
    assert len(h.history["loss"]) == 3
    assert len(m.weights) == 5 and m.predict(x, verbose=0).shape == (32, 1)
    inp = L.Input(shape=(3,))
    fm = Model(inp, Scale(2.0)(inp))
    fm.save(os.path.join(tmp_path, "s.keras"))
    np.testing.assert_allclose(load_model(os.path.join(tmp_path, "s.keras")).predict(x, verbose=0), 2 * x)
