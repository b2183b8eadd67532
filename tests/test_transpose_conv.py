"""A Conv2DTranspose (TFLite TRANSPOSE_CONV) model through the Edge TPU gate and the analyzer.

TRANSPOSE_CONV orders its inputs (output_shape, weights, input, bias), unlike CONV_2D's
(input, weights, bias): see the TFLite kernel,
tensorflow/lite/kernels/transpose_conv.cc (kOutputShapeTensor=0, kWeightsTensor=1,
kDataInputTensor=2, kBiasTensor=3). Reading input 2 as the bias flags the activation.
"""

import numpy as np
import pytest

from edgequant.edgetpu import analyzer, gate
from edgequant.quantize import convert, recipes
from edgequant.tflite.model import TFLiteModel


@pytest.fixture(scope="module")
def transpose_conv_tflite(tmp_path_factory):
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up")(x)
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(x))
    samples = np.random.default_rng(0).random((32, 8, 8, 4), np.float32)
    recipe = recipes.get("uint8", calibration_size=32)
    return convert.write(
        convert.convert(model, recipe, samples), recipe, tmp_path_factory.mktemp("tconv")
    )


def _transpose_conv(path):
    model = TFLiteModel.load(path)
    (op,) = [op for op in model.operators if op.op == "TRANSPOSE_CONV"]
    return model, op


def test_converted_transpose_conv_has_the_documented_input_order(transpose_conv_tflite):
    model, op = _transpose_conv(transpose_conv_tflite)
    t = model.tensors
    output_shape, weights, data = (t[i] for i in op.inputs[:3])
    assert output_shape.dtype == "INT32" and output_shape.is_constant
    assert weights.dtype == "INT8" and weights.is_constant
    assert data.dtype == "INT8" and not data.is_constant
    if len(op.inputs) > 3 and op.inputs[3] >= 0:  # the bias is optional
        assert t[op.inputs[3]].dtype == "INT32" and t[op.inputs[3]].is_constant


def test_gate_passes_a_full_integer_transpose_conv(transpose_conv_tflite):
    report = gate.check_full_integer(transpose_conv_tflite, "uint8")
    assert report.passed, report.summary()


def test_analyzer_maps_the_transpose_conv(transpose_conv_tflite):
    analysis = analyzer.analyze(transpose_conv_tflite)
    (verdict,) = [v for v in analysis.ops if v.op == "TRANSPOSE_CONV"]
    assert verdict.mapped and verdict.status == analyzer.MAPPED, verdict
    assert analysis.fully_mapped, analysis.cpu_ops
