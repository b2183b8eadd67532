"""The one TFLite runner (`runner.SignatureModel`): outputs read by signature name, quantized I/O,
any batch length."""

import numpy as np
import pytest

from edgequant import usermodel
from edgequant.evaluate import artifact, runner


@pytest.fixture(scope="module")
def two_outputs(tmp_path_factory):
    """A tf_keras model whose outputs are (zeta [N, 3], alpha [N, 1]) in that order, converted
    float and full-integer uint8: tensors keep the model's order, the signature sorts names."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x_in = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(x_in)
    model = keras.Model(
        x_in,
        [keras.layers.Dense(3, name="zeta")(h), keras.layers.Dense(1, name="alpha")(h)],
    )
    x = np.random.default_rng(1).uniform(-1, 1, (37, 6)).astype(np.float32)
    wrapped = usermodel.from_keras(model)
    out = tmp_path_factory.mktemp("two_outputs")
    paths = {}
    for name in ("float", "uint8"):
        conv = wrapped.converter()
        if name == "uint8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ({"features": x[i : i + 1]} for i in range(37))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.uint8
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(conv.convert())
    expected = dict(zip(("zeta", "alpha"), model.predict(x, verbose=0), strict=True))
    return paths, x, expected


def test_outputs_are_read_by_name_not_by_tensor_order(two_outputs):
    paths, x, expected = two_outputs
    # Output tensor 0 is zeta, the signature's first name is alpha: an index means different
    # outputs to the interpreter and to the signature, so only names are safe.
    first_tensor = artifact.load_interpreter(paths["float"]).get_output_details()[0]
    assert list(first_tensor["shape"][1:]) == [3]
    model = runner.SignatureModel(paths["float"], batch_size=8)
    assert [(t.name, t.shape) for t in model.outputs] == [("alpha", (None, 1)), ("zeta", (None, 3))]
    got = model.predict({"features": x})
    assert set(got) == {"zeta", "alpha"}
    assert got["zeta"].shape == (37, 3) and got["alpha"].shape == (37, 1)
    for name in ("zeta", "alpha"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


def test_quantized_io_is_quantized_in_and_dequantized_out_by_name(two_outputs):
    paths, x, expected = two_outputs
    model = runner.SignatureModel(paths["uint8"], batch_size=5)
    assert model.input_dtype == "uint8"
    got = model.predict({"features": x})
    assert got["zeta"].dtype == np.float32 and got["zeta"].shape == (37, 3)
    for name in ("zeta", "alpha"):
        scale = np.abs(expected[name]).max()
        assert np.abs(got[name] - expected[name]).max() < 0.1 * scale, name
