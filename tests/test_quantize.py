"""Recipes as data, recipe -> converter settings, and Keras-vs-TFLite parity for every recipe."""

import json

import numpy as np
import pytest

from edgequant.cli import UserError
from edgequant.evaluate import artifact, runner
from edgequant.quantize import convert, recipes
from tests.conftest import class_scores, float_outputs

# Minimum top-1 agreement with the float Keras model on 300 test digits, and the largest
# allowed mean absolute difference of the softmax outputs. fp32/float16 only reorder float math;
# 8-bit recipes round activations to 1/256 of their range, so a few borderline digits may flip.
TOLERANCE = {
    "fp32": (1.0, 1e-5),
    "float16": (0.995, 2e-3),
    "dynamic_range": (0.98, 0.02),
    "int8_fallback": (0.97, 0.03),
    "int8": (0.97, 0.03),
    "uint8": (0.97, 0.03),
    "int16x8": (0.99, 0.01),
}
IO_DTYPE = {"int8": "int8", "uint8": "uint8"}


def test_every_recipe_round_trips_through_json():
    for name in recipes.PTQ_RECIPES:
        for weights in ("per_channel", "per_tensor"):
            r = recipes.get(name, weights, 123)
            assert recipes.Recipe.from_dict(json.loads(r.to_json())) == r


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid recipes: fp32, dynamic_range"):
        recipes.get("int4")


def test_per_tensor_recipe_gets_its_own_artifact_name():
    assert recipes.get("uint8", "per_tensor").name == "uint8_per_tensor"
    assert recipes.get("uint8").name == "uint8"


def test_recipe_sets_the_converter_as_documented(tiny_model, representative):
    import tensorflow as tf

    conv = convert.make_converter(tiny_model, recipes.get("uint8", "per_tensor"), representative)
    assert conv.optimizations == [tf.lite.Optimize.DEFAULT]
    assert conv.target_spec.supported_ops == [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    assert conv.inference_input_type == tf.uint8 and conv.inference_output_type == tf.uint8
    assert conv._experimental_disable_per_channel is True
    assert conv.representative_dataset is not None
    f16 = convert.make_converter(tiny_model, recipes.get("float16"), None)
    assert f16.target_spec.supported_types == [tf.float16]
    plain = convert.make_converter(tiny_model, recipes.get("fp32"), None)
    assert not plain.optimizations


def test_calibrated_recipe_without_data_is_refused(tiny_model):
    with pytest.raises(UserError, match="needs a representative dataset"):
        convert.make_converter(tiny_model, recipes.get("int8"), None)


@pytest.fixture(scope="module")
def converted(tiny_model, representative, tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    return {
        name: convert.write(
            convert.convert(tiny_model, recipes.get(name, calibration_size=100), representative),
            recipes.get(name, calibration_size=100),
            out,
        )
        for name in recipes.PTQ_RECIPES
    }


@pytest.mark.parametrize("name", recipes.PTQ_RECIPES)
def test_recipe_agrees_with_keras_within_tolerance(name, converted, tiny_model, test_images):
    x, y = test_images
    expected = float_outputs(tiny_model, x)
    got = class_scores(converted[name], x)
    min_agreement, max_mad = TOLERANCE[name]
    agreement = np.mean(got.argmax(-1) == expected.argmax(-1))
    assert agreement >= min_agreement, f"{name}: top-1 agreement {agreement:.3f}"
    assert np.mean(np.abs(got - expected)) <= max_mad


@pytest.mark.parametrize("name", recipes.PTQ_RECIPES)
def test_recipe_io_dtypes_are_as_promised(name, converted):
    info = artifact.describe(converted[name])
    want = IO_DTYPE.get(name, "float32")
    assert info["input_dtype"] == want and info["output_dtype"] == want
    assert (converted[name].with_suffix(".recipe.json")).is_file()


def test_uint8_input_is_exactly_the_pixel_value(converted):
    """Inputs in [0, 1] make the converter pick scale 1/255 and zero point 0."""
    (inp,) = artifact.describe(converted["uint8"])["inputs"]
    assert inp["zero_point"] == 0 and inp["scale"] == pytest.approx(1 / 255, rel=1e-4)


def test_full_integer_models_keep_no_float_ops(converted):
    for name in ("int8", "uint8", "int16x8"):
        assert convert.float_ops(converted[name].read_bytes()) == []
    assert convert.float_ops(converted["fp32"].read_bytes())


def test_full_integer_recipe_with_an_op_lacking_int8_kernels_fails_loudly(representative):
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Lambda(lambda t: tf.math.sin(t))(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    with pytest.raises(UserError, match="recipe uint8"):
        convert.convert(model, recipes.get("uint8", calibration_size=20), representative)
    # with float fallback allowed the same model converts, keeping SIN in float
    content = convert.convert(
        model, recipes.get("int8_fallback", calibration_size=20), representative
    )
    assert any("SIN" in op for op in convert.float_ops(content))


def test_runner_rejects_inputs_of_the_wrong_shape(converted):
    model = runner.SignatureModel(converted["uint8"], batch_size=8)
    name = model.inputs[0].name
    with pytest.raises(
        UserError, match=r"have shape \[32, 32, 1\], the model expects \[28, 28, 1\]"
    ):
        model.predict({name: np.zeros((4, 32, 32, 1), np.float32)})
