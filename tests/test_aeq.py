"""The AI Edge Quantizer backend on a real float .tflite."""

import numpy as np
import pytest

from edgequant.evaluate import artifact
from edgequant.quantize import aeq, convert, recipes
from tests.conftest import class_scores, float_outputs

EXPECTED_IO = {
    "static_wi8_ai8": "int8",
    "static_wi8_ai16": "int16",
    "dynamic_wi8_afp32": "float32",
    "weight_only_wi4_afp32": "float32",
}
# Minimum top-1 agreement with the float Keras model on the test digits. 16-bit or float
# activations leave only weight rounding (8-bit), so nearly every digit must agree; int8
# activations round to 1/256 of their range; 4-bit weights (16 levels) move the logits more.
MIN_AGREEMENT = {
    "static_wi8_ai8": 0.97,
    "static_wi8_ai16": 0.99,
    "dynamic_wi8_afp32": 0.99,
    "weight_only_wi4_afp32": 0.93,  # measured 0.97 on the tiny model
}


@pytest.fixture(scope="module")
def float_tflite(tiny_model, tmp_path_factory):
    recipe = recipes.get("fp32")
    return convert.write(
        convert.convert(tiny_model, recipe), recipe, tmp_path_factory.mktemp("aeq")
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_IO))
def test_aeq_recipe_writes_model_and_recipe_and_tracks_keras(
    name, float_tflite, representative, tiny_model, test_images
):
    path = aeq.quantize(float_tflite, name, representative, float_tflite.parent)
    info = artifact.describe(path)
    assert info["input_dtype"] == EXPECTED_IO[name]
    assert info["size_bytes"] < float_tflite.stat().st_size
    saved = convert.read_recipe(path)
    assert saved.aeq_recipe == name and saved.backend is recipes.Backend.AI_EDGE_QUANTIZER
    assert saved.calibration_size == (len(representative) if "static" in name else 0)
    x, _ = test_images
    agreement = np.mean(class_scores(path, x).argmax(-1) == float_outputs(tiny_model, x).argmax(-1))
    assert agreement >= MIN_AGREEMENT[name], f"{name}: top-1 agreement {agreement:.3f}"


def test_unknown_aeq_recipe_lists_valid_ones(float_tflite):
    with pytest.raises(ValueError, match="valid: static_wi8_ai8"):
        aeq.quantize(float_tflite, "static_wi3", None, float_tflite.parent)


def test_an_aeq_model_with_constants_after_its_flatbuffer_keeps_them_when_a_spec_is_embedded(
    tmp_path,
):
    """The AI Edge Quantizer stores large constants after the flatbuffer (offset + size);
    embedding the preprocessing spec re-serializes the model and must carry them along."""
    import tf_keras as keras

    from edgequant import datasets
    from edgequant.data import preprocess
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.quantize import aeq, convert, recipes

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(512)]
    )
    fp32 = convert.write(convert.convert(model, recipes.get("fp32")), recipes.get("fp32"), tmp_path)
    spec = datasets.preprocessing((28, 28, 1))
    path = aeq.quantize(fp32, "dynamic_wi8_afp32", None, tmp_path, spec)
    assert preprocess.read_embedded(path.read_bytes()) == spec
    x = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    runner = SignatureModel(path, 4)
    (got,) = runner.predict({runner.inputs[0].name: x}).values()
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=0.05)
