"""Keras vs every PTQ recipe through the interpreter, over architectures unlike the MNIST CNN.

The MNIST CNN's parity (trained, top-1 agreement) lives in test_quantize.py. Here three more
shapes of network, as tfmot's own tests cover them: MobileNetV2 alpha=0.35 (depthwise convs,
ReLU6, inverted residuals), a small residual net (Add skip connections) and a recurrent model
(LSTM on a [T, F] sequence). The models are untrained (seeded), so top-1 agreement means little;
the measure is the relative error ||tflite - keras|| / ||keras|| over a seeded batch, with a
per-recipe bound about twice what was measured (TF 2.21). Outputs are read by name through the
signature, never by tensor order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgequant.evaluate.runner import SignatureModel
from edgequant.quantize import convert, recipes

# Measured relative errors (TF 2.21, seeds below) are in the comments; bounds leave ~2x room.
# Untrained MobileNetV2 is the hard case: 17 inverted-residual blocks of random weights, where
# every int8 rounding compounds; the trained MNIST CNN stays within 3 % (test_quantize.py).
ARCHS = ("mobilenet_v2", "residual", "lstm")
# recipe: bounds in ARCHS order, then what was measured
_BOUNDS = {
    "fp32": (1e-4, 1e-4, 1e-4),  # 0.00002 0.00002 0.00002 (float reordering)
    "dynamic_range": (0.2, 1e-3, 1e-3),  # 0.107 0.00003 0.00002
    "float16": (0.04, 1e-3, 2e-3),  # 0.0195 0.0001 0.0004
    "int8_fallback": (0.7, 0.01, 0.2),  # 0.447 0.0044 0.112
    "int8": (0.7, 0.01, 0.2),  # 0.447 0.0044 0.111
    "uint8": (0.7, 0.01, 0.2),  # 0.447 0.0044 0.111
    "int16x8": (0.45, 0.01, 0.2),  # 0.268 0.0035 0.098
}
MAX_RELATIVE_ERROR = {
    arch: {recipe: bounds[i] for recipe, bounds in _BOUNDS.items()} for i, arch in enumerate(ARCHS)
}


def _mobilenet_v2():
    import tf_keras as keras

    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=5, classifier_activation=None
    )
    # Untrained batch norms hold mean 0 / variance 1, which lets random activations grow or
    # vanish block after block; one forward pass in training mode with momentum 0 sets each
    # layer's moving statistics to what it really sees, as a trained model's would be.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(_uniform((64, 32, 32, 3), seed=5), training=True)
    return model


def _residual():
    import tf_keras as keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    for _ in range(2):
        y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        y = keras.layers.Conv2D(8, 3, padding="same")(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="scores")(x))


def _lstm():
    import tf_keras as keras

    inputs = keras.Input((8, 4), name="sequence")
    # unroll: a static graph of MatMul/Tanh/Logistic the converter quantizes in every recipe.
    # implementation=1 slices the gate kernels up front; with the default (2) the int8
    # converter now and then (1 run in 6 here) leaves a float DEQUANTIZE -> SPLIT of the
    # weights behind, which convert() rightly refuses for a full-integer recipe.
    x = keras.layers.LSTM(12, unroll=True, implementation=1)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="scores")(x))


BUILDERS = {"mobilenet_v2": _mobilenet_v2, "residual": _residual, "lstm": _lstm}


def _uniform(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


class Case:
    """One architecture: the seeded model, calibration samples, a test batch, Keras outputs.

    The model is held as one UserModel, as a deployment holds the user's: every recipe's
    converter then reads the same SavedModel export."""

    def __init__(self, arch: str):
        import tf_keras as keras

        from edgequant import usermodel

        keras.utils.set_random_seed(0)
        model = BUILDERS[arch]()
        shape = model.input_shape[1:]
        self.calibration = _uniform((32, *shape), seed=1)
        self.x = _uniform((16, *shape), seed=2)
        self.expected = model.predict(self.x, verbose=0)
        self.model = usermodel.from_keras(model)


@pytest.fixture(scope="module")
def cases():
    built: dict[str, Case] = {}

    def get(arch: str) -> Case:
        if arch not in built:
            built[arch] = Case(arch)
        return built[arch]

    return get


def _run(case: Case, recipe_name: str, out_dir) -> tuple[SignatureModel, np.ndarray]:
    recipe = recipes.get(recipe_name, calibration_size=32)
    path = convert.write(convert.convert(case.model, recipe, case.calibration), recipe, out_dir)
    model = SignatureModel(path)
    (inp,) = model.inputs
    outputs = model.predict({inp.name: case.x})
    (name,) = outputs  # one output, found by its signature name
    assert name == case.model.output_names[0]
    return model, outputs[name]


def _params():
    for arch in BUILDERS:
        marks = [pytest.mark.slow] if arch == "mobilenet_v2" else []
        for name in recipes.PTQ_RECIPES:
            yield pytest.param(arch, name, marks=marks, id=f"{arch}-{name}")


@pytest.mark.parametrize(("arch", "recipe_name"), list(_params()))
def test_recipe_tracks_keras_within_its_tolerance(arch, recipe_name, cases, tmp_path):
    case = cases(arch)
    model, got = _run(case, recipe_name, tmp_path)
    assert got.shape == case.expected.shape
    error = np.linalg.norm(got - case.expected) / np.linalg.norm(case.expected)
    bound = MAX_RELATIVE_ERROR[arch][recipe_name]
    assert error <= bound, f"{arch} {recipe_name}: relative error {error:.4f} > {bound}"
    want_dtype = recipes.get(recipe_name).io_dtype
    assert model.input_dtype == want_dtype
    if recipes.get(recipe_name).full_integer:
        assert convert.float_ops(Path(model.path).read_bytes()) == []


@pytest.mark.parametrize("arch", ["residual", "lstm"])
def test_int8_and_uint8_differ_only_at_the_model_boundary(arch, cases, tmp_path):
    """Same weights and activations; only the I/O zero point moves by 128, so the dequantized
    outputs agree to within one output step."""
    case = cases(arch)
    int8_model, int8_out = _run(case, "int8", tmp_path / "int8")
    _, uint8_out = _run(case, "uint8", tmp_path / "uint8")
    (detail,) = int8_model.output_details.values()
    step = detail["quantization"][0]
    assert step > 0
    assert np.max(np.abs(int8_out - uint8_out)) <= step + 1e-6


def _fused_lstm():
    """The default (not unrolled) LSTM: a while loop the converter fuses into
    UNIDIRECTIONAL_SEQUENCE_LSTM when the batch is static (int8/uint8 trace with batch 1)."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 4), name="sequence")
    x = keras.layers.LSTM(12)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="scores")(x))


def test_fused_lstm_float_recipe_fails_as_one_clean_line():
    """With a dynamic batch the while loop keeps TensorList ops the builtin op set lacks: the
    wrapper must say so in one line naming the recipe, not dump the MLIR trace."""
    from edgequant.cli import UserError

    with pytest.raises(UserError) as info:
        convert.convert(_fused_lstm(), recipes.get("fp32"))
    message = str(info.value)
    assert message.startswith("recipe fp32: conversion failed:") and "\n" not in message
    assert len(message) < 400


@pytest.mark.xfail(
    strict=True,
    reason="reported: the fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM of an untrained LSTM "
    "converts but its output is off by ~2.8x the output norm (TF 2.21)",
)
def test_fused_lstm_uint8_tracks_keras(tmp_path):
    model = _fused_lstm()
    case = Case.__new__(Case)
    case.model = model
    case.calibration = _uniform((32, 8, 4), seed=1)
    case.x = _uniform((16, 8, 4), seed=2)
    case.expected = model.predict(case.x, verbose=0)
    _, got = _run(case, "uint8", tmp_path)
    error = np.linalg.norm(got - case.expected) / np.linalg.norm(case.expected)
    assert error <= MAX_RELATIVE_ERROR["lstm"]["uint8"], error
