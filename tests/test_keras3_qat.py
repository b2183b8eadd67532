"""Keras 3 QAT (edgequant.train.keras3_qat): real Keras 3 training, real conversion, real LiteRT.

The models are tiny Keras 3 networks; the classifier is trained on the offline MNIST digits.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgequant.errors import UserError


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


@pytest.fixture(scope="module")
def prepared(digits):
    """The offline digits as model-ready arrays (x [N, 28, 28, 1] in [0, 1], y) per split."""
    from types import SimpleNamespace

    from tests.conftest import ready

    def split(s):
        return SimpleNamespace(x=ready(s.x), y=s.y)

    return SimpleNamespace(train=split(digits.train), test=split(digits.test))


@pytest.fixture(scope="module")
def cnn(keras, prepared):
    """A Keras 3 CNN with BatchNormalization, a depthwise block and an Add, trained briefly."""
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1), name="digit")
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv_stem")(inp)
    x = layers.BatchNormalization(name="bn_stem")(x)
    x = layers.ReLU(6.0, name="relu_stem")(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="conv_dw")(x)
    y = layers.BatchNormalization(name="bn_dw")(y)
    y = layers.ReLU(name="relu_dw")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_head")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(prepared.train.x[:1500], prepared.train.y[:1500], batch_size=32, epochs=2, verbose=0)
    return model


def _convert(model, x: dict, path):
    from edgequant.quantize import convert, recipes

    path.write_bytes(convert.convert(model, recipes.get("uint8"), x))
    return path


def _ops(path) -> list[str]:
    from edgequant.tflite.model import TFLiteModel

    return [op.op for op in TFLiteModel.load(path).operators]


@pytest.mark.slow
def test_qat_cnn_converts_to_a_uint8_model_that_passes_the_gate_with_every_op_mapped(
    cnn, prepared, tmp_path
):
    from edgequant.edgetpu import analyzer, gate
    from edgequant.train import keras3_qat as kq

    before = [w.copy() for w in cnn.get_weights()]
    qat = kq.prepare(cnn)
    assert qat.folded == {"bn_stem": "conv_stem", "bn_dw": "conv_dw"}
    x = {"digit": prepared.train.x[:600]}
    result = kq.fine_tune(qat, x, prepared.train.y[:600], epochs=1, learning_rate=1e-4)
    assert result.epochs == 1 and result.seconds > 0 and not result.distilled
    path = _convert(kq.export(qat), {"digit": prepared.train.x[-200:]}, tmp_path / "qat.tflite")

    assert gate.check_full_integer(path).passed
    analysis = analyzer.analyze(path)
    assert analysis.fully_mapped, [(v.op, v.reason) for v in analysis.cpu_ops]
    # BatchNormalization is folded into the convolutions: no MUL/ADD of its own survives
    # (the one ADD is the residual Add).
    assert _ops(path).count("MUL") == 0 and _ops(path).count("ADD") == 1
    p = kq.parity(qat, path, {"digit": prepared.test.x[:300]})
    assert set(p) == {"probs"}
    assert p["probs"]["agreement"] >= 0.97 and p["probs"]["sqnr_db"] >= 20
    # QAT worked on a clone: the float model's weights are untouched.
    assert all(np.array_equal(a, b) for a, b in zip(before, cnn.get_weights(), strict=True))


@pytest.mark.slow
def test_selective_qat_fake_quantizes_only_the_matching_layers(cnn, prepared, tmp_path):
    from edgequant.edgetpu import gate
    from edgequant.train import keras3_qat as kq

    qat = kq.prepare(cnn, layers="^conv_(stem|dw)$")
    assert qat.quantized == ("conv_dw", "conv_stem")
    on = {name for name, active in qat.training_active.items() if active}
    # The input's range and the ranges of the fused ReLUs belong to the selected convolutions.
    assert on == {"digit_quant", "conv_stem", "relu_stem_quant", "conv_dw", "relu_dw_quant"}
    head = qat.model.get_layer("conv_head")
    kq.fine_tune(qat, {"digit": prepared.train.x[:200]}, None, epochs=1, learning_rate=1e-4)
    # Outside the selection the weights trained in float; the converted model is whole uint8.
    assert not head.active
    path = _convert(kq.export(qat), {"digit": prepared.train.x[-100:]}, tmp_path / "sel.tflite")
    assert head.active
    assert gate.check_full_integer(path).passed


def test_an_unlabelled_two_output_model_trains_by_distillation_and_keeps_its_names(keras, tmp_path):
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.train import keras3_qat as kq

    keras.utils.set_random_seed(1)
    image = keras.Input((12, 12, 3), name="image")
    meta = keras.Input((4,), name="meta")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(image)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(meta)])
    score = keras.layers.Dense(3, activation="softmax", name="score")(x)
    offset = keras.layers.Dense(2, name="offset")(x)
    model = keras.Model([image, meta], [score, offset])
    rng = np.random.default_rng(0)
    x = {
        "image": rng.random((96, 12, 12, 3), dtype=np.float32),
        "meta": rng.standard_normal((96, 4)).astype(np.float32),
    }
    qat = kq.prepare(model)
    result = kq.fine_tune(qat, x, epochs=2, learning_rate=1e-4, batch_size=32)
    assert result.distilled and result.epochs == 2
    path = _convert(kq.export(qat), x, tmp_path / "two.tflite")
    runner = SignatureModel(path)
    assert [t.name for t in runner.inputs] == ["image", "meta"]
    assert [t.name for t in runner.outputs] == ["offset", "score"]
    p = kq.parity(qat, path, x)
    assert p["offset"]["sqnr_db"] >= 20 and p["score"]["sqnr_db"] >= 20


def test_a_sequential_model_is_prepared_like_a_functional_one(keras):
    from edgequant.train import keras3_qat as kq

    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)]
    )
    qat = kq.prepare(model)
    assert len(qat.quantized) == 2 and len(qat.output_names) == 1


def test_a_custom_layer_is_named_in_one_line(keras):
    from edgequant.train import keras3_qat as kq

    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input((8,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2)(Scale(name="my_scale")(inp)))
    assert kq.unsupported(model) == [("my_scale", "Scale")]
    with pytest.raises(UserError, match=r"my_scale \(Scale") as e:
        kq.prepare(model)
    assert "\n" not in str(e.value)


def test_a_subclassed_model_is_refused_in_one_line(keras):
    from edgequant.train import keras3_qat as kq

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), np.float32))
    with pytest.raises(UserError, match="subclassed Net"):
        kq.prepare(net)


def test_a_nan_loss_stops_qat_with_one_line(keras):
    from edgequant.train import keras3_qat as kq

    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="y")(inp))
    qat = kq.prepare(model)
    x = {"x": np.ones((16, 4), np.float32)}
    targets = {"y": np.full((16, 2), np.nan, np.float32)}
    with pytest.raises(UserError, match="QAT diverged: the loss became NaN in epoch 1") as e:
        kq.fine_tune(qat, x, targets, epochs=3)
    assert "\n" not in str(e.value)


def test_training_data_that_does_not_fit_the_model_is_one_line(keras):
    from edgequant.train import keras3_qat as kq

    inp = keras.Input((28, 28, 1), name="digit")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    qat = kq.prepare(keras.Model(inp, out))
    digits = np.zeros((8, 28, 28, 1), np.float32)
    with pytest.raises(UserError, match="samples of shape \\[14, 14, 1\\]"):
        kq.fine_tune(qat, {"digit": np.zeros((8, 14, 14, 1), np.float32)}, epochs=1)
    with pytest.raises(UserError, match="labels run 5..12 but the model has 10 classes"):
        kq.fine_tune(qat, {"digit": digits}, np.arange(8) + 5, epochs=1)
    with pytest.raises(UserError, match="no input"):
        kq.fine_tune(qat, {"image": digits}, epochs=1)


def test_fine_tune_trains_a_replica_in_a_strategy_scope(keras):
    import tensorflow as tf

    from edgequant.train import keras3_qat as kq

    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="y")(inp))
    qat = kq.prepare(model)
    before = qat.model.get_layer("y").inner.get_weights()[0].copy()
    x = {"x": np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)}
    targets = {"y": np.ones((32, 2), np.float32)}
    result = kq.fine_tune(
        qat, x, targets, epochs=2, learning_rate=1e-2, strategy=tf.distribute.MirroredStrategy()
    )
    assert result.epochs == 2
    # The replica's trained weights came back into the QAT model.
    assert not np.array_equal(before, qat.model.get_layer("y").inner.get_weights()[0])
